"""Issue 19: worked conformance cases billed on Spark (METERLINE_ENGINE=spark, local[2]). Each
case runs twice through the real CLI, on DuckDB and on Spark: every step's expectations hold on
Spark, and the two warehouses hold the same rows (tests/spark_tier.py). Which cases: SPARK_CASES
below (a Spark bill costs about a minute of JVM, metastore and Spark jobs: docs/spark.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, CONFORMANCE_V12, MISSING_SHARED, PINNED_NOW
from tests.spark_tier import assert_same_rows, before_the_clocks_month, require_spark
from tests.test_conformance import run_case

# CI bills case 01 on Spark (a single bill). METERLINE_SPARK_CASES=all bills every case of both
# folders on Spark (about a minute per bill: case 05 alone takes 14 minutes on 2 cores, which
# would take CI past its hour), or a comma-separated list of "<folder>/<case>".
_ALL = [f"{folder.name}/{p.name}" for folder in (CONFORMANCE, CONFORMANCE_V12)
        if folder.is_dir() for p in sorted(folder.iterdir()) if p.is_dir()]
_ASKED = os.environ.get("METERLINE_SPARK_CASES", "conformance/01-pricing-models")
SPARK_CASES = _ALL if _ASKED == "all" else [c.strip() for c in _ASKED.split(",") if c.strip()]


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
