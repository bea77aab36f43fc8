"""The two landing rules of CONTRACT.md v1.2 section 2, against real DuckDB warehouses:

1. ``negative_value`` applies to ``count``, ``unique_count``, ``max`` and ``latest`` meters only: a
   negative value on a level meter (``time_weighted_sum``, ``running_total``) is a signed change
   and lands, in every format, on the typed Parquet fast path and on the quarantine re-check.
2. Epoch milliseconds below 10^12 (2001-09-09T01:46:40Z) are ``invalid_timestamp`` (almost surely
   epoch seconds, e.g. Stripe's ``1796140800``): a JSON integer, an all-digit string (JSON Lines,
   CSV, Parquet VARCHAR) and a Parquet integer column; 10^12 itself lands. The ingest report (the
   real ``meterline ingest``, table and JSON) gives the file a note saying they look like seconds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.catalog import model as catalog_model
from orchestration.ingestion.landing import Lookup, model, stage_parquet
from orchestration.ingestion.report import format_report
from tests.conftest import run_meterline
from tests.test_landing import Home, counts, jl, lookup_from, needs, us

LEVELS = Path(__file__).resolve().parents[2] / "shared" / "conformance-v1.2"
CASE05 = LEVELS / "05-time-weighted-meters"

LK = Lookup(customers={"c1"}, meters={
    "storage": "time_weighted_sum", "projects": "running_total", "peak": "max",
    "calls": "count", "users": "unique_count", "seats": "latest", "gb": "sum"})
TS = "2026-03-10T00:00:00Z"
SECONDS = 1796140800  # 2026-12-01T16:00:00Z in epoch seconds; 1970-01-21 as milliseconds
NOTE = ("{n} timestamp(s) look like epoch seconds (below 10^12 ms, e.g. row {row}: {epoch}): "
        "send epoch milliseconds ({ms}) or an ISO 8601 timestamp with an offset")


def note(n: int, row: int, epoch: int = SECONDS) -> str:
    return NOTE.format(n=n, row=row, epoch=epoch, ms=epoch * 1000)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    yield h
    h.con.close()


def reasons(h: Home) -> dict[int, str]:
    return dict(h.rows("select row_number, reason from raw.quarantined_events"))


def write_parquet(path: Path, rows: list[dict], types: dict[str, str]) -> Path:
    """A Parquet file with exactly ``types`` (column -> DuckDB type), values given as SQL text."""
    def cell(v: object) -> str:
        return "null" if v is None else "'" + str(v).replace("'", "''") + "'"

    selects = [", ".join(f"{cell(r.get(c))}::{t} as {c}" for c, t in types.items())
               for r in rows]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"copy ({' union all '.join('select ' + s for s in selects)}) "
                f"to '{path}' (format parquet)")
    con.close()
    return path


# ------------------------------------------------------------------ 1. negatives on level meters

def test_landing_knows_every_catalog_aggregation() -> None:
    assert model.AGGREGATIONS == catalog_model.AGGREGATIONS
    assert set(model.NON_NEGATIVE_AGGREGATIONS) == (
        set(catalog_model.AGGREGATIONS) - {"sum"} - set(catalog_model.LEVEL_AGGREGATIONS))


def test_negative_values_land_on_level_meters_and_not_on_max_or_count(home: Home) -> None:
    home.put("a.jsonl", "\n".join([
        jl(event_id="tw", customer_id="c1", meter="storage", value=-5, timestamp=TS),
        jl(event_id="rt", customer_id="c1", meter="projects", value="-1.5", timestamp=TS),
        jl(event_id="mx", customer_id="c1", meter="peak", value=-1, timestamp=TS),
        jl(event_id="ct", customer_id="c1", meter="calls", value="-0.5", timestamp=TS),
        jl(event_id="uq", customer_id="c1", meter="users", value=-2, timestamp=TS),
        jl(event_id="lt", customer_id="c1", meter="seats", value=-3, timestamp=TS),
        jl(event_id="sm", customer_id="c1", meter="gb", value=-4, timestamp=TS),
        jl(event_id="tw0", customer_id="c1", meter="storage", value="-0", timestamp=TS),
    ]))
    home.put("b.csv", "event_id,customer_id,meter,value,timestamp,dimensions\n"
                      f"tw-csv,c1,storage,-20.25,{TS},\n"
                      f"rt-csv,c1,projects,-3,{TS},\n"
                      f"mx-csv,c1,peak,-7,{TS},\n"
                      f"ct-csv,c1,calls,-1,{TS},\n")
    r = home.ingest(LK)
    assert counts(r) == {"a.jsonl": {"read": 8, "landed": 4, "duplicates": 0, "quarantined": 4},
                         "b.csv": {"read": 4, "landed": 2, "duplicates": 0, "quarantined": 2}}
    assert home.event("tw")["value"] == Decimal("-5")
    assert home.event("rt")["value"] == Decimal("-1.5")
    assert home.event("sm")["value"] == Decimal("-4")
    assert home.event("tw0")["value"] == 0
    assert home.event("tw-csv")["value"] == Decimal("-20.25")
    assert home.event("rt-csv")["value"] == Decimal("-3")
    q = home.rows("select source_file, row_number, event_id, reason from raw.quarantined_events "
                  "order by all")
    assert q == [("a.jsonl", 3, "mx", "negative_value"), ("a.jsonl", 4, "ct", "negative_value"),
                 ("a.jsonl", 5, "uq", "negative_value"), ("a.jsonl", 6, "lt", "negative_value"),
                 ("b.csv", 3, "mx-csv", "negative_value"), ("b.csv", 4, "ct-csv", "negative_value")]
    assert "notes" not in r.to_dict()["files"][0]


LEVEL_ROWS = [  # the typed path and the general path must agree on every one
    {"event_id": "p1", "customer_id": "c1", "meter": "storage", "value": "-5.5",
     "timestamp": "2026-03-01 00:00:00+00"},
    {"event_id": "p2", "customer_id": "c1", "meter": "projects", "value": "-1",
     "timestamp": "2026-03-02 00:00:00+00"},
    {"event_id": "p3", "customer_id": "c1", "meter": "peak", "value": "-1",
     "timestamp": "2026-03-03 00:00:00+00"},
    {"event_id": "p4", "customer_id": "c1", "meter": "calls", "value": "-2",
     "timestamp": "2026-03-04 00:00:00+00"},
    {"event_id": "p5", "customer_id": "c1", "meter": "storage", "value": "12",
     "timestamp": "2026-03-05 00:00:00+00"},
    {"event_id": "p6", "customer_id": "c1", "meter": "nope", "value": "-1",
     "timestamp": "2026-03-06 00:00:00+00"},  # unknown meter: no negative_value
]


def _land_parquet(root: Path, source: Path) -> dict[str, list[tuple]]:
    h = Home(root)
    try:
        h.put(source.name, source.read_bytes())
        r = h.ingest(LK)
        assert not r.unreadable
        return {"landed": h.rows("select event_id, meter_id, value, event_at, landing_seq "
                                 "from raw.usage_events order by landing_seq"),
                "quarantined": h.rows("select row_number, event_id, reason, value "
                                      "from raw.quarantined_events order by row_number")}
    finally:
        h.con.close()


@pytest.mark.parametrize("value_type", ["decimal(38, 12)", "bigint"])
def test_typed_parquet_lands_negatives_on_level_meters_as_the_general_path(
        tmp_path: Path, monkeypatch, value_type: str) -> None:
    rows = LEVEL_ROWS if value_type != "bigint" else [
        {**r, "value": r["value"].split(".")[0]} for r in LEVEL_ROWS]
    types = {"event_id": "varchar", "customer_id": "varchar", "meter": "varchar",
             "value": value_type, "timestamp": "timestamptz"}
    source = write_parquet(tmp_path / "levels.parquet", rows, types)
    con = duckdb.connect()
    schema = {n: t.upper() for n, t, *_ in
              con.execute(f"describe select * from '{source}'").fetchall()}
    con.close()
    assert stage_parquet.is_typed(schema), schema
    fast = _land_parquet(tmp_path / "fast", source)
    monkeypatch.setattr(stage_parquet, "is_typed", lambda types: False)
    general = _land_parquet(tmp_path / "general", source)
    assert fast == general
    assert [(e, m) for e, m, *_ in fast["landed"]] == [
        ("p1", "storage"), ("p2", "projects"), ("p5", "storage")]
    assert fast["landed"][0][2] == Decimal("-5.5" if value_type != "bigint" else "-5")
    assert [(n, e, reason) for n, e, reason, _ in fast["quarantined"]] == [
        (3, "p3", "negative_value"), (4, "p4", "negative_value"), (6, "p6", "unknown_meter")]


def test_a_rechecked_negative_row_lands_once_its_level_meter_exists(home: Home) -> None:
    home.put("a.jsonl", jl(event_id="later", customer_id="c1", meter="fleet", value=-2,
                           timestamp=TS) + "\n")
    home.ingest(LK)
    assert reasons(home) == {1: "unknown_meter"}
    grown = Lookup(customers=LK.customers, meters={**LK.meters, "fleet": "running_total"})
    r = home.ingest(grown)
    assert r.to_dict()["relanded"] == {"checked": 1, "landed": 1, "duplicates": 0,
                                       "still_quarantined": 0, "by_reason": {}}
    assert home.event("later")["value"] == Decimal("-2")
    assert home.event("later")["is_relanded"] is True


@needs(CASE05)
def test_case05_events_land_whole_negatives_included(home: Home) -> None:
    """The v1.2 conformance case: 27 events, eleven of them negative changes of level meters,
    all land (steps.json: read 27, landed 27, quarantine empty); so do the 8 of b_late.csv."""
    lookup = lookup_from(CASE05 / "catalog")
    assert set(lookup.meters.values()) == {"time_weighted_sum", "running_total"}
    r = home.ingest(lookup, paths=[CASE05 / "events" / "a_usage.jsonl"])
    assert [(f.read, f.landed, f.duplicates, f.quarantined) for f in r.files] == [(27, 27, 0, 0)]
    r = home.ingest(lookup, paths=[CASE05 / "events" / "b_late.csv"])
    assert [(f.read, f.landed, f.duplicates, f.quarantined) for f in r.files] == [(8, 8, 0, 0)]
    assert home.rows("select count(*) from raw.quarantined_events") == [(0,)]
    negatives = home.rows("select count(*) from raw.usage_events where value < 0")[0][0]
    assert negatives == 15
    assert home.event("seats-3")["value"] == Decimal("-1")
    assert home.event("blip-2")["value"] == Decimal("-0.000162")
    assert home.event("cmp-1")["event_us"] == 1772526600000 * 1000  # epoch ms, >= 10^12


# --------------------------------------------------------------------- 2. epoch seconds

def test_epoch_seconds_are_invalid_timestamp_in_json_lines(home: Home) -> None:
    home.put("s.jsonl", "\n".join([
        jl(event_id="ok", customer_id="c1", meter="gb", timestamp=TS),
        jl(event_id="int", customer_id="c1", meter="gb", timestamp=SECONDS),
        jl(event_id="str", customer_id="c1", meter="gb", timestamp=str(SECONDS)),
        jl(event_id="edge", customer_id="c1", meter="gb", timestamp=10**12),
        jl(event_id="edge-str", customer_id="c1", meter="gb", timestamp="0001000000000001"),
        jl(event_id="below", customer_id="c1", meter="gb", timestamp=10**12 - 1),
        jl(event_id="zero", customer_id="c1", meter="gb", timestamp=0),
        jl(event_id="date", customer_id="c1", meter="gb", timestamp="20260101"),
        # an earlier reason wins, but the note still counts its timestamp
        jl(event_id="neg", customer_id="c1", meter="calls", value=-1, timestamp=SECONDS),
        jl(event_id="ms", customer_id="c1", meter="gb", timestamp=SECONDS * 1000),
    ]))
    r = home.ingest(LK)
    assert counts(r)["s.jsonl"] == {"read": 10, "landed": 4, "duplicates": 0, "quarantined": 6}
    assert reasons(home) == {2: "invalid_timestamp", 3: "invalid_timestamp",
                             6: "invalid_timestamp", 7: "invalid_timestamp",
                             8: "invalid_timestamp", 9: "negative_value"}
    assert home.event("edge")["event_us"] == us("2001-09-09T01:46:40Z")
    assert home.event("edge-str")["event_us"] == us("2001-09-09T01:46:40.001Z")
    assert home.event("ms")["event_us"] == us("2026-12-01T16:00:00Z")
    early = "select count(*) from raw.usage_events where event_at < '2001-09-09 01:46:40+00'"
    assert home.rows(early) == [(0,)]
    f = r.to_dict()["files"][0]
    assert f["quarantined_by_reason"] == {"negative_value": 1, "invalid_timestamp": 5}
    assert f["notes"] == [note(6, 2)]
    # the raw row keeps what was sent
    raw = home.one("select raw_row from raw.quarantined_events where row_number = 2")[0]
    assert json.loads(raw)["timestamp"] == SECONDS


def test_the_note_suggests_milliseconds_only_when_they_are_an_instant() -> None:
    assert model.epoch_seconds_note(1, 7, 999_999_999_999) == (
        "1 timestamp(s) look like epoch seconds (below 10^12 ms, e.g. row 7: 999999999999): "
        "send epoch milliseconds or an ISO 8601 timestamp with an offset")
    assert model.epoch_seconds_note(2, 1, SECONDS) == note(2, 1)


def test_epoch_seconds_are_invalid_timestamp_in_csv(home: Home) -> None:
    home.put("s.csv", "event_id,customer_id,meter,value,timestamp,dimensions\n"
                      f"a,c1,gb,1,{TS},\n"
                      f"b,c1,gb,1,{SECONDS},\n"
                      f"c,c1,gb,1,{10**12},\n"
                      f"d,c1,gb,1,{SECONDS - 86400},\n")
    r = home.ingest(LK)
    assert counts(r)["s.csv"] == {"read": 4, "landed": 2, "duplicates": 0, "quarantined": 2}
    assert reasons(home) == {2: "invalid_timestamp", 4: "invalid_timestamp"}
    assert home.event("c")["event_us"] == us("2001-09-09T01:46:40Z")
    assert r.to_dict()["files"][0]["notes"] == [note(2, 2)]


@pytest.mark.parametrize("ts_type", ["bigint", "integer", "ubigint", "varchar"])
def test_epoch_seconds_are_invalid_timestamp_in_parquet(home: Home, tmp_path: Path,
                                                        ts_type: str) -> None:
    types = {"event_id": "varchar", "customer_id": "varchar", "meter": "varchar",
             "value": "decimal(38, 12)", "timestamp": ts_type}
    # rows 1 and 2: epoch seconds (a level meter's negative value does not matter)
    rows = [{"event_id": "sec", "customer_id": "c1", "meter": "storage", "value": "-1",
             "timestamp": SECONDS},
            {"event_id": "sec2", "customer_id": "c1", "meter": "gb", "value": "1",
             "timestamp": SECONDS + 60}]
    if ts_type == "varchar":
        rows.append({"event_id": "iso", "customer_id": "c1", "meter": "gb", "value": "1",
                     "timestamp": "2026-11-02T00:00:00Z"})
    millis = ts_type != "integer"  # an INTEGER column holds no milliseconds after 1970-01-25
    if millis:
        rows += [{"event_id": "edge", "customer_id": "c1", "meter": "storage", "value": "2",
                  "timestamp": 10**12},
                 {"event_id": "ms", "customer_id": "c1", "meter": "projects", "value": "-3",
                  "timestamp": SECONDS * 1000}]
    source = write_parquet(tmp_path / "s.parquet", rows, types)
    home.put("s.parquet", source.read_bytes())
    r = home.ingest(LK)
    n = len(rows)
    assert counts(r)["s.parquet"] == {"read": n, "landed": n - 2, "duplicates": 0,
                                      "quarantined": 2}
    assert reasons(home) == {1: "invalid_timestamp", 2: "invalid_timestamp"}
    if ts_type == "varchar":
        assert home.event("iso")["event_us"] == us("2026-11-02T00:00:00Z")
    if millis:
        assert home.event("edge")["event_us"] == us("2001-09-09T01:46:40Z")
        assert home.event("ms")["event_us"] == us("2026-12-01T16:00:00Z")
        assert home.event("ms")["value"] == Decimal("-3")  # running_total: a signed change
    assert r.to_dict()["files"][0]["notes"] == [note(2, 1)]


def test_a_typed_parquet_file_has_instants_not_epochs(tmp_path: Path) -> None:
    """Integer and string timestamps always take the general path (checked as text above)."""
    base = {"event_id": "VARCHAR", "customer_id": "VARCHAR", "meter": "VARCHAR",
            "value": "DECIMAL(38,12)"}
    assert stage_parquet.is_typed({**base, "timestamp": "TIMESTAMP WITH TIME ZONE"})
    for ts_type in ("BIGINT", "INTEGER", "VARCHAR"):
        assert not stage_parquet.is_typed({**base, "timestamp": ts_type})


def test_notes_follow_each_file_in_the_table() -> None:
    doc = {"files": [
        {"source_file": "a.jsonl", "sha256": "x", "format": "jsonl", "read": 2, "landed": 1,
         "duplicates": 0, "quarantined": 1, "quarantined_by_reason": {"invalid_timestamp": 1},
         "notes": [note(1, 2)]},
        {"source_file": "b.jsonl", "sha256": "y", "format": "jsonl", "read": 1, "landed": 1,
         "duplicates": 0, "quarantined": 0, "quarantined_by_reason": {}}],
        "totals": {"read": 3, "landed": 2, "duplicates": 0, "quarantined": 1}}
    lines = format_report(doc).splitlines()
    i = lines.index("  quarantined in a.jsonl: invalid_timestamp 1")
    assert lines[i + 1] == f"  note on a.jsonl: {note(1, 2)}"
    assert sum("note on" in ln for ln in lines) == 1


# ------------------------------------------------------------------------- the real CLI

CATALOG = {
    "customers.csv": "customer_id,customer_name,currency,active_from,active_to\n"
                     "lv_acme,Acme,USD,,\n",
    "meters.csv": "meter_id,display_name,unit,aggregation,unique_dimension,time_unit\n"
                  "storage,Storage,GB-month,time_weighted_sum,,period\n"
                  "seats,Seats,seat-day,time_weighted_sum,,day\n"
                  "projects,Projects,project,running_total,,\n"
                  "peak,Peak,GB,max,,\n"
                  "calls,Calls,call,count,,\n",
    "product_items.csv": "product_item_id,display_name,meter_id,dimension_filter\n"
                         "storage,Storage,storage,\n"
                         "seats,Seats,seats,\n"
                         "projects,Projects,projects,\n"
                         "peak,Peak,peak,\n"
                         "calls,Calls,calls,\n",
    "rates.csv": "rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,"
                 "package_size,free_units,effective_from,effective_to\n"
                 "r_storage,storage,,USD,per_unit,0.10,,0,2026-01-01,\n"
                 "r_seats,seats,,USD,per_unit,0.50,,0,2026-01-01,\n"
                 "r_projects,projects,,USD,per_unit,1,,0,2026-01-01,\n"
                 "r_peak,peak,,USD,per_unit,0.02,,0,2026-01-01,\n"
                 "r_calls,calls,,USD,per_unit,0.001,,0,2026-01-01,\n",
}


def test_cli_ingest_lands_level_negatives_and_says_epoch_seconds(tmp_path: Path) -> None:
    home, cat, cwd = tmp_path / "home", tmp_path / "catalog", tmp_path / "cwd"
    for d in (home / "landing", cat, cwd):
        d.mkdir(parents=True)
    for name, text in CATALOG.items():
        (cat / name).write_text(text)

    def ev(eid: str, meter: str, value: object, ts: object) -> str:
        return json.dumps({"event_id": eid, "customer_id": "lv_acme", "meter": meter,
                           "value": value, "timestamp": ts}) + "\n"

    (home / "landing" / "a_stripe.jsonl").write_text(
        ev("s1", "storage", 100, "2026-11-02T00:00:00Z")
        + ev("s2", "storage", -40, 1793577600000)  # 2026-11-02T00:00:00Z in ms
        + ev("s3", "seats", -2, 1793577600)  # the same instant in seconds
        + ev("s4", "projects", -1, str(1793577600 + 3600))
        + ev("s5", "peak", -1, "2026-11-03T00:00:00Z")
        + ev("s6", "calls", 1, 1793577600))
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["a_stripe.jsonl", "jsonl", "6", "2", "0", "4"]
    assert "  quarantined in a_stripe.jsonl: invalid_timestamp 3, negative_value 1" in lines
    assert f"  note on a_stripe.jsonl: {note(3, 3, 1793577600)}" in lines

    (home / "landing" / "b_stripe.csv").write_text(
        "event_id,customer_id,meter,value,timestamp,dimensions\n"
        "c1,lv_acme,projects,-3,2026-11-05T00:00:00Z,\n"
        f"c2,lv_acme,projects,2,{SECONDS},\n")
    done = run_meterline(["ingest", "--format", "json"], home=home, catalog=cat, cwd=cwd,
                         timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    [f] = doc["files"]
    assert (f["source_file"], f["read"], f["landed"], f["quarantined"]) == ("b_stripe.csv", 2, 1, 1)
    assert f["quarantined_by_reason"] == {"invalid_timestamp": 1}
    assert f["notes"] == [note(1, 2)]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        landed = dict(con.execute("select event_id, value from raw.usage_events").fetchall())
    finally:
        con.close()
    assert landed == {"s1": Decimal("100"), "s2": Decimal("-40"), "c1": Decimal("-3")}

