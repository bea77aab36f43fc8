"""Issue 19: worked conformance cases billed on Spark (METERLINE_ENGINE=spark, local[2]). Each
case runs twice through the real CLI, on DuckDB and on Spark: every step's expectations hold on
Spark, and the two warehouses hold the same rows (tests/spark_tier.py). Cases 02-04 are not in
this tier yet: a Spark bill costs about a minute of JVM and metastore start (docs/spark.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, CONFORMANCE_V12, MISSING_SHARED, PINNED_NOW
from tests.spark_tier import assert_same_rows, before_the_clocks_month, require_spark
from tests.test_conformance import run_case

SPARK_CASES = ("conformance/01-pricing-models", "conformance-v1.2/05-time-weighted-meters")


@pytest.mark.skipif(not (CONFORMANCE.is_dir() and CONFORMANCE_V12.is_dir()),
                    reason=MISSING_SHARED)
@pytest.mark.parametrize("case", SPARK_CASES)
def test_a_conformance_case_bills_the_same_on_spark(case: str, shared_conformance: Path,
                                                   tmp_path: Path) -> None:
    require_spark()
    on_duckdb = run_case(shared_conformance / case, tmp_path / "duckdb")
    on_spark = run_case(shared_conformance / case, tmp_path / "spark",
                        engine_env={"METERLINE_ENGINE": "spark"})
    assert (on_spark / "spark" / "warehouse").is_dir(), "the case did not run on Spark"
    counts = assert_same_rows(on_duckdb, on_spark, where=before_the_clocks_month(PINNED_NOW))
    assert counts["marts.fct_invoice_lines"] > 0
