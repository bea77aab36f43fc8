"""Issue 19's "done when": `METERLINE_ENGINE=spark meterline demo` publishes the invoices the
DuckDB demo publishes. Both demos run on the pinned clock; every compared table (invoices,
lines, usage marts, billed events, the ledger: tests/spark_tier.py) is equal row for row, as
decimals, and so are the published documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PINNED_NOW, REPO, run_meterline
from tests.spark_tier import (
    assert_same_rows,
    before_the_clocks_month,
    require_spark,
    without_clock,
)


@pytest.fixture(scope="module")
def demo_homes(tmp_path_factory) -> tuple[Path, Path]:
    require_spark()
    homes = []
    for engine in ("duckdb", "spark"):
        root = tmp_path_factory.mktemp(f"demo-{engine}")
        home, cwd = root / "home", root / "cwd"
        cwd.mkdir()
        done = run_meterline(["demo"], home=home, catalog=REPO / "seeds", cwd=cwd,
                             env={"METERLINE_ENGINE": engine}, timeout=1500)
        assert done.returncode == 0, f"{engine} demo: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        homes.append(home)
    return homes[0], homes[1]


def test_the_spark_demo_publishes_the_duckdb_demos_invoices(demo_homes) -> None:
    duckdb_home, spark_home = demo_homes
    counts = assert_same_rows(duckdb_home, spark_home, where=before_the_clocks_month(PINNED_NOW))
    # the demo publishes a month of 12 invoices and drafts the months after it
    assert counts["billing.published_invoices"] == 12
    assert counts["billing.published_invoice_lines"] > 100
    assert counts["marts.fct_billed_events"] > 10_000


def test_the_spark_demos_documents_are_the_duckdb_demos(demo_homes) -> None:
    duckdb_home, spark_home = demo_homes
    want = sorted(p.relative_to(duckdb_home) for p in (duckdb_home / "invoices").rglob("*.json"))
    got = sorted(p.relative_to(spark_home) for p in (spark_home / "invoices").rglob("*.json"))
    assert got == want and len(want) >= 12
    for relative in want:
        assert (without_clock(json.loads((spark_home / relative).read_text()))
                == without_clock(json.loads((duckdb_home / relative).read_text()))), relative


def test_the_spark_models_ran_on_spark(demo_homes) -> None:
    """Not DuckDB in disguise: Spark's warehouse holds the period partitions, and the DuckDB
    tables of the Spark home were loaded from Spark's exported files."""
    duckdb_home, spark_home = demo_homes
    partitions = {p.name for p in (spark_home / "spark" / "warehouse" / "intermediate.db"
                                   / "int_invoice_lines_drafted").iterdir() if p.is_dir()}
    assert "billing_period_start=2026-10-01" in partitions
    exported = spark_home / "spark" / "marts"
    assert (exported / "tables" / "marts" / "fct_meter_usage").is_dir()
    assert (exported / "periods" / "intermediate" / "int_invoice_lines_drafted").is_dir()
    # the reconciliation checks (the independent Decimal pricer among them) ran on Spark's
    # results, with the outcomes they have on DuckDB's
    outcomes = []
    for home in (duckdb_home, spark_home):
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        try:
            outcomes.append(sorted(con.execute(
                "select distinct billing_period_start, check_name, passed, summary "
                "from billing.reconciliation_results").fetchall()))
        finally:
            con.close()
    assert outcomes[1] == outcomes[0]
    assert any(passed for _, _, passed, _ in outcomes[1])


def _line_events(home: Path, period: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("select * from marts.fct_invoice_line_events "
                           "where billing_period_start = ? order by all", [period]).fetchall()
    finally:
        con.close()


def test_a_home_billed_on_duckdb_goes_on_billing_on_spark(demo_homes, tmp_path) -> None:
    """Switching a home's engine loses no month: Spark replaces only the billed period's rows
    of the period-scoped models (orchestration/lib/spark.py, import_marts)."""
    duckdb_home, _ = demo_homes
    home = tmp_path / "home"
    shutil.copytree(duckdb_home, home, ignore=shutil.ignore_patterns("dagster", "snapshot"))
    published = _line_events(home, "2026-10-01")
    assert published, "the demo's published month has its evidence"
    done = run_meterline(["bill", "--period", "2026-11"], home=home, catalog=REPO / "seeds",
                         cwd=tmp_path, env={"METERLINE_ENGINE": "spark"}, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (home / "spark" / "warehouse").is_dir()
    # October, published on DuckDB, keeps its evidence for `explain`; November, billed again
    # on Spark, equals what DuckDB drafted
    assert _line_events(home, "2026-10-01") == published
    assert_same_rows(duckdb_home, home, where=before_the_clocks_month(PINNED_NOW))
