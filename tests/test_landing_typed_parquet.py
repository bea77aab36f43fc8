"""Typed Parquet files take a fast path (no text round trip): it must land, count, quarantine
and store exactly what the general path does, row for row, for every edge a typed schema can
hold (NULLs, empty strings, long ids, NULL and empty maps, unsorted keys, a NULL map value,
negative values, unknown ids, duplicates and conflicting duplicates)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.ingestion.landing import Lookup, ingest, stage_parquet
from orchestration.lib import warehouse

LOOKUP = Lookup(customers={"acme", "globex"},
                meters={"calls": "count", "gb": "sum", "peak": "max", "users": "unique_count"})
NOW = datetime(2026, 11, 3, tzinfo=UTC)
LONG = "x" * 257

# (event_id, customer_id, meter, value, timestamp, dimensions as a SQL MAP or NULL)
ROWS = [
    ("e1", "acme", "calls", "1.5", "2026-10-01 00:00:00+00", "map(['region'], ['eu'])"),
    ("e2", "acme", "gb", "-2.25", "2026-10-02 12:00:00.123456+00", "map(['z', 'a'], ['1', '2'])"),
    ("e3", "globex", "peak", None, "2026-10-03 00:00:00+00", "null"),
    ("e4", "globex", "users", "3", "2026-10-04 00:00:00+00", "map([], [])::map(varchar, varchar)"),
    ("e5", "acme", "peak", "-1", "2026-10-05 00:00:00+00", "null"),  # negative on max
    ("e6", "nobody", "calls", "1", "2026-10-06 00:00:00+00", "null"),
    ("e7", "acme", "no_meter", "1", "2026-10-07 00:00:00+00", "null"),
    ("", "acme", "calls", "1", "2026-10-08 00:00:00+00", "null"),  # empty id: missing
    (None, "acme", "calls", "1", "2026-10-08 00:00:00+00", "null"),
    (LONG, "acme", "calls", "1", "2026-10-09 00:00:00+00", "null"),
    ("e8", "acme", "calls", "1", None, "null"),  # no timestamp
    ("e9", "", "calls", "1", "2026-10-10 00:00:00+00", "null"),
    ("e10", "acme", "", "1", "2026-10-10 00:00:00+00", "null"),
    ("e11", "acme", "calls", "1", "2026-10-11 00:00:00+00", "map(['k'], [null::varchar])"),
    ("e1", "acme", "calls", "1.50", "2026-10-01 00:00:00+00", "map(['region'], ['eu'])"),  # dup
    ("e2", "acme", "gb", "-2.25", "2026-10-02 12:00:00.123456+00",
     "map(['a', 'z'], ['2', '1'])"),  # duplicate: the same pairs in another order
    ("e3", "globex", "peak", "2", "2026-10-03 00:00:00+00", "null"),  # conflicting: value 2 not 1
    ("e12", "acme", "gb", "123456789012345678901234.123456789012", "2026-09-30 23:59:59+00",
     "map(['user_id', 'region'], ['u1', 'us'])"),
]


def _write(path: Path, rows: list[tuple], value_type: str, with_dimensions: bool) -> Path:
    def sql_text(v):
        return "null" if v is None else "'" + v.replace("'", "''") + "'"

    selects = [
        f"select {sql_text(e)} as event_id, {sql_text(c)} as customer_id, {sql_text(m)} as meter, "
        f"{sql_text(v)}::{value_type} as value, {sql_text(t)}::timestamptz as timestamp"
        + (f", {d}::map(varchar, varchar) as dimensions" if with_dimensions else "")
        for e, c, m, v, t, d in rows
    ]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"copy ({' union all '.join(selects)}) to '{path}' (format parquet)")
    con.close()
    return path


def _land(tmp_path: Path, name: str, source: Path) -> dict[str, list[tuple]]:
    home = tmp_path / name
    (home / "landing").mkdir(parents=True)
    (home / "landing" / source.name).write_bytes(source.read_bytes())
    con = warehouse.connect(home / "warehouse.duckdb")
    try:
        report = ingest(con, landing_dir=home / "landing", paths=None, lookup=LOOKUP,
                        run_id="run-1", now=NOW)
        assert not report.unreadable
        return {
            "landed": con.execute(
                "select event_id, customer_id, meter_id, value, event_at, dimensions, "
                "row_number, landing_seq from raw.usage_events order by landing_seq").fetchall(),
            "duplicates": con.execute(
                "select row_number, event_id from raw.duplicate_events order by all").fetchall(),
            "quarantined": con.execute(
                "select row_number, raw_row, reason, landing_seq, event_id, customer_id, "
                "meter_id, value, event_at, dimensions from raw.quarantined_events "
                "order by row_number").fetchall(),
            "files": con.execute(
                "select rows_read, rows_landed, rows_duplicate, rows_quarantined "
                "from raw.landed_files").fetchall(),
        }
    finally:
        con.close()


@pytest.mark.parametrize(("value_type", "with_dimensions"), [
    ("decimal(38, 12)", True), ("decimal(18, 3)", True), ("decimal(38, 12)", False),
])
def test_typed_files_land_exactly_as_the_general_path_lands_them(
        tmp_path, monkeypatch, value_type, with_dimensions):
    # e12's 24 digits before the point do not fit DECIMAL(18, 3)
    rows = ROWS if value_type == "decimal(38, 12)" else [r for r in ROWS if r[0] != "e12"]
    source = _write(tmp_path / "events.parquet", rows, value_type, with_dimensions)
    con = duckdb.connect()
    types = {name: kind.upper() for name, kind, *_ in
             con.execute(f"describe select * from '{source}'").fetchall()}
    con.close()
    assert stage_parquet.is_typed(types), types
    fast = _land(tmp_path, "fast", source)
    monkeypatch.setattr(stage_parquet, "is_typed", lambda types: False)
    general = _land(tmp_path, "general", source)
    assert fast == general
    # and the cases are really there: every outcome, and the reasons a typed schema can hold
    reasons = {row[2] for row in fast["quarantined"]}
    expected = {"missing_field", "invalid_event_id", "negative_value", "unknown_customer",
                "unknown_meter", "conflicting_duplicate"}
    if with_dimensions:
        expected.add("invalid_dimensions")
    assert reasons == expected
    assert fast["duplicates"] and fast["landed"]
    if with_dimensions:
        dims = {row[0]: row[5] for row in fast["landed"]}
        assert dims["e2"] == '{"a":"2","z":"1"}' and dims["e4"] == "{}" and dims["e3"] == "{}"


@pytest.mark.parametrize("schema", [
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
     "value": "DOUBLE", "timestamp": "TIMESTAMP WITH TIME ZONE"},
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
     "value": "DECIMAL(38,10)", "timestamp": "TIMESTAMP WITH TIME ZONE"},
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
     "value": "HUGEINT", "timestamp": "TIMESTAMP WITH TIME ZONE"},
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
     "timestamp": "TIMESTAMP"},
    {"event_id": "VARCHAR", "customer_id": "BIGINT", "meter": "VARCHAR",
     "timestamp": "TIMESTAMP WITH TIME ZONE"},
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
     "timestamp": "TIMESTAMP WITH TIME ZONE", "dimensions": "VARCHAR"},
    {"event_id": "VARCHAR", "customer_id": "VARCHAR", "timestamp": "TIMESTAMP WITH TIME ZONE"},
])
def test_other_schemas_take_the_general_path(schema):
    assert not stage_parquet.is_typed(schema)
