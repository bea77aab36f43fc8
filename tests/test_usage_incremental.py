"""The incremental usage layer (docs/architecture.md, "The usage layer"): a `bill` adds the
events landed since the last one to the usage models (their rows keep the state that adds up),
and the result equals a rebuild from every event, row for row, for every aggregation, the level
meters included; a change of the catalog's meters or filters rebuilds the layer.

Real CLI, real dbt and DuckDB: one home bills, lands more events (late ones into earlier months,
new distinct values, a `latest` event older than the one held, level changes that restate the
carried levels), bills again; then its usage tables are dropped and the same `bill` rebuilds
them from scratch.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PINNED_NOW, run_meterline

pytestmark = pytest.mark.e2e

CATALOG = {
    "customers.csv": """customer_id,customer_name,currency,active_from,active_to
acme,Acme,USD,,
beta,Beta,USD,,
""",
    "meters.csv": """meter_id,display_name,unit,aggregation,unique_dimension,time_unit
calls,Calls,call,sum,,
hits,Hits,hit,count,,
peak,Peak,GB,max,,
users,Users,user,unique_count,user_id,
seats,Seats,seat,latest,,
storage,Storage,GB,time_weighted_sum,,period
keys,Keys,key,running_total,,
beta_feature,Beta,op,sum,,
""",
    "product_items.csv": """product_item_id,display_name,meter_id,dimension_filter
calls_eu,Calls EU,calls,region=eu
calls_us,Calls US,calls,region=us
hits_item,Hits,hits,
peak_item,Peak,peak,
users_item,Users,users,plan=pro
seats_item,Seats,seats,
storage_eu,Storage EU,storage,region=eu
keys_item,Keys,keys,
""",
    "rates.csv": """rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r1,calls_eu,,USD,per_unit,0.01,,0,2026-01-01,
r2,calls_us,,USD,per_unit,0.02,,0,2026-01-01,
r3,hits_item,,USD,per_unit,0.5,,0,2026-01-01,
r4,peak_item,,USD,per_unit,0.1,,0,2026-01-01,
r5,users_item,,USD,per_unit,3,,0,2026-01-01,
r6,seats_item,,USD,per_unit,7,,0,2026-01-01,
r7,storage_eu,,USD,per_unit,0.023,,0,2026-01-01,
r8,keys_item,,USD,per_unit,1,,0,2026-01-01,
""",
    "rate_tiers.csv": "rate_id,tier,up_to,unit_price,flat_fee\n",
    "commitments.csv": "customer_id,minimum_amount,currency,effective_from,effective_to\n",
}


def _event(event_id, customer, meter, at, value=None, **dimensions) -> dict:
    event = {"event_id": event_id, "customer_id": customer, "meter": meter, "timestamp": at}
    if value is not None:
        event["value"] = value
    if dimensions:
        event["dimensions"] = dimensions
    return event


FIRST = [
    _event("c1", "acme", "calls", "2026-09-12T00:00:00Z", 100, region="eu"),
    _event("c2", "acme", "calls", "2026-10-02T00:00:00Z", "7.5", region="eu"),
    _event("c3", "acme", "calls", "2026-10-03T00:00:00Z", 3, region="us"),
    _event("c4", "beta", "calls", "2026-10-04T00:00:00Z", 9, region="apac"),  # unbilled
    _event("h1", "acme", "hits", "2026-10-05T00:00:00Z"),
    _event("p1", "acme", "peak", "2026-10-06T00:00:00Z", 40),
    _event("u1", "acme", "users", "2026-10-07T00:00:00Z", user_id="ann", plan="pro"),
    _event("u2", "acme", "users", "2026-10-08T00:00:00Z", user_id="bob", plan="free"),
    _event("s1", "acme", "seats", "2026-10-20T00:00:00Z", 6),
    _event("g1", "acme", "storage", "2026-08-16T00:00:00Z", 20, region="eu"),
    _event("g2", "acme", "storage", "2026-10-10T00:00:00Z", 10, region="us"),  # unbilled set
    _event("k1", "beta", "keys", "2026-09-01T00:00:00Z", 3),
    _event("b1", "beta", "beta_feature", "2026-10-09T00:00:00Z", 2),
]
MORE = [
    _event("c5", "acme", "calls", "2026-10-30T00:00:00Z", 1, region="eu"),
    _event("c6", "acme", "calls", "2026-09-30T23:00:00Z", 50, region="eu"),  # late: September
    _event("h2", "acme", "hits", "2026-10-06T00:00:00Z"),
    _event("h3", "beta", "hits", "2026-10-06T00:00:00Z"),  # a new group
    _event("p2", "acme", "peak", "2026-10-07T00:00:00Z", 35),  # lower than the peak held
    _event("p3", "acme", "peak", "2026-10-08T00:00:00Z", "40.5"),
    _event("u3", "acme", "users", "2026-10-09T00:00:00Z", user_id="ann", plan="pro"),  # seen
    _event("u4", "acme", "users", "2026-10-10T00:00:00Z", user_id="cy", plan="pro"),  # new
    _event("u5", "acme", "users", "2026-10-11T00:00:00Z", user_id="bob", plan="pro"),
    _event("s2", "acme", "seats", "2026-10-19T00:00:00Z", 99),  # older than s1: s1 stays latest
    _event("s3", "beta", "seats", "2026-10-21T00:00:00Z", 2),
    _event("g3", "acme", "storage", "2026-09-16T00:00:00Z", 5, region="eu"),  # restates Oct
    _event("g4", "acme", "storage", "2026-10-25T00:00:00Z", -25, region="eu"),
    _event("k2", "beta", "keys", "2026-08-15T00:00:00Z", -1),  # late, before every key
    _event("k3", "beta", "keys", "2026-11-03T00:00:00Z", 4),
    _event("b2", "beta", "beta_feature", "2026-10-10T00:00:00Z", 5),
]

#: the usage layer's tables and the columns that identify a row (every column is compared)
LAYER = ("int_usage_events_matched", "int_usage_unique_values", "int_level_month_sums",
         "int_level_usage_periods", "int_item_usage_aggregated",
         "int_meter_usage_aggregated", "int_unbilled_usage_aggregated",
         "int_usage_daily_unique_values", "int_usage_daily_aggregated")
MARTS = ("fct_meter_usage", "fct_unbilled_usage", "fct_invoice_lines", "fct_usage_daily")
#: tables whose rows do not depend on the command's instant (no month-to-date accrual)
INSTANT_FREE = ("int_usage_events_matched", "int_usage_unique_values", "fct_invoice_lines",
                "int_usage_daily_unique_values", "int_usage_daily_aggregated", "fct_usage_daily")
#: the month of the pinned clock: its level rows accrue up to each command's instant
CURRENT_MONTH = f"{PINNED_NOW[:7]}-01"


def _land(home: Path, name: str, events: list[dict]) -> None:
    with (home / "home" / "landing" / name).open("w") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")


def _cli(tmp: Path, *args: str) -> str:
    done = run_meterline(list(args), home=tmp / "home", catalog=tmp / "catalog", cwd=tmp / "cwd")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _tables(tmp: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(tmp / "home" / "warehouse.duckdb"), read_only=True)
    try:
        found = {}
        for table in LAYER:
            query = f"select * from intermediate.{table}"
            if table in ("int_usage_unique_values", "int_usage_daily_unique_values"):
                # a value may be appended twice: compare the sets
                query = f"select distinct * exclude (through_landing_seq) from intermediate.{table}"
            found[table] = con.execute(f"{query} {_closed(table)} order by all").fetchall()
        for table in MARTS:
            found[table] = con.execute(
                f"select * from marts.{table} {_closed(table)} order by all").fetchall()
        return found
    finally:
        con.close()


def _closed(table: str) -> str:
    """Rows of the months over at the pinned clock (the current month's level rows accrue to
    the instant of each command, which moves)."""
    if table in INSTANT_FREE:
        return ""
    return f"where billing_period_start < date '{CURRENT_MONTH}'"


def _added(tmp: Path) -> set[str]:
    """The layer's models whose last build added events to the rows held (their compiled SQL
    keeps only the events above the highest landing_seq they hold)."""
    compiled = tmp / "home" / "dagster" / "dbt" / "compiled" / "meterline" / "models"
    return {table for table in LAYER if table != "int_level_usage_periods"
            and "landing_seq > (select coalesce(max(" in (
                compiled / "intermediate" / "usage" / f"{table}.sql").read_text()}


def _seqs(tmp: Path) -> dict[str, int | None]:
    """The highest landing_seq each adding model holds."""
    con = duckdb.connect(str(tmp / "home" / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.execute(f"select max(through_landing_seq) from intermediate.{t}")
                .fetchone()[0] for t in LAYER if t not in (
                    "int_usage_events_matched", "int_level_usage_periods")}
    finally:
        con.close()


def _rebuilt(tmp: Path) -> dict[str, list[tuple]]:
    """The same bill after the usage layer's tables are dropped: a build from every event."""
    con = duckdb.connect(str(tmp / "home" / "warehouse.duckdb"))
    try:
        for table in LAYER:
            con.execute(f"drop table intermediate.{table}")
    finally:
        con.close()
    _cli(tmp, "bill", "--period", "2026-10")
    return _tables(tmp)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "landing").mkdir(parents=True)
    (tmp_path / "catalog").mkdir()
    (tmp_path / "cwd").mkdir()
    for name, text in CATALOG.items():
        (tmp_path / "catalog" / name).write_text(text)
    return tmp_path


def test_billing_again_after_more_events_equals_a_rebuild_row_for_row(home):
    _land(home, "first.jsonl", FIRST)
    _cli(home, "ingest")
    _cli(home, "bill", "--period", "2026-10")
    first = _tables(home)
    seqs_first = _seqs(home)
    assert _added(home) == set()  # the first build reads every event

    _land(home, "more.jsonl", MORE)
    _cli(home, "ingest")
    _cli(home, "bill", "--period", "2026-10")
    again = _tables(home)
    seqs_again = _seqs(home)
    assert _added(home) == set(LAYER) - {"int_level_usage_periods"}
    # the second bill added the new events to what the first held
    assert len(again["int_usage_events_matched"]) == len(FIRST) + len(MORE)
    assert all(seqs_again[t] > seqs_first[t] for t in seqs_first), (seqs_first, seqs_again)
    assert again["int_meter_usage_aggregated"] != first["int_meter_usage_aggregated"]

    rebuilt = _rebuilt(home)
    for table in (*LAYER, *MARTS):
        assert again[table] == rebuilt[table], table

    # the figures the adding had to get right, read from the meter usage rows
    con = duckdb.connect(str(home / "home" / "warehouse.duckdb"), read_only=True)
    try:
        usage = {(c, m): q for c, m, q in con.execute(
            "select customer_id, meter_id, quantity from marts.fct_meter_usage "
            "where billing_period_start = date '2026-10-01'").fetchall()}
    finally:
        con.close()
    assert usage[("acme", "peak")] == 40.5  # 40, then 35 (lower) and 40.5
    assert usage[("acme", "seats")] == 6  # s2 (99) is older than s1
    assert usage[("acme", "users")] == 3  # ann, bob, cy: ann seen again
    assert usage[("acme", "hits")] == 2 and usage[("beta", "hits")] == 1
    assert usage[("beta", "keys")] == 2  # -1 (Aug, late) + 3 (Sep); +4 is November's


def test_a_catalog_change_rebuilds_the_layer(home):
    _land(home, "first.jsonl", FIRST)
    _cli(home, "ingest")
    _cli(home, "bill", "--period", "2026-10")
    # the EU storage item now prices the US events, and the users item every plan
    items = (home / "catalog" / "product_items.csv").read_text()
    items = items.replace("storage_eu,Storage EU,storage,region=eu",
                          "storage_eu,Storage EU,storage,region=us")
    items = items.replace("users_item,Users,users,plan=pro", "users_item,Users,users,")
    (home / "catalog" / "product_items.csv").write_text(items)
    _land(home, "more.jsonl", MORE)
    _cli(home, "ingest")
    _cli(home, "bill", "--period", "2026-10")
    changed = _tables(home)
    assert _added(home) == set()  # rebuilt from every event
    matched = {row[0]: row for row in changed["int_usage_events_matched"]}
    assert len(matched) == len(FIRST) + len(MORE)
    rebuilt = _rebuilt(home)
    for table in (*LAYER, *MARTS):
        assert changed[table] == rebuilt[table], table
    con = duckdb.connect(str(home / "home" / "warehouse.duckdb"), read_only=True)
    try:
        items_of = dict(con.execute(
            "select event_id, product_item_id from intermediate.int_usage_events_matched "
            "where event_id in ('g1', 'g2', 'u2')").fetchall())
    finally:
        con.close()
    assert items_of == {"g1": None, "g2": "storage_eu", "u2": "users_item"}
