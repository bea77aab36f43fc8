"""The Spark tier (METERLINE_ENGINE=spark, docs/spark.md): what its tests share.

Spark needs a Java runtime and the `spark` extra (pyspark, dbt-spark). Without them its tests
skip, saying what is missing; CI sets METERLINE_REQUIRE_SPARK=1, and they fail instead."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

#: The tables a DuckDB home and a Spark home must hold alike, row for row: the invoices, their
#: lines, the usage marts, which invoice line bills each event, and the published ledger.
COMPARED_TABLES = (
    "marts.fct_invoices", "marts.fct_invoice_lines", "marts.fct_meter_usage",
    "marts.fct_unbilled_usage", "marts.fct_usage_daily", "marts.fct_billed_events",
    "marts.fct_invoice_line_events", "marts.fct_revenue_monthly", "marts.dim_customers",
    "marts.dim_product_items", "billing.published_invoices", "billing.published_invoice_lines",
    "billing.published_periods", "intermediate.int_usage_rated",
)


def require_spark() -> None:
    """Skip (or fail, with METERLINE_REQUIRE_SPARK=1) when Spark cannot run here."""
    missing = []
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        missing.append("a Java runtime (Debian: apt-get install openjdk-17-jre-headless)")
    for module, package in (("pyspark", "pyspark"), ("dbt.adapters.spark", "dbt-spark")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(f"{package} (pip install -e '.[spark]')")
    if missing:
        message = "the Spark tier needs " + " and ".join(missing)
        if os.environ.get("METERLINE_REQUIRE_SPARK") == "1":
            pytest.fail(message + " (METERLINE_REQUIRE_SPARK=1)")
        pytest.skip(message)


def _normal(value):
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, float):
        raise AssertionError(f"a float in a compared table: {value!r}")
    return value


#: What the clock decides, not the engine: when a run happened (the pinned clock moves on with
#: the real time of each process, tests/conftest.py) and what an open month accrues up to.
CLOCK_COLUMNS = ("issued_at", "published_at", "landed_at", "checked_at", "usage_accrued_to")


def before_the_clocks_month(clock: str) -> dict[str, str]:
    """Row filters for the tables whose rows of the month the clock is in accrue level usage up
    to the instant each run read the clock (contract v1.2 section 3): those rows differ from
    run to run on any engine."""
    month = clock[:7] + "-01"
    return {"marts.fct_meter_usage": f"billing_period_start < date '{month}'"}


def table_rows(warehouse: Path, table: str, exclude: tuple[str, ...] = (),
               where: str = "true") -> tuple[list, list]:
    """(columns, rows) of a table, rows sorted, decimals normalized (1.50 == 1.5), columns in
    name order so that the engines' column order does not matter."""
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    try:
        schema, name = table.split(".")
        columns = sorted(r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?", [schema, name]).fetchall()
            if r[0] not in exclude)
        assert columns, f"{table} is missing from {warehouse}"
        quoted = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f"select {quoted} from {table} where {where}").fetchall()
    finally:
        con.close()
    normal = [tuple(_normal(v) for v in row) for row in rows]
    return columns, sorted(normal, key=lambda row: tuple((v is None, str(v)) for v in row))


def assert_same_rows(duckdb_home: Path, spark_home: Path,
                     tables: tuple[str, ...] = COMPARED_TABLES,
                     exclude: tuple[str, ...] = CLOCK_COLUMNS,
                     where: dict[str, str] | None = None) -> dict[str, int]:
    """Every table equal in both homes' warehouses, row for row, but for the `exclude` columns
    and the rows `where` (table -> SQL condition) leaves out; returns the row counts."""
    counts = {}
    for table in tables:
        keep = (where or {}).get(table, "true")
        want_columns, want = table_rows(duckdb_home / "warehouse.duckdb", table, exclude, keep)
        got_columns, got = table_rows(spark_home / "warehouse.duckdb", table, exclude, keep)
        assert got_columns == want_columns, f"{table}: columns {got_columns} != {want_columns}"
        missing = list((Counter(want) - Counter(got)).elements())
        extra = list((Counter(got) - Counter(want)).elements())
        assert not missing and not extra, (
            f"{table}: {len(missing)} rows only on DuckDB, {len(extra)} only on Spark "
            f"(columns {want_columns}):\n  DuckDB: {missing[:3]}\n  Spark:  {extra[:3]}")
        counts[table] = len(want)
    return counts


def without_clock(document):
    """A JSON document without the CLOCK_COLUMNS keys, at any depth."""
    if isinstance(document, dict):
        return {k: without_clock(v) for k, v in document.items() if k not in CLOCK_COLUMNS}
    if isinstance(document, list):
        return [without_clock(v) for v in document]
    return document
