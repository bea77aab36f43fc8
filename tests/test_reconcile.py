"""Reconciliation: the independent Decimal pricer on the contract's edge cases, and every check
of orchestration.billing.reconciliation on a real warehouse (no mocks).

The warehouse is the hand-made month of tests/handmade.py, built once through the real CLI
(`ingest`, then `bill --period 2026-10`), plus a second landing file with a duplicate, three
quarantined rows and one event of a meter no item prices (none of which changes an invoice).
Every check passes on it. Then the data is broken on purpose, each time in a copy of the
warehouse file, and the right check fails with figures naming what differs. Claims over the
marts' own tables are not these checks' to state: breaking them fails their dbt tests instead.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import subprocess
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.billing import pricer
from orchestration.billing.pricer import (
    ItemUsage,
    Pricer,
    PricingError,
    ceil_div_exact,
    price_period,
    round_half_away,
)
from orchestration.billing.reconciliation.registry import CHECKS, run_checks
from orchestration.billing.reconciliation.result import CheckResult
from orchestration.catalog.model import Parsed, parse
from orchestration.catalog.read import load_catalog
from orchestration.catalog.rules import validate
from orchestration.lib import warehouse
from tests.conftest import run_meterline
from tests.handmade import CATALOG, EXPECTED, make_home

OCTOBER = date(2026, 10, 1)
D = Decimal


# =========================================================================== the pricer alone
PRICER_CATALOG = {
    "customers.csv": """customer_id,customer_name,currency
usd_co,USD Co,USD
globex,Globex,USD
jpy_co,JPY Co,JPY
kwd_co,KWD Co,KWD
commit_co,Commit Co,USD
""",
    "meters.csv": """meter_id,display_name,unit,aggregation,unique_dimension
api,API,call,sum,
users,Users,user,unique_count,user_id
compute,Compute,hour,sum,
requests,Requests,request,count,
tokens,Tokens,token,sum,
transfer,Transfer,GB,sum,
seats,Seats,seat,latest,
""",
    "product_items.csv": """product_item_id,display_name,meter_id,dimension_filter
api_graduated,API,api,
users_volume,Users,users,
compute_package,Compute,compute,
requests_per_unit,Requests,requests,
tokens_per_unit,Tokens,tokens,
transfer_graduated,Transfer,transfer,
seat_licenses,Seats,seats,
""",
    "rates.csv": """rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r_api_usd,api_graduated,,USD,graduated,,,,2025-01-01,
r_users_usd,users_volume,,USD,volume,,,,2025-01-01,
r_users_kwd,users_volume,,KWD,volume,,,,2025-01-01,
r_compute_usd,compute_package,,USD,package,3.00,10,5,2025-01-01,
r_compute_globex,compute_package,globex,USD,package,0.50,100,0,2025-01-01,
r_compute_jpy,compute_package,,JPY,package,100,10,5,2025-01-01,
r_req_usd,requests_per_unit,,USD,per_unit,0.25,,3,2025-01-01,
r_req_globex,requests_per_unit,globex,USD,per_unit,0.025,,0,2025-01-01,
r_tokens_jpy,tokens_per_unit,,JPY,per_unit,2.5,,0,2025-01-01,
r_tokens_usd,tokens_per_unit,,USD,per_unit,1.00,,0,2025-01-01,
r_transfer_usd,transfer_graduated,,USD,graduated,,,,2025-01-01,
r_seat_old,seat_licenses,,USD,per_unit,10.00,,0,2025-01-01,2026-03-15
r_seat_new,seat_licenses,,USD,per_unit,12.00,,0,2026-03-15,
""",
    "rate_tiers.csv": """rate_id,tier,up_to,unit_price,flat_fee
r_api_usd,1,100,0.10,0
r_api_usd,2,1000,0.05,5.00
r_api_usd,3,,0.01,0
r_users_usd,1,2,8.00,4.00
r_users_usd,2,5,6.00,3.00
r_users_usd,3,,5.00,0
r_users_kwd,1,2,1.2345,0
r_users_kwd,2,5,1.0005,0.5
r_users_kwd,3,,0.9,0
r_transfer_usd,1,10,0,2.00
r_transfer_usd,2,,0.09,0
""",
    "commitments.csv": """customer_id,minimum_amount,currency,effective_from,effective_to
commit_co,500.00,USD,2025-01-01,2026-03-01
commit_co,50.00,USD,2026-03-01,
""",
}
MARCH = date(2026, 3, 1)


@pytest.fixture(scope="module")
def pricer_catalog(tmp_path_factory) -> Parsed:
    folder = tmp_path_factory.mktemp("pricer_catalog")
    for name, text in PRICER_CATALOG.items():
        (folder / name).write_text(text)
    catalog = load_catalog(folder)
    assert validate(catalog) == []
    return parse(catalog)


def _lines(parsed, customer, item, aggregate, period=MARCH):
    return [(line.tier, line.quantity, line.unit_price, line.amount)
            for line in Pricer(parsed).price_item(customer, item, D(aggregate), period)]


@pytest.mark.parametrize("amount, minor_unit, rounded", [
    ("0.125", 2, "0.13"), ("-0.125", 2, "-0.13"), ("0.124999999999999999999999999999", 2, "0.12"),
    ("0.004999999999999999999999999999999999", 2, "0.00"), ("12.5", 0, "13"),
    ("-2.5", 0, "-3"), ("4.5", 0, "5"), ("5.5025", 3, "5.503"), ("0.0625", 3, "0.063"),
    ("8.5325", 2, "8.53"), ("0", 2, "0.00"),
    ("12345678901234567890123456.5", 0, "12345678901234567890123457"),
])
def test_round_half_away_from_zero_once(amount, minor_unit, rounded):
    result = round_half_away(D(amount), minor_unit)
    assert str(result) == rounded  # exact text: the minor unit's scale, no '-0.00'


@pytest.mark.parametrize("numerator, denominator, packages", [
    ("100000.000000000001", "100", 1001), ("100000", "100", 1000), ("0", "100", 0),
    ("100.25", "100", 2), ("0.000000000001", "1000000", 1), ("2000", "0.3", 6667),
    ("12345678901234567890123456.000000000001", "0.000000000001",
     12345678901234567890123456000000000001),
])
def test_ceil_div_is_exact(numerator, denominator, packages):
    assert ceil_div_exact(D(numerator), D(denominator)) == packages


def test_graduated_quantity_exactly_at_up_to_stays_in_that_tier(pricer_catalog):
    # 100 is tier 1's up_to: no unit reaches tier 2, so no tier-2 line and no tier-2 flat fee
    assert _lines(pricer_catalog, "usd_co", "api_graduated", "100") == [
        (1, D("100"), D("0.10"), D("10.00"))]
    # 1000 fills tiers 1 and 2 exactly: tier 3 gets no line
    assert _lines(pricer_catalog, "usd_co", "api_graduated", "1000") == [
        (1, D("100"), D("0.10"), D("10.00")), (2, D("900"), D("0.05"), D("50.00"))]
    assert _lines(pricer_catalog, "usd_co", "api_graduated", "1000.000000000001") == [
        (1, D("100"), D("0.10"), D("10.00")), (2, D("900"), D("0.05"), D("50.00")),
        (3, D("0.000000000001"), D("0.01"), D("0.00"))]


def test_volume_quantity_exactly_at_up_to_is_priced_by_that_tier(pricer_catalog):
    assert _lines(pricer_catalog, "usd_co", "users_volume", "2") == [
        (1, D("2"), D("8.00"), D("20.00"))]  # 2 x 8 + tier 1's flat fee 4
    assert _lines(pricer_catalog, "usd_co", "users_volume", "5") == [
        (2, D("5"), D("6.00"), D("33.00"))]
    assert _lines(pricer_catalog, "usd_co", "users_volume", "6") == [
        (3, D("6"), D("5.00"), D("30.00"))]


def test_package_uses_an_exact_ceiling(pricer_catalog):
    # ceil(100000.000000000001 / 100) = 1001 packages (a double division gives 1000)
    assert _lines(pricer_catalog, "globex", "compute_package", "100000.000000000001") == [
        (None, D("100000.000000000001"), D("0.50"), D("500.50"))]
    # free units first: ceil((25 - 5) / 10) = 2 packages of 100 JPY; quantity is Q
    assert _lines(pricer_catalog, "jpy_co", "compute_package", "25") == [
        (None, D("25"), D("100"), D("200"))]
    assert _lines(pricer_catalog, "usd_co", "compute_package", "4") == [
        (None, D("4"), D("3.00"), D("0.00"))]


def test_contract_rounding_cases(pricer_catalog):
    # 5 x 0.025 = 0.125 -> 0.13 (customer override beats the 0.25 list price with 3 free)
    assert _lines(pricer_catalog, "globex", "requests_per_unit", "5") == [
        (None, D("5"), D("0.025"), D("0.13"))]
    # JPY has no minor unit: 5 x 2.5 = 12.5 -> 13
    assert _lines(pricer_catalog, "jpy_co", "tokens_per_unit", "5") == [
        (None, D("5"), D("2.5"), D("13"))]
    # KWD has 3: 5 x 1.0005 + 0.5 = 5.5025 -> 5.503
    assert _lines(pricer_catalog, "kwd_co", "users_volume", "5") == [
        (2, D("5"), D("1.0005"), D("5.503"))]
    # free units: (5 - 3) x 0.25
    assert _lines(pricer_catalog, "usd_co", "requests_per_unit", "5") == [
        (None, D("5"), D("0.25"), D("0.50"))]


def test_zero_quantity_gives_one_zero_line_tier_one_and_no_flat_fee(pricer_catalog):
    # tier 1 of r_transfer_usd has a flat fee of 2.00: not charged when Q = 0
    assert _lines(pricer_catalog, "usd_co", "transfer_graduated", "0") == [
        (1, D("0"), D("0"), D("0.00"))]
    assert _lines(pricer_catalog, "usd_co", "users_volume", "0") == [
        (1, D("0"), D("8.00"), D("0.00"))]
    assert _lines(pricer_catalog, "usd_co", "tokens_per_unit", "0") == [
        (None, D("0"), D("1.00"), D("0.00"))]


def test_negative_aggregate_is_billed_as_zero(pricer_catalog):
    assert _lines(pricer_catalog, "usd_co", "transfer_graduated", "-7.5") == [
        (1, D("0"), D("0"), D("0.00"))]
    assert _lines(pricer_catalog, "usd_co", "tokens_per_unit", "-3") == [
        (None, D("0"), D("1.00"), D("0.00"))]
    assert _lines(pricer_catalog, "usd_co", "compute_package", "-100") == [
        (None, D("0"), D("3.00"), D("0.00"))]


def test_rate_in_effect_on_the_first_day_no_proration(pricer_catalog):
    # r_seat_old (10.00) is in effect on March 1st; r_seat_new starts on the 15th
    assert _lines(pricer_catalog, "usd_co", "seat_licenses", "8") == [
        (None, D("8"), D("10.00"), D("80.00"))]
    assert _lines(pricer_catalog, "usd_co", "seat_licenses", "8", date(2026, 4, 1)) == [
        (None, D("8"), D("12.00"), D("96.00"))]


def test_commitment_tops_up_the_sum_of_rounded_usage_lines(pricer_catalog):
    lines, problems = price_period(
        pricer_catalog, [ItemUsage("commit_co", "requests_per_unit", D("9")),
                         ItemUsage("commit_co", "tokens_per_unit", D("3.015"))],
        MARCH, customers=["usd_co"])
    assert problems == {}
    got = [(line.line_type, line.product_item_id, line.amount) for line in lines["commit_co"]]
    # 1.50 + 3.02 (3.015 rounded first) = 4.52; the 50.00 commitment of March tops up 45.48
    assert got == [("usage", "requests_per_unit", D("1.50")),
                   ("usage", "tokens_per_unit", D("3.02")),
                   ("minimum_commitment", None, D("45.48"))]
    assert lines["usd_co"] == []  # an invoice without lines and without commitment
    # February: the 500.00 commitment was in effect on the first day
    feb, _ = price_period(pricer_catalog, [], date(2026, 2, 1), customers=["commit_co"])
    assert [(line.line_type, line.amount) for line in feb["commit_co"]] == [
        ("minimum_commitment", D("500.00"))]


def test_no_rate_in_the_customers_currency_is_a_pricing_problem(pricer_catalog):
    with pytest.raises(PricingError, match="kwd_co, product item api_graduated: no rate"):
        Pricer(pricer_catalog).price_item("kwd_co", "api_graduated", D(1), MARCH)
    lines, problems = price_period(
        pricer_catalog, [ItemUsage("kwd_co", "api_graduated", D(1)),
                         ItemUsage("usd_co", "api_graduated", D(1))], MARCH)
    assert "no rate in effect on 2026-03-01 in KWD" in problems["kwd_co"]
    assert [line.amount for line in lines["usd_co"]] == [D("0.10")]


def test_pricing_is_exact_far_beyond_double_precision(pricer_catalog):
    q = "12345678901234567890123456.123456789012"
    [(tier, quantity, _, amount)] = _lines(pricer_catalog, "usd_co", "tokens_per_unit", q)
    assert quantity == D(q) and amount == D("12345678901234567890123456.12")
    line = Pricer(pricer_catalog).price_item("usd_co", "tokens_per_unit", D(q), MARCH)[0]
    assert line.exact_amount == D("12345678901234567890123456.12345678901200")


# =========================================================================== the checks
# The hand-made month, plus a meter without items (unbilled usage) and a second file landing
# after october.jsonl: an identical copy of u-c1 (duplicate), a conflicting copy of u-s1, an
# unknown customer and a malformed line (quarantined), an unbilled `logins` event.
RECON_CATALOG = dict(CATALOG)
RECON_CATALOG["meters.csv"] = CATALOG["meters.csv"] + "logins,Logins,login,count,\n"
EXTRA_ROWS = [
    json.dumps({"event_id": "u-c1", "customer_id": "hm_usd", "meter": "calls", "value": 700,
                "timestamp": "2026-10-02T00:00:00Z"}),
    json.dumps({"event_id": "u-s1", "customer_id": "hm_usd", "meter": "seats", "value": 5,
                "timestamp": "2026-10-05T00:00:00Z"}),
    json.dumps({"event_id": "x-1", "customer_id": "nobody", "meter": "calls", "value": 1,
                "timestamp": "2026-10-06T00:00:00Z"}),
    "this is not json",
    json.dumps({"event_id": "l-1", "customer_id": "hm_usd", "meter": "logins",
                "timestamp": "2026-10-07T00:00:00Z"}),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The billed home, built once: paths of the warehouse and the catalog."""
    root = tmp_path_factory.mktemp("reconcile")
    home, cat, cwd = make_home(root, RECON_CATALOG)
    (home / "landing" / "zz_extras.jsonl").write_text("\n".join(EXTRA_ROWS) + "\n")
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr + done.stdout
    return {"warehouse": home / "warehouse.duckdb", "catalog": cat, "root": root}


def _checks(path: Path, catalog, *, read_only: bool = False, **kwargs
            ) -> dict[str, CheckResult]:
    con = warehouse.connect(path, read_only=read_only)
    try:
        results = run_checks(con, catalog, OCTOBER, **kwargs)
    finally:
        con.close()
    assert [r.name for r in results] == list(kwargs.get("checks") or
                                             [check.name for check in CHECKS])
    for r in results:
        json.dumps(r.figures)  # JSON-able, money as strings
    return {r.name: r for r in results}


def _break(built: dict, tmp_path: Path, *statements: str) -> Path:
    """A copy of the warehouse broken with ``statements``."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built["warehouse"], copy)
    con = warehouse.connect(copy)  # read-write
    try:
        for sql in statements:
            con.execute(sql)
        con.execute("checkpoint")
    finally:
        con.close()
    return copy


def _broken(built: dict, tmp_path: Path, *statements: str, **kwargs
            ) -> dict[str, CheckResult]:
    """Break a copy of the warehouse with ``statements``, then run the checks on it."""
    copy = _break(built, tmp_path, *statements)
    return _checks(copy, load_catalog(built["catalog"]), **kwargs)


def _failed(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, r in results.items() if not r.passed}


@pytest.fixture(scope="module")
def clean(built) -> dict[str, CheckResult]:
    clock = time.perf_counter()
    results = _checks(built["warehouse"], load_catalog(built["catalog"]),
                      read_only=True)
    results["_seconds"] = time.perf_counter() - clock  # type: ignore[assignment]
    return results


def test_every_check_passes_on_the_clean_build(clean):
    seconds = clean.pop("_seconds")
    assert _failed(clean) == set(), "\n".join(str(r) for r in clean.values() if not r.passed)
    assert {n for n, r in clean.items() if not r.blocking} == {"unbilled_usage_reported"}
    assert seconds < 60

    files = clean["landed_file_counts"].figures
    assert (files["files"], files["rows_read"], files["rows_landed"], files["rows_duplicate"],
            files["rows_quarantined"]) == (2, 25, 21, 1, 3)

    usage = clean["events_counted_once"].figures
    # 19 of the 20 hand-made events are October's in UTC (u-c6 is November's), plus l-1; the
    # duplicate and the quarantined rows are not events
    assert usage["raw_events"] == usage["fct_event_count"] == 20

    amounts = clean["line_amounts_match_decimal_pricer"].figures
    want = {currency: total for currency, total, _ in EXPECTED.values()}
    want["USD"] = "94.45"  # hm_idle adds 0.00
    assert amounts["expected_total_by_currency"] == amounts["actual_total_by_currency"] == want
    assert amounts["expected_lines"] == amounts["actual_lines"] == sum(
        len(lines) for _, _, lines in EXPECTED.values())

    unbilled = clean["unbilled_usage_reported"]
    assert unbilled.figures["unbilled"] == [
        {"customer_id": "hm_usd", "meter_id": "logins", "quantity": "1", "event_count": 1}]

    ge = clean["table_expectations"].figures
    assert ge["expectations"] == 4  # integer minor units in range, of totals and of amounts
    assert ge["rows"] == {"fct_invoices": len(EXPECTED), "fct_invoice_lines": 10}


def test_the_clean_build_is_the_hand_made_month(built):
    con = warehouse.connect(built["warehouse"], read_only=True)
    try:
        totals = dict(con.execute("select customer_id, total from marts.fct_invoices "
                                  "where billing_period_start = date '2026-10-01'").fetchall())
    finally:
        con.close()
    assert totals == {c: D(total) for c, (_, total, _) in EXPECTED.items()}


def test_a_deleted_october_event_fails_the_event_and_quantity_checks(built, tmp_path):
    # u-c2: 800.5 calls of hm_usd on 2026-10-20
    results = _broken(built, tmp_path,
                      "delete from raw.usage_events where event_id = 'u-c2'")
    assert _failed(results) == {"landed_file_counts", "events_counted_once",
                                "rated_quantity_matches_usage",
                                "line_amounts_match_decimal_pricer"}

    [diff] = results["events_counted_once"].figures["differences"]
    assert (diff["customer_id"], diff["meter_id"]) == ("hm_usd", "calls")
    assert (diff["raw_event_count"], diff["fct_event_count"]) == (4, 5)
    assert (diff["recomputed_quantity"], diff["fct_quantity"]) == ("1706", "2506.5")

    [diff] = results["landed_file_counts"].figures["differences"]
    assert diff["source_file"] == "october.jsonl"
    assert (diff["stored"]["rows_landed"], diff["counted"]["rows_landed"]) == (20, 19)

    [diff] = results["rated_quantity_matches_usage"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"]) == ("hm_usd", "calls_item")
    assert (diff["expected_quantity"], diff["lines_quantity"]) == ("1706", "2506.5")

    [diff] = results["line_amounts_match_decimal_pricer"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["tier"]) == (
        "hm_usd", "calls_item", 2)
    # 706 x 0.005 + 1.00 = 4.53 instead of 1506.5 x 0.005 + 1.00 = 8.5325 -> 8.53
    assert (diff["expected_amount"], diff["actual_amount"]) == ("4.53", "8.53")


def test_a_tampered_line_amount_fails_the_pricer_check(built, tmp_path):
    # (that the invoice total no longer adds up is assert_invoice_total_equals_sum_of_lines's)
    results = _broken(built, tmp_path, """
        update intermediate.int_invoice_lines_drafted set amount = 0.93
        where invoice_id = 'INV-202610-hm_usd' and product_item_id = 'storage_item'""")
    assert _failed(results) == {"line_amounts_match_decimal_pricer"}
    [diff] = results["line_amounts_match_decimal_pricer"].figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["invoice_id"],
            diff["line_number"]) == ("hm_usd", "storage_item", "INV-202610-hm_usd", 4)
    assert (diff["expected_amount"], diff["actual_amount"]) == ("0.92", "0.93")
    assert "amount 0.93 but the pricer gives 0.92" in diff["problems"][0]


def test_a_changed_rate_in_the_catalog_fails_only_the_pricer_check(built):
    parsed = parse(load_catalog(built["catalog"]))
    parsed.rates = [dataclasses.replace(r, unit_price=D("0.024"))
                    if r.rate_id == "r_storage_usd" else r for r in parsed.rates]
    results = _checks(built["warehouse"], parsed, read_only=True)
    assert _failed(results) == {"line_amounts_match_decimal_pricer"}
    result = results["line_amounts_match_decimal_pricer"]
    assert result.blocking
    [diff] = result.figures["differences"]
    assert (diff["customer_id"], diff["product_item_id"], diff["rate_id"]) == (
        "hm_usd", "storage_item", "r_storage_usd")
    # 40 x 0.024 = 0.96, billed 40 x 0.023 = 0.92
    assert (diff["expected_amount"], diff["actual_amount"]) == ("0.96", "0.92")
    assert (diff["expected_unit_price"], diff["actual_unit_price"]) == ("0.024", "0.023")
    assert "hm_usd/usage/storage_item" in result.summary


def test_a_deleted_quarantine_row_fails_the_file_counts(built, tmp_path):
    results = _broken(built, tmp_path,
                      "delete from raw.quarantined_events where reason = 'unknown_customer'")
    assert _failed(results) == {"landed_file_counts"}
    [diff] = results["landed_file_counts"].figures["differences"]
    assert diff["source_file"] == "zz_extras.jsonl"
    assert (diff["stored"]["rows_quarantined"], diff["counted"]["rows_quarantined"]) == (3, 2)
    assert diff["problems"] == ["rows_quarantined 3 but 2 rows in raw.quarantined_events"]


def test_a_file_whose_stored_counts_do_not_add_up(built, tmp_path):
    results = _broken(built, tmp_path, "update raw.landed_files set rows_read = rows_read + 1 "
                                       "where source_file = 'zz_extras.jsonl'")
    assert _failed(results) == {"landed_file_counts"}
    [diff] = results["landed_file_counts"].figures["differences"]
    assert diff["problems"] == ["rows_read 6 != landed 1 + duplicate 1 + quarantined 3 = 5"]


#: Claims over the marts' own tables, each broken in one copy, and the dbt tests that own them.
MART_CLAIMS_BROKEN = [
    "update intermediate.int_invoices_drafted set total = total + 1, subtotal = subtotal + 1 "
    "where customer_id = 'hm_eur'",
    "update intermediate.int_invoice_lines_drafted set line_number = 3 "
    "where invoice_id = 'INV-202610-hm_jpy' and line_number = 2",
    "update intermediate.int_invoice_lines_drafted set line_number = 7 - line_number "
    "where invoice_id = 'INV-202610-hm_usd' and line_number in (3, 4)",
    "delete from intermediate.int_invoices_drafted where customer_id = 'hm_idle'",
    "update intermediate.int_invoices_drafted set billing_period_end = date '2026-12-01' "
    "where customer_id = 'hm_usd'",
    "update intermediate.int_invoice_lines_drafted set usage_period_end = date '2026-12-01' "
    "where invoice_id = 'INV-202610-hm_jpy' and line_number = 1",
]
MART_CLAIM_TESTS = {
    "assert_invoice_total_equals_sum_of_lines",  # hm_eur's total
    "assert_line_numbers_gap_free",  # hm_jpy's lines 1, 3
    "assert_line_numbers_follow_contract_order",  # hm_jpy's, and hm_usd's seats after storage
    "assert_one_invoice_per_customer_and_period",  # hm_idle's invoice gone
    "assert_invoice_ids_name_customer_and_period",  # hm_usd's invoice ending in December
    "assert_lines_agree_with_their_invoice",  # hm_jpy's usage line billing into December
    # the explorers' revenue is the lines: it no longer sums to hm_eur's altered total
    "assert_revenue_equals_invoice_totals",
}


def _failing_dbt_tests(path: Path, tmp_path: Path) -> set[str]:
    """Run every dbt data test of October on the warehouse at ``path``: the names that fail."""
    from orchestration.billing.project import DBT_PROJECT_DIR, dbt_executable

    target = tmp_path / "dbt-target"
    done = subprocess.run(
        [dbt_executable(), "test", "--select", "test_type:data", "--vars",
         "{billing_period: '2026-10-01', run_instant: '2026-11-01T05:00:00+00:00'}",
         "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target),
         "--log-path", str(tmp_path / "dbt-logs")],
        env=dict(os.environ, METERLINE_WAREHOUSE=str(path)), capture_output=True, text=True,
        check=False, cwd=tmp_path)
    assert (target / "run_results.json").exists(), done.stdout[-4000:] + done.stderr[-2000:]
    results = [r for r in json.loads((target / "run_results.json").read_text())["results"]
               if r["unique_id"].startswith("test.")]
    assert len(results) >= 40 and {r["status"] for r in results} <= {"pass", "fail"}, \
        done.stdout[-4000:]
    return {r["unique_id"].split(".")[2] for r in results if r["status"] == "fail"}


def test_claims_over_the_marts_fail_their_dbt_tests_not_the_reconciliation(built, tmp_path):
    """One owner per invariant: totals, line numbering and order, invoice ids, the lines'
    agreement with their invoice and one invoice per recipient are dbt tests over the marts, so
    breaking them leaves every independent re-derivation passing and fails exactly those tests
    (run at severity error in every build, and required by the publish gate)."""
    copy = _break(built, tmp_path, *MART_CLAIMS_BROKEN)
    results = _checks(copy, load_catalog(built["catalog"]))
    assert _failed(results) == set(), "\n".join(str(r) for r in results.values() if not r.passed)
    assert _failing_dbt_tests(copy, tmp_path) == MART_CLAIM_TESTS


def test_great_expectations_catches_amounts_beyond_the_sane_range(built, tmp_path):
    # 10^14 USD is 10^16 cents: beyond the 10^15 minor units of MAX_MINOR_UNITS
    results = _broken(built, tmp_path,
                      "update intermediate.int_invoice_lines_drafted set amount = 100000000000000 "
                      "where invoice_id = 'INV-202610-hm_eur' and line_number = 1",
                      "update intermediate.int_invoices_drafted set total = 100000000000000, "
                      "subtotal = 100000000000000 where customer_id = 'hm_usd'")
    assert _failed(results) == {"table_expectations", "line_amounts_match_decimal_pricer"}
    result = results["table_expectations"]
    found = {(d["table"], d["expectation"], d["kwargs"].get("column")): d
             for d in result.figures["differences"]}
    assert set(found) == {
        ("fct_invoices", "expect_column_values_to_be_between", "total_minor"),
        ("fct_invoice_lines", "expect_column_values_to_be_between", "amount_minor")}
    assert found[("fct_invoices", "expect_column_values_to_be_between", "total_minor")][
        "partial_unexpected_list"] == [10**16]
    [diff] = results["line_amounts_match_decimal_pricer"].figures["differences"]
    assert (diff["expected_amount"], diff["actual_amount"]) == ("5.00", "100000000000000.00")


def test_double_counted_meter_usage_fails_events_counted_once(built, tmp_path):
    results = _broken(built, tmp_path, """
        insert into marts.fct_meter_usage
        select * from marts.fct_meter_usage
        where customer_id = 'hm_eur' and meter_id = 'seats'""")
    assert _failed(results) == {"events_counted_once"}
    [diff] = results["events_counted_once"].figures["differences"]
    assert (diff["customer_id"], diff["meter_id"], diff["raw_event_count"],
            diff["fct_event_count"]) == ("hm_eur", "seats", 1, 2)


def test_wrong_unbilled_usage_is_reported_without_blocking(built, tmp_path):
    results = _broken(built, tmp_path, "delete from marts.fct_unbilled_usage")
    assert _failed(results) == {"unbilled_usage_reported"}
    assert [r for r in results.values() if r.blocking and not r.passed] == []
    [diff] = results["unbilled_usage_reported"].figures["differences"]
    assert (diff["customer_id"], diff["meter_id"], diff["recomputed_event_count"]) == (
        "hm_usd", "logins", 1)


LINE_CHECKS = ["rated_quantity_matches_usage", "line_amounts_match_decimal_pricer"]
LATE_EVENT = """
    insert into raw.usage_events
    select 'late-1', 'hm_eur', 'calls', 100, timestamptz '2026-10-15 00:00:00+00', '{{}}',
           'late.jsonl', 1, null, 'late-run', {landed_at}, 1000000, false
"""


@pytest.mark.parametrize("landed", ["after", "before"])
def test_a_published_period_is_compared_with_the_events_landed_before_publishing(
        built, tmp_path, landed):
    # the period is published at T (a day after the build landed its events); 100 more calls
    # of hm_eur land at T + 1 h (late usage, billed by an adjustment elsewhere) or, to prove
    # that the cutoff matters, at T - 1 h
    offset = "+" if landed == "after" else "-"
    results = _broken(
        built, tmp_path,
        # the drafts the marts show become October's published invoices, as publishing does
        "insert into billing.published_invoices "
        "select invoice_id, customer_id, billing_period_start, billing_period_end, currency, "
        "subtotal, total, line_count, 'published', 'MLN-' || invoice_id, now() "
        "from marts.fct_invoices where billing_period_start = date '2026-10-01'",
        "insert into billing.published_invoice_lines "
        "select invoice_id, line_number, customer_id, billing_period_start, billing_period_end, "
        "usage_period_start, usage_period_end, line_type, product_item_id, meter_id, "
        "description, quantity, unit_price, tier, amount, currency, rate_id "
        "from marts.fct_invoice_lines where billing_period_start = date '2026-10-01'",
        "insert into billing.published_periods "
        "select date '2026-10-01', max(landed_at) + interval 1 day, 4, 'test' "
        "from raw.usage_events",
        LATE_EVENT.format(landed_at=f"(select published_at from billing.published_periods) "
                                    f"{offset} interval 1 hour"),
        checks=LINE_CHECKS)
    if landed == "after":
        assert _failed(results) == set()
        assert results["rated_quantity_matches_usage"].figures["published_at"]
    else:
        assert _failed(results) == {"rated_quantity_matches_usage",
                                    "line_amounts_match_decimal_pricer"}
        [diff] = results["rated_quantity_matches_usage"].figures["differences"]
        assert (diff["customer_id"], diff["expected_quantity"], diff["lines_quantity"]) == (
            "hm_eur", "250.25", "150.25")


def test_a_missing_table_fails_closed(built, tmp_path):
    results = _broken(built, tmp_path, "drop view marts.fct_invoice_lines")
    failed = _failed(results)
    assert {"rated_quantity_matches_usage", "line_amounts_match_decimal_pricer",
            "table_expectations"} <= failed
    assert "could not run" in results["line_amounts_match_decimal_pricer"].summary


def test_checks_can_be_selected_and_leave_no_temp_tables(built):
    con = warehouse.connect(built["warehouse"], read_only=True)
    try:
        results = run_checks(con, load_catalog(built["catalog"]),
                             OCTOBER, checks=["line_amounts_match_decimal_pricer"])
        left = con.execute("select table_name from duckdb_tables() where temporary").fetchall()
    finally:
        con.close()
    assert [r.name for r in results] == ["line_amounts_match_decimal_pricer"] and results[0].passed
    assert left == []
    with pytest.raises(ValueError, match="not the first day"):
        run_checks(None, None, date(2026, 10, 2))  # type: ignore[arg-type]


def test_pricer_module_shares_no_code_with_the_sql_path():
    """The pricer imports nothing of the SQL path (no DuckDB, no dbt, no warehouse): only the
    standard library and the typed catalog."""
    tree = ast.parse(Path(pricer.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "decimal", "collections.abc", "dataclasses", "datetime",
                        "orchestration.catalog.model", "orchestration.catalog.read"}
