"""Reconciliation of level meters (CONTRACT.md v1.2 section 3): the checks recompute a level
meter's usage step by step from the raw events, independently of the dbt models' closed form,
and expect the usage rows and lines that a carried level alone makes (event_count 0).

The warehouse is in-process: the raw events of the v1.2 conformance case
05-time-weighted-meters (step 1: February to May 2026, billed for March and April) inserted
as landed, and marts written by hand with that case's expected figures (steps.json). The right
figures pass; a wrong level quantity, a missing carried-level row or line, a row or line that
no level makes live, or a wrong event_count fails, naming the customer and meter (or item)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.billing.reconciliation import levels
from orchestration.billing.reconciliation.registry import run_checks
from orchestration.billing.reconciliation.result import CheckResult
from orchestration.billing.reconciliation.run import Run
from orchestration.catalog.model import parse
from orchestration.catalog.read import load_catalog, read_currencies
from orchestration.catalog.rules import validate
from orchestration.lib import warehouse
from orchestration.lib.periods import next_period
from tests.conftest import MISSING_SHARED, SHARED

CASE = SHARED / "conformance-v1.2" / "05-time-weighted-meters"
MARCH, APRIL = date(2026, 3, 1), date(2026, 4, 1)
D = Decimal
CHECKS = ["events_counted_once", "rated_quantity_matches_usage",
          "line_amounts_match_decimal_pricer", "unbilled_usage_reported"]
LANDED_AT = datetime(2026, 5, 2, tzinfo=UTC)  # every event of a_usage.jsonl, in one ingest

MARTS_DDL = """
create schema if not exists marts;
create table marts.fct_meter_usage (customer_id varchar, meter_id varchar,
    billing_period_start date, billing_period_end date, quantity decimal(38, 12),
    event_count bigint);
create table marts.fct_unbilled_usage (customer_id varchar, meter_id varchar,
    billing_period_start date, billing_period_end date, quantity decimal(38, 12),
    event_count bigint);
create table marts.fct_invoice_lines (invoice_id varchar, line_number integer,
    customer_id varchar, billing_period_start date, billing_period_end date,
    line_type varchar, product_item_id varchar, tier integer, quantity decimal(38, 12),
    unit_price decimal(38, 12), amount decimal(38, 4), currency varchar);
"""


# --------------------------------------------------------------------------- the hand-made home
def _instant(timestamp) -> datetime:
    if isinstance(timestamp, int):  # epoch milliseconds
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp)
    return datetime.fromisoformat(timestamp).astimezone(UTC)


def _raw_rows(path: Path, landed_at: datetime, first_seq: int = 1) -> list[tuple]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        event = json.loads(line, parse_float=D)
        value = event.get("value")
        rows.append((event["event_id"], event["customer_id"], event["meter"],
                     str(D(1) if value in (None, "") else D(str(value))),
                     _instant(event["timestamp"]).isoformat(),
                     json.dumps(event.get("dimensions") or {}), path.name, n,
                     f"sha-{path.name}", "run-1", landed_at.isoformat(), first_seq + n))
    return rows


def _insert_raw(con, rows: list[tuple]) -> None:
    con.executemany("insert into raw.usage_events values (?, ?, ?, ?::decimal(38, 12), "
                    "?::timestamptz, ?, ?, ?, ?, ?, ?::timestamptz, ?, false)", rows)


def _unit_price(case_catalog, item: str, currency: str, period: date, tier):
    """The unit price the case's rates.csv / rate_tiers.csv give a line (steps.json omits it)."""
    [rate] = [r for r in case_catalog.rates if r.product_item_id == item
              and r.currency == currency and r.in_effect(period)]
    if tier is None:
        return rate.unit_price
    [t] = [t for t in case_catalog.rate_tiers if t.rate_id == rate.rate_id and t.tier == tier]
    return t.unit_price


def _mart_rows(expect: dict, parsed) -> dict[str, list[tuple]]:
    """The marts of March and April as steps.json's step 1 expects them."""
    marts: dict[str, list[tuple]] = {"fct_meter_usage": [], "fct_unbilled_usage": [],
                                     "fct_invoice_lines": []}
    for table, key in (("fct_meter_usage", "meter_usage"),
                       ("fct_unbilled_usage", "unbilled_usage")):
        for month, rows in expect[key].items():
            start = date.fromisoformat(month + "-01")
            end = next_period(start)
            marts[table] += [(r["customer_id"], r["meter_id"], start, end, r["quantity"],
                              r["event_count"]) for r in rows]
    for month, invoices in expect["invoices"].items():
        start = date.fromisoformat(month + "-01")
        for customer, invoice in invoices.items():
            for number, line in enumerate(invoice["lines"], start=1):
                price = None if line["line_type"] != "usage" else _unit_price(
                    parsed, line["product_item_id"], invoice["currency"], start, line["tier"])
                marts["fct_invoice_lines"].append((
                    invoice["invoice_id"], number, customer, start, next_period(start),
                    line["line_type"], line["product_item_id"], line["tier"], line["quantity"],
                    price, line["amount"], invoice["currency"]))
    return marts


@pytest.fixture(scope="module")
def case() -> dict:
    if not CASE.is_dir():
        pytest.skip(MISSING_SHARED)
    catalog = load_catalog(CASE / "catalog")
    assert validate(catalog) == []
    parsed = parse(catalog)
    expect = json.loads((CASE / "steps.json").read_text())[0]["expect"]
    return {"parsed": parsed, "expect": expect}


@pytest.fixture(scope="module")
def home(case, tmp_path_factory) -> Path:
    """The warehouse file: the case's raw events as landed, and its expected marts."""
    path = tmp_path_factory.mktemp("levels") / "warehouse.duckdb"
    con = warehouse.connect(path)
    try:
        _insert_raw(con, _raw_rows(CASE / "events" / "a_usage.jsonl", LANDED_AT))
        con.execute(MARTS_DDL)
        for table, rows in _mart_rows(case["expect"], case["parsed"]).items():
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into marts.{table} values ({marks})", rows)
        con.execute("checkpoint")
    finally:
        con.close()
    return path


def _tampered(home: Path, tmp_path: Path, *statements: str) -> Path:
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(home, copy)
    con = warehouse.connect(copy)
    try:
        for sql in statements:
            con.execute(sql)
        con.execute("checkpoint")
    finally:
        con.close()
    return copy


def _checks(path: Path, parsed, period: date, **kwargs) -> dict[str, CheckResult]:
    con = warehouse.connect(path, read_only=True)
    try:
        results = run_checks(con, parsed, period, checks=kwargs.pop("checks", CHECKS),
                             **kwargs)
    finally:
        con.close()
    for r in results:
        json.dumps(r.figures)
    return {r.name: r for r in results}


def _failed(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, r in results.items() if not r.passed}


def _run(path: Path, parsed, period: date, run_instant: datetime | None = None):
    """An open check run (its temp tables set up) on a read-only connection."""
    con = warehouse.connect(path, read_only=True)
    run = Run(con, parsed, read_currencies(), period, run_instant)
    run.setup()
    return con, run


def _sets(path: Path, parsed, period: date, kind: str,
          run_instant: datetime | None = None) -> dict[tuple[str, str], levels.LevelSet]:
    con, run = _run(path, parsed, period, run_instant)
    try:
        return {(s.customer_id, s.set_id): s for s in run.levels(kind)}
    finally:
        run.teardown()
        con.close()


# --------------------------------------------------------------------------- the arithmetic
@pytest.mark.parametrize("numerator, divisor, quotient", [
    # 0.000162 GB x 1 s over April's 30 days: 0.0000000000625 exactly -> ...063 (half-even: 062)
    (162_000_000 * 1_000_000, 30 * 86_400_000_000, "0.000000000063"),
    (-162_000_000 * 1_000_000, 30 * 86_400_000_000, "-0.000000000063"),
    (10**12 * 7, 7, "1.000000000000"), (0, 31 * 86_400_000_000, "0.000000000000"),
    (1, 3, "0.000000000000"), (2, 3, "0.000000000001"), (-2, 3, "-0.000000000001"),
])
def test_the_quotient_is_exact_and_rounded_once_half_away_from_zero(numerator, divisor,
                                                                   quotient):
    assert format(levels.quotient_12(numerator, divisor), "f") == quotient


def test_divisors_follow_the_time_unit(case):
    meters = levels.level_meters(case["parsed"].meters)
    assert {m: levels.divisor(meters[m], MARCH) for m in meters} == {
        "storage_gb": 31 * 86_400_000_000, "scratch_gb": 31 * 86_400_000_000,
        "seats": 86_400_000_000, "instances": 3_600_000_000,
        "projects": 31 * 86_400_000_000}  # running_total: unused
    assert levels.divisor(meters["storage_gb"], date(2026, 2, 1)) == 28 * 86_400_000_000


# --------------------------------------------------------------------------- the level sets
def test_level_sets_are_the_cases_figures(case, home):
    parsed = case["parsed"]
    items = _sets(home, parsed, MARCH, "item")
    eu = items[("tw_acme", "storage_eu")]
    # 100 carried in from acme-1; 115 from 03-10 (acme-3 +20, acme-4 -5 at one instant)
    assert (eu.carried_level, eu.event_count, eu.steps, eu.live) == (D(100), 2, 2, True)
    day = 86_400_000_000
    assert eu.integral == (100 * 9 + 115 * 22) * day * 10**12
    assert eu.quantity == D("110.645161290323")  # rounding each step first gives ...322
    us = items[("tw_acme", "storage_us")]
    # acme-2 at March's first instant: one step from s, then acme-6
    assert (us.carried_level, us.steps, us.quantity) == (D(0), 2, D("45.806451612903"))
    assert items[("tw_quiet", "storage_eu")].event_count == 0
    assert items[("tw_quiet", "storage_eu")].quantity == D(12)
    assert items[("tw_neg", "seats")].quantity == D(25)  # a negative level, taken as is
    assert items[("tw_compute", "instance_hours")].quantity == D("963.258472222222")
    assert items[("tw_proj", "projects")].quantity == D(4)  # proj-3 at 23:59:59.999999Z

    meters = _sets(home, parsed, MARCH, "meter")
    acme = meters[("tw_acme", "storage_gb")]
    assert (acme.carried_level, acme.event_count, acme.quantity) == (
        D(100), 5, D("177.741935483871"))  # its own level, not the sum of its items'
    assert meters[("tw_seats", "seats")].quantity == D("202.25")
    unbilled = _sets(home, parsed, APRIL, "unbilled")
    assert (unbilled[("tw_acme", "storage_gb")].event_count,
            unbilled[("tw_acme", "storage_gb")].quantity) == (0, D(30))

    april = _sets(home, parsed, APRIL, "item")
    # back to 0 on 03-15 with no April event: a set, but not live
    assert april[("tw_zero", "storage_us")].live is False
    assert april[("tw_blip", "scratch")].quantity == D("0.000000000063")
    assert april[("tw_acme", "storage_eu")].quantity == D(100)  # acme-7 at April's first instant


def test_a_month_to_date_period_accrues_up_to_the_run_instant(case, home):
    parsed = case["parsed"]
    mid_april = datetime(2026, 4, 15, 12, tzinfo=UTC)
    meters = _sets(home, parsed, APRIL, "meter", mid_april)
    seats = meters[("tw_seats", "seats")]
    # 8 carried in, 6 from April's first instant for 14.5 days; seats-6 (04-20) is after the
    # run's instant: counted as April's event, not yet in the level
    assert (seats.event_count, seats.quantity, seats.closing_level) == (2, D(87), D(6))
    # the divisor stays the whole month: 160 for 14.5 of April's 30 days
    assert meters[("tw_acme", "storage_gb")].quantity == D("77.333333333333")
    assert meters[("tw_proj", "projects")].quantity == D(14)  # running_total before the instant
    assert meters[("tw_blip", "scratch_gb")].quantity == D(0)
    assert meters[("tw_compute", "instances")].quantity == D(216)  # back to 0 on 04-10
    # an instant after the period is its end; one before it accrues nothing
    assert _sets(home, parsed, APRIL, "meter", datetime(2026, 6, 1, tzinfo=UTC))[
        ("tw_seats", "seats")].quantity == D(191)
    early = _sets(home, parsed, APRIL, "meter", datetime(2026, 3, 20, tzinfo=UTC))
    assert early[("tw_seats", "seats")].quantity == D(0)
    assert early[("tw_proj", "projects")].quantity == D(4)  # the level carried in


def test_a_month_to_date_draft_is_checked_against_its_accrued_figures(case, home, tmp_path):
    mid_april = datetime(2026, 4, 15, 12, tzinfo=UTC)
    copy = _tampered(home, tmp_path, "update marts.fct_meter_usage set quantity = 87 "
                     "where customer_id = 'tw_seats' and billing_period_start = '2026-04-01'")
    results = _checks(copy, case["parsed"], APRIL, checks=["events_counted_once"],
                      run_instant=mid_april)
    usage = results["events_counted_once"]
    assert usage.figures["accrued_to"] == "2026-04-15T12:00:00+00:00"
    # tw_seats' row now holds its month-to-date figure; the other rows still hold the closed
    # month's, which a draft accrued to mid-April must not show
    wrong = {(d["customer_id"], d["meter_id"]) for d in usage.figures["differences"]}
    assert ("tw_seats", "seats") not in wrong
    assert {("tw_acme", "storage_gb"), ("tw_neg", "seats"), ("tw_blip", "scratch_gb")} <= wrong
    # and the closed month is checked against its end, whatever the run's instant
    assert _failed(_checks(home, case["parsed"], MARCH, run_instant=mid_april)) == set()


# --------------------------------------------------------------------------- the checks
@pytest.mark.parametrize("period", [MARCH, APRIL])
def test_the_cases_figures_pass_every_check(case, home, period):
    results = _checks(home, case["parsed"], period)
    assert _failed(results) == set(), "\n".join(str(r) for r in results.values()
                                                 if not r.passed)
    usage = results["events_counted_once"].figures
    # carried levels alone: tw_quiet in March; tw_quiet and tw_neg in April
    assert usage["carried_level_rows"] == (1 if period == MARCH else 2)
    assert usage["raw_events"] == usage["fct_event_count"] == (16 if period == MARCH else 6)
    rated = results["rated_quantity_matches_usage"].figures
    assert rated["items_with_usage"] == 8  # tw_blip's item is live in April only, tw_zero's
    # in March only
    unbilled = results["unbilled_usage_reported"].figures["unbilled"]
    assert unbilled == [{"customer_id": "tw_acme", "meter_id": "storage_gb",
                         "quantity": "21.290322580645" if period == MARCH else "30",
                         "event_count": 1 if period == MARCH else 0}]


def test_a_customer_carrying_a_level_gets_an_invoice(case, home):
    # tw_quiet's active range ends on 2026-04-01, and it has no April event: the level 12
    # carried in is usage; tw_zero's level is back at 0, but it is active
    con, run = _run(home, case["parsed"], APRIL)
    try:
        assert {"tw_quiet", "tw_zero", "tw_blip"} <= run.recipients()
        live = {(u.customer_id, u.product_item_id) for u in run.item_usage()}
    finally:
        run.teardown()
        con.close()
    assert ("tw_quiet", "storage_eu") in live and ("tw_acme", "storage_us") in live
    assert ("tw_zero", "storage_us") not in live


def _meter_row(customer: str, meter: str, period: date) -> str:
    return (f"customer_id = '{customer}' and meter_id = '{meter}' "
            f"and billing_period_start = '{period.isoformat()}'")


def _item_lines(customer: str, item: str, period: date) -> str:
    return (f"customer_id = '{customer}' and product_item_id = '{item}' "
            f"and billing_period_start = '{period.isoformat()}'")


def test_a_wrong_level_quantity_fails_naming_the_customer_and_meter(case, home, tmp_path):
    # one step rounded too early, or half-even instead of half away from zero
    copy = _tampered(home, tmp_path,
                     "update marts.fct_meter_usage set quantity = 177.741935483870 where "
                     + _meter_row("tw_acme", "storage_gb", MARCH),
                     "update marts.fct_meter_usage set quantity = 0.000000000062 where "
                     + _meter_row("tw_blip", "scratch_gb", APRIL))
    results = _checks(copy, case["parsed"], MARCH)
    assert _failed(results) == {"events_counted_once"}
    [diff] = results["events_counted_once"].figures["differences"]
    assert (diff["customer_id"], diff["meter_id"]) == ("tw_acme", "storage_gb")
    assert (diff["recomputed_quantity"], diff["fct_quantity"]) == (
        "177.741935483871", "177.74193548387")
    assert diff["problems"] == ["quantity 177.74193548387 but the time_weighted_sum of the "
                                "level (level 100 carried in) is 177.741935483871"]
    assert diff["level"]["carried_level"] == "100" and diff["level"]["steps"] == 3  # 150, 195, 175
    assert "tw_acme/storage_gb" in results["events_counted_once"].summary
    april = _checks(copy, case["parsed"], APRIL)["events_counted_once"]
    [diff] = april.figures["differences"]
    assert (diff["customer_id"], diff["meter_id"], diff["recomputed_quantity"]) == (
        "tw_blip", "scratch_gb", "0.000000000063")


def test_a_missing_carried_level_row_fails(case, home, tmp_path):
    copy = _tampered(home, tmp_path, "delete from marts.fct_meter_usage where "
                     + _meter_row("tw_quiet", "storage_gb", MARCH))
    result = _checks(copy, case["parsed"], MARCH)["events_counted_once"]
    assert not result.passed and result.blocking
    [diff] = result.figures["differences"]
    assert (diff["customer_id"], diff["meter_id"], diff["raw_event_count"]) == (
        "tw_quiet", "storage_gb", 0)
    assert diff["problems"] == ["no fct_meter_usage row, but a non-zero level 12 carried in is "
                                "usage of the period (event_count 0, quantity 12)"]
    assert "tw_quiet/storage_gb" in result.summary


def test_a_wrong_event_count_of_a_carried_level_fails(case, home, tmp_path):
    copy = _tampered(home, tmp_path, "update marts.fct_meter_usage set event_count = 1 where "
                     + _meter_row("tw_quiet", "storage_gb", APRIL))
    result = _checks(copy, case["parsed"], APRIL)["events_counted_once"]
    [diff] = result.figures["differences"]
    assert (diff["customer_id"], diff["meter_id"]) == ("tw_quiet", "storage_gb")
    assert diff["problems"] == ["event_count 1 but 0 raw event(s) (a carried level counts "
                                "none)"]


def test_a_row_that_no_level_makes_is_reported(case, home, tmp_path):
    # tw_zero's level went back to 0 on 03-15 and it has no April event: no April row
    copy = _tampered(home, tmp_path, "insert into marts.fct_meter_usage values ('tw_zero', "
                     "'storage_gb', date '2026-04-01', date '2026-05-01', 0, 0)")
    result = _checks(copy, case["parsed"], APRIL)["events_counted_once"]
    [diff] = result.figures["differences"]
    assert (diff["customer_id"], diff["meter_id"]) == ("tw_zero", "storage_gb")
    assert diff["problems"] == ["an fct_meter_usage row with event_count 0 and no raw event in "
                                "the period nor a non-zero level carried in"]


def test_a_missing_line_of_a_live_item_fails_the_line_checks(case, home, tmp_path):
    copy = _tampered(home, tmp_path, "delete from marts.fct_invoice_lines where "
                     + _item_lines("tw_quiet", "storage_eu", APRIL))
    results = _checks(copy, case["parsed"], APRIL)
    assert _failed(results) == {"rated_quantity_matches_usage",
                                "line_amounts_match_decimal_pricer"}
    [diff] = results["rated_quantity_matches_usage"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["carried_level"]) == (
        "tw_quiet", "storage_eu", "12")
    assert diff["problems"] == ["the level 12 it carries in makes it live (no event of its "
                                "own), but it has no usage line"]
    [diff] = results["line_amounts_match_decimal_pricer"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["expected_amount"]) == (
        "tw_quiet", "storage_eu", "2.40")
    assert diff["problems"] == ["line missing from the marts"]


def test_a_line_of_an_item_that_is_not_live_fails_the_line_checks(case, home, tmp_path):
    copy = _tampered(home, tmp_path, "insert into marts.fct_invoice_lines values "
                     "('INV-202604-tw_zero', 1, 'tw_zero', date '2026-04-01', date '2026-05-01', "
                     "'usage', 'storage_us', null, 0, 0.20, 0.00, 'USD')")
    results = _checks(copy, case["parsed"], APRIL)
    assert _failed(results) == {"rated_quantity_matches_usage",
                                "line_amounts_match_decimal_pricer"}
    [diff] = results["rated_quantity_matches_usage"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"]) == ("tw_zero", "storage_us")
    assert diff["problems"] == ["usage lines but no event of the period matches the item and "
                                "the level it carries in is 0: it is not live"]
    [diff] = results["line_amounts_match_decimal_pricer"].figures["differences"]
    assert diff["problems"] == ["a line the pricer does not produce"]


def test_a_line_quantity_rounded_per_step_fails(case, home, tmp_path):
    # (100 x 9 d) / 31 d and (115 x 22 d) / 31 d rounded apart add up to 110.645161290322
    copy = _tampered(home, tmp_path, "update marts.fct_invoice_lines set quantity = "
                     "110.645161290322 where " + _item_lines("tw_acme", "storage_eu", MARCH))
    results = _checks(copy, case["parsed"], MARCH)
    assert _failed(results) == {"rated_quantity_matches_usage",
                                "line_amounts_match_decimal_pricer"}
    [diff] = results["rated_quantity_matches_usage"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["expected_quantity"]) == (
        "tw_acme", "storage_eu", "110.645161290323")
    assert "(level 100 carried in)" in diff["problems"][0]


def test_a_missing_unbilled_carried_level_is_reported_without_blocking(case, home, tmp_path):
    copy = _tampered(home, tmp_path, "delete from marts.fct_unbilled_usage where "
                     + _meter_row("tw_acme", "storage_gb", APRIL))
    results = _checks(copy, case["parsed"], APRIL)
    assert _failed(results) == {"unbilled_usage_reported"}
    result = results["unbilled_usage_reported"]
    assert not result.blocking
    [diff] = result.figures["differences"]
    assert (diff["customer_id"], diff["meter_id"], diff["recomputed_quantity"]) == (
        "tw_acme", "storage_gb", "30")
    assert diff["problems"] == ["an unbilled level 30 carried in, reported in 0 "
                                "fct_unbilled_usage row(s)"]


def test_a_published_period_carries_only_the_levels_landed_before_publishing(
        case, home, tmp_path):
    # March is published a day after the ingest; late-quiet (-12 on 03-21) lands after it:
    # March's lines keep the level 12 (the adjustment restates it elsewhere), while the usage
    # marts cover every event landed, and April's carried level is 0 now
    late = [("late-quiet", "tw_quiet", "storage_gb", "-12", "2026-03-21T00:00:00+00:00",
             '{"region": "eu"}', "b_late.csv", 3, "sha-b_late.csv", "run-2",
             (LANDED_AT + timedelta(days=2)).isoformat(), 103)]  # row 3 of b_late.csv
    copy = _tampered(home, tmp_path,
                     "insert into billing.published_periods values (date '2026-03-01', "
                     f"timestamptz '{(LANDED_AT + timedelta(days=1)).isoformat()}', 8, 'test')")
    con = warehouse.connect(copy)
    try:
        _insert_raw(con, late)
        con.execute("checkpoint")
    finally:
        con.close()
    march = _checks(copy, case["parsed"], MARCH)
    assert _failed(march) == {"events_counted_once"}
    [diff] = march["events_counted_once"].figures["differences"]
    assert (diff["customer_id"], diff["raw_event_count"], diff["recomputed_quantity"]) == (
        "tw_quiet", 1, "7.741935483871")  # 12 x 20 d / 31 d; the marts not rebuilt
    con, run = _run(copy, case["parsed"], APRIL)
    try:
        assert "tw_quiet" not in run.recipients()
        assert "tw_quiet" not in {u.customer_id for u in run.item_usage()}
    finally:
        run.teardown()
        con.close()


def test_an_integral_beyond_exact_integers_fails_closed(case, home, tmp_path):
    # a level of 10^20 held for most of April: 10^20 x 10^12 units x 2.5 x 10^12 us is beyond
    # HUGEINT; the check stops (blocking) instead of rounding or wrapping
    copy = _tampered(home, tmp_path)
    con = warehouse.connect(copy)
    try:
        _insert_raw(con, [("huge-1", "tw_blip", "scratch_gb", "100000000000000000000",
                           "2026-04-02T00:00:00+00:00", "{}", "huge.jsonl", 1, "sha-huge",
                           "run-2", LANDED_AT.isoformat(), 1000)])
        con.execute("checkpoint")
    finally:
        con.close()
    result = _checks(copy, case["parsed"], APRIL, checks=["events_counted_once"])[
        "events_counted_once"]
    assert not result.passed and result.blocking
    assert "could not run" in result.summary and "Overflow" in result.summary


# --------------------------------------------------------------------------- the kept month sums

def _all_sets(con, parsed, period: date, run_instant: datetime | None = None):
    run = Run(con, parsed, read_currencies(), period, run_instant)
    run.setup()
    try:
        return run.month_sums, {kind: run.levels(kind) for kind in levels.KINDS}
    finally:
        run.teardown()


def test_kept_month_sums_give_the_figures_of_a_full_scan(case, home, tmp_path):
    """A writer keeps billing.reconciliation_level_months and adds only the events landed since
    its last run; a read-only run scans every level event: the same level sets either way, after
    the first run and after late events that restate the carried levels."""
    parsed = case["parsed"]
    copy = _tampered(home, tmp_path)
    late = [("late-1", "tw_acme", "storage_gb", "7.5", "2026-02-10T00:00:00+00:00",
             '{"region": "eu"}', "late",
             1, "sha-late", "run-2", "2026-05-03T00:00:00+00:00", 10_000)]
    for step in ("first", "late"):
        con = warehouse.connect(copy)
        try:
            if step == "late":
                _insert_raw(con, late)
            how, kept = _all_sets(con, parsed, APRIL)
            held = con.execute("select count(*), max(through_landing_seq) "
                               "from billing.reconciliation_level_months").fetchone()
        finally:
            con.close()
        con = warehouse.connect(copy, read_only=True)
        try:
            scanned_how, scanned = _all_sets(con, parsed, APRIL)
        finally:
            con.close()
        assert (how, scanned_how) == ("kept", "scanned")
        assert kept == scanned, step
        assert held[0] > 0
    assert held[1] == 10_000  # the late event was added
    con = warehouse.connect(home, read_only=True)
    try:
        before = _all_sets(con, parsed, APRIL)[1]
    finally:
        con.close()
    for kind in ("meter", "item"):
        was = {(s.customer_id, s.set_id): s.carried_level for s in before[kind]}
        now = {(s.customer_id, s.set_id): s.carried_level for s in kept[kind]}
        key = ("tw_acme", "storage_gb") if kind == "meter" else next(
            k for k in now if k[0] == "tw_acme" and now[k] != was.get(k))
        assert now[key] == was[key] + D("7.5"), kind


def test_kept_month_sums_are_rebuilt_when_the_level_catalog_changes(case, home, tmp_path):
    parsed = case["parsed"]
    copy = _tampered(home, tmp_path, "insert into billing.reconciliation_level_months values "
                     "('stale', 'acme', 'storage_gb', null, '2026-01-01', "
                     "'2026-05-02T00:00:00Z', 1000, 1, 999999)")
    con = warehouse.connect(copy)
    try:
        how, kept = _all_sets(con, parsed, APRIL)
        stale = con.execute("select count(*) from billing.reconciliation_level_months "
                            "where level_fingerprint = 'stale'").fetchone()[0]
    finally:
        con.close()
    con = warehouse.connect(copy, read_only=True)
    try:
        _how, scanned = _all_sets(con, parsed, APRIL)
    finally:
        con.close()
    assert how == "kept" and stale == 0
    assert kept == scanned  # the stale row's watermark (999999) did not hide any event
