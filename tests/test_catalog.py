"""The price book: reading, every validation problem (CONTRACT.md section 3), the period check
against landed usage, the exact load into catalog.*, and the demo price book and events."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.catalog.load import CATALOG_DDL, CatalogInvalid, write_catalog
from orchestration.catalog.model import AGGREGATIONS, PRICING_MODELS, parse
from orchestration.catalog.periods import ingest_lookup, lookup_problems, period_problems
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import load_catalog, read_currencies
from orchestration.catalog.rules import validate
from orchestration.catalog.summary import summary
from orchestration.cli import demo_events as demo
from orchestration.lib import warehouse

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance"
NO_SHARED = (f"{SHARED} is absent: the conformance catalogs live in the workspace's shared/ "
             "folder next to the repository")


def write_catalog_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text.lstrip("\n"))
    return root


def located(problems: list[Problem]) -> list[tuple[str, int | None, str | None]]:
    return [(p.file, p.row, p.field) for p in problems]


# --------------------------------------------------------------------------- demo price book
def test_demo_price_book_validates_cleanly():
    catalog = load_catalog(SEEDS)
    assert validate(catalog) == []
    assert lookup_problems(catalog) == []


def test_demo_price_book_has_the_promised_shape():
    p = parse(load_catalog(SEEDS))
    assert len(p.customers) == 12
    assert {c.currency for c in p.customers} == {"USD", "EUR", "JPY"}
    assert any(c.active_from and c.active_from.day != 1 for c in p.customers)  # starts mid-way
    assert any(c.active_to and c.active_to <= date(2026, 11, 1) for c in p.customers)  # ended
    assert {m.aggregation for m in p.meters} == set(AGGREGATIONS)
    assert any(m.unique_dimension == "user_id" for m in p.meters)
    assert {r.pricing_model for r in p.rates} == set(PRICING_MODELS)
    assert any(t.flat_fee for t in p.rate_tiers
               if next(r for r in p.rates if r.rate_id == t.rate_id).pricing_model == "graduated")
    filtered = [i for i in p.product_items if i.dimension_filter]
    assert len({i.meter_id for i in filtered}) == 1 and len(filtered) == 2
    assert {m.meter_id for m in p.meters} - {i.meter_id for i in p.product_items}  # unbilled
    assert any(r.customer_id for r in p.rates)  # an override
    closed = [r for r in p.rates if r.effective_to]
    assert closed and all(
        any(n.product_item_id == r.product_item_id and n.currency == r.currency
            and n.effective_from == r.effective_to for n in p.rates) for r in closed)
    assert all(r.effective_to is None or r.effective_to.day == 1 for r in p.rates)
    assert p.commitments
    # every item has a list price in all three currencies in every demo month
    for month in (date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)):
        for item in p.product_items:
            for currency in ("USD", "EUR", "JPY"):
                assert [r for r in p.rates if r.product_item_id == item.product_item_id
                        and r.customer_id is None and r.currency == currency
                        and r.in_effect(month)], (month, item.product_item_id, currency)


def test_summary_describes_the_demo_book():
    text = summary(load_catalog(SEEDS), date(2026, 11, 25))
    assert "12 customers (EUR 4, JPY 3, USD 5)" in text
    assert "not active on 2026-11-25: hooli" in text
    assert "without a product item (unbilled usage): audit_events" in text
    assert "r_compute_usd, list price, since 2026-10-01" in text
    assert "r_compute_usd_2025" not in text  # closed before that date
    assert "commitment(s) in effect on 2026-11-25" in text


def test_ingest_lookup():
    customers, meters = ingest_lookup(load_catalog(SEEDS))
    assert "acme_corp" in customers and "hooli" in customers and len(customers) == 12
    assert meters["active_users"] == "unique_count" and meters["seats"] == "latest"


def test_lookup_problems_only_customers_and_meters(tmp_path):
    root = tmp_path / "c"
    shutil.copytree(SEEDS, root)
    with (root / "customers.csv").open("a") as f:
        f.write("acme_corp,Acme again,USD,,,,,,,\n")  # the demo's E16 columns left empty
    with (root / "rates.csv").open("a") as f:
        f.write("r_bad,api_calls,,USD,per_unit,-1,,,2025-01-01,\n")
    catalog = load_catalog(root)
    assert located(lookup_problems(catalog)) == [("customers.csv", 13, "customer_id")]
    assert ("rates.csv", 34, "unit_price") in located(validate(catalog))


# --------------------------------------------------------------------------- conformance
def _conformance_case(name: str) -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip(NO_SHARED)
    return CONFORMANCE / name


@pytest.mark.parametrize("case", ["01-pricing-models", "02-events-and-quarantine",
                                  "03-late-usage-and-publishing", "04-catalog-changes"])
def test_conformance_catalogs_validate_cleanly(case):
    catalog = load_catalog(_conformance_case(case) / "catalog")
    assert [str(p) for p in validate(catalog)] == []


def _catalog_after_steps(tmp_path: Path, steps: int) -> Path:
    """Case 04's catalog as the runner leaves it after its first `steps` steps."""
    case = _conformance_case("04-catalog-changes")
    target = tmp_path / "catalog"
    shutil.copytree(case / "catalog", target)
    for step in json.loads((case / "steps.json").read_text())[:steps]:
        for name, source in step.get("catalog", {}).get("files", {}).items():
            shutil.copyfile(case / source, target / name)
    return target


def test_conformance_step2_and_step4_catalogs_validate_cleanly(tmp_path):
    assert validate(load_catalog(_catalog_after_steps(tmp_path / "s2", 2))) == []
    assert validate(load_catalog(_catalog_after_steps(tmp_path / "s4", 4))) == []


def test_conformance_step3_catalog_gives_exactly_its_five_problems(tmp_path):
    root = _catalog_after_steps(tmp_path, 3)
    assert (root / "meters.csv").read_text() == (
        CONFORMANCE / "04-catalog-changes/catalog-step2/meters.csv").read_text()
    problems = validate(load_catalog(root))
    assert [(p.file, p.rows, p.field) for p in problems] == [
        ("customers.csv", (4,), "currency"),
        ("product_items.csv", (3,), "dimension_filter"),
        ("rates.csv", (1, 2), "effective_from/effective_to"),
        ("rates.csv", (4,), "free_units"),
        ("commitments.csv", (1,), "currency"),
    ]
    text = [str(p) for p in problems]
    assert text[0] == "customers.csv row 4 (cc_x), currency: EURO is not an ISO 4217 code"
    assert text[1] == ("product_items.csv row 3 (calls_eu), dimension_filter: calls (no filter) "
                       "and calls_eu (region=eu) are items of meter calls that can match the "
                       "same event")
    assert text[2].startswith(
        "rates.csv rows 1 and 2 (r_calls_usd, r_calls_usd_may), effective_from/effective_to: "
        "two list rates for item calls in USD both in effect from 2026-05-01")
    assert text[3] == ("rates.csv row 4 (r_disk_new), free_units: free_units (5) on a graduated "
                       "rate; remove it or give tier 1 a zero price")
    assert text[4] == ("commitments.csv row 1 (cc_a), currency: a commitment in EUR for a USD "
                       "customer")


# --------------------------------------------------------------------------- every problem kind
BAD_CATALOG = {
    "customers.csv": """
customer_id,customer_name,currency,active_from,active_to
c_usd,USD Co,USD,,
c_usd,Dup Co,USD,,
bad id!,Bad Id,USD,,
c_eur,EUR Co,EUR,2026-05-01,2026-04-01
c_xx,Bad Currency,usd,,
c_date,Bad Date,USD,2026-13-01,
,No Id,USD,,
c_short,Short
c_jpy,JPY Co,JPY,,
""",
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension
calls,Calls,call,sum,
calls,Calls again,call,sum,
users,Users,user,unique_count,
gb,GB,GB,max,region
x,X,x,avg,
store,Store,GB,max,
seats,Seats,seat,latest,
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
calls,Calls,calls,
calls_all,Calls all,calls,
disk,Disk,nope,
users,Users,users,region
store_eu,Store EU,store,region=eu
store_eu2,Store EU 2,store,region=eu
store_gold,Store gold,store,tier=gold
seats,Seats,seats,
seats_eu,Seats EU,seats,region=eu
users,Users again,users,
""",
    "rates.csv": """
rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r1,calls,,USD,per_unit,1.00,,,2025-01-01,
r1,calls,,EUR,per_unit,1.00,,,2025-01-01,
r_ghost,ghost_item,,USD,per_unit,1,,,2025-01-01,
r_cust,calls,nobody,USD,per_unit,1,,,2025-01-01,
r_cur,calls,c_jpy,USD,per_unit,1,,,2025-01-01,
r_badcur,calls,,US,per_unit,1,,,2025-01-01,
r_model,calls,,JPY,flat,1,,,2025-01-01,
r_noprice,seats,,USD,per_unit,,,,2025-01-01,
r_neg,store_eu,,USD,per_unit,-1,,,2025-01-01,
r_scale,store_eu,,EUR,per_unit,0.0000000000001,,,2025-01-01,
r_big,store_eu,,JPY,per_unit,123456789012345678901234567,,,2025-01-01,
r_notnum,store_gold,,USD,per_unit,abc,,,2025-01-01,
r_dates,store_gold,,EUR,per_unit,1,,,2026-05-01,2026-05-01
r_baddate,store_gold,,JPY,per_unit,1,,,2026/05/01,
r_nofrom,seats,,EUR,per_unit,1,,,,
r_pkg0,seats,,JPY,package,1,0,,2025-01-01,
r_pkg_missing,store_eu2,,USD,package,1,,,2025-01-01,
r_pkg_on_unit,store_eu2,,EUR,per_unit,1,10,,2025-01-01,
r_grad_free,users,,USD,graduated,,,5,2025-01-01,
r_grad_price,users,,EUR,graduated,2,,,2025-01-01,
r_vol_notiers,users,,JPY,volume,,,,2025-01-01,
r_old,calls_all,,USD,per_unit,1,,,2025-01-01,2026-06-01
r_new,calls_all,,USD,per_unit,2,,,2026-05-01,
r_cust1,calls_all,c_usd,USD,per_unit,1,,,2025-01-01,
r_cust2,calls_all,c_usd,USD,per_unit,1,,,2025-06-01,
r_neg_free,seats_eu,,USD,per_unit,1,,-2,2025-01-01,
r_gap,users,,USD,graduated,,,,2020-01-01,2020-02-01
r_dupt,users,,USD,volume,,,,2020-02-01,2020-03-01
r_incr,users,,USD,graduated,,,,2020-03-01,2020-04-01
r_open,users,,USD,graduated,,,,2020-04-01,2020-05-01
r_badtier,users,,USD,graduated,,,,2020-05-01,2020-06-01
r_fee,users,,USD,graduated,,,,2020-06-01,2020-07-01
r_upto0,users,,USD,graduated,,,,2020-07-01,2020-08-01
""",
    "rate_tiers.csv": """
rate_id,tier,up_to,unit_price,flat_fee
r_grad_free,1,10,0,
r_grad_free,2,,1,
r_grad_price,1,10,1,
r_grad_price,2,,0.5,
r_nope,1,,1,
r1,1,,1,
r_gap,1,10,1,
r_gap,3,,1,
r_dupt,1,10,1,
r_dupt,1,20,1,
r_dupt,2,,1,
r_incr,1,100,1,
r_incr,2,100,1,
r_incr,3,,1,
r_open,1,,1,
r_open,2,50,1,
r_badtier,x,10,1,
r_badtier,2,,-1,0
r_fee,1,10,1,-5
r_fee,2,,1,
r_upto0,1,0,1,
r_upto0,2,,1,
""",
    "commitments.csv": """
customer_id,minimum_amount,currency,effective_from,effective_to
c_usd,100.00,USD,2025-01-01,
c_usd,50.00,USD,2026-01-01,
c_eur,10.00,USD,2025-01-01,
ghost,10.00,USD,2025-01-01,
c_jpy,100.5,JPY,2025-01-01,
c_jpy,-1,JPY,2020-01-01,2021-01-01
""",
}

# (file, rows, field, a piece of the message): the complete list, in the order reported.
EXPECTED_BAD = [
    ("customers.csv", (2,), "customer_id", "duplicate customer_id c_usd (also on row 1)"),
    ("customers.csv", (3,), "customer_id", "'bad id!' is not a valid customer_id"),
    ("customers.csv", (4,), "active_to", "active_to (2026-04-01) must be after active_from"),
    ("customers.csv", (5,), "currency", "usd is not an ISO 4217 code (did you mean USD?)"),
    ("customers.csv", (6,), "active_from", "active_from '2026-13-01' is not a date"),
    ("customers.csv", (7,), "customer_id", "customer_id is required"),
    ("customers.csv", (8,), None, "the row has 2 fields but the header has 5"),
    ("meters.csv", (2,), "meter_id", "duplicate meter_id calls"),
    ("meters.csv", (3,), "unique_dimension", "a unique_count meter needs unique_dimension"),
    ("meters.csv", (4,), "unique_dimension", "unique_dimension (region) is only for unique_count"),
    ("meters.csv", (5,), "aggregation", "aggregation 'avg' is not one of"),
    ("product_items.csv", (2,), "dimension_filter",
     "calls (no filter) and calls_all (no filter) are items of meter calls that can match"),
    ("product_items.csv", (3,), "meter_id", "unknown meter nope (not in meters.csv)"),
    ("product_items.csv", (4,), "dimension_filter", "dimension_filter 'region' is not key=value"),
    ("product_items.csv", (6,), "dimension_filter",
     "store_eu (region=eu) and store_eu2 (region=eu) are items of meter store"),
    ("product_items.csv", (7,), "dimension_filter",
     "store_eu (region=eu) and store_gold (tier=gold) are items of meter store that can match "
     "the same event (an event with both region and tier matches both"),
    ("product_items.csv", (7,), "dimension_filter",
     "store_eu2 (region=eu) and store_gold (tier=gold)"),
    ("product_items.csv", (9,), "dimension_filter",
     "seats (no filter) and seats_eu (region=eu) are items of meter seats"),
    ("product_items.csv", (10,), "product_item_id", "duplicate product_item_id users"),
    ("rates.csv", (2,), "rate_id", "duplicate rate_id r1 (also on row 1)"),
    ("rates.csv", (3,), "product_item_id", "unknown product item ghost_item"),
    ("rates.csv", (4,), "customer_id", "unknown customer nobody (not in customers.csv)"),
    ("rates.csv", (5,), "currency", "a rate in USD for a JPY customer (c_jpy)"),
    ("rates.csv", (6,), "currency", "US is not an ISO 4217 code"),
    ("rates.csv", (7,), "pricing_model", "pricing_model 'flat' is not one of"),
    ("rates.csv", (8,), "unit_price", "a per_unit rate needs unit_price"),
    ("rates.csv", (9,), "unit_price", "unit_price (-1) is negative"),
    ("rates.csv", (10,), "unit_price", "has 13 decimal places; at most 12"),
    ("rates.csv", (11,), "unit_price", "has 27 digits before the point"),
    ("rates.csv", (12,), "unit_price", "unit_price 'abc' is not a decimal number"),
    ("rates.csv", (13,), "effective_to", "effective_to (2026-05-01) must be after effective_from"),
    ("rates.csv", (14,), "effective_from", "effective_from '2026/05/01' is not a date"),
    ("rates.csv", (15,), "effective_from", "effective_from is required"),
    ("rates.csv", (16,), "package_size", "package_size (0) must be greater than 0"),
    ("rates.csv", (17,), "package_size", "a package rate needs package_size"),
    ("rates.csv", (18,), "package_size", "package_size (10) on a per_unit rate"),
    ("rates.csv", (19,), "free_units", "free_units (5) on a graduated rate"),
    ("rates.csv", (20,), "unit_price", "unit_price (2) on a graduated rate"),
    ("rates.csv", (21,), "pricing_model", "a volume rate needs tiers"),
    ("rates.csv", (22, 23), "effective_from/effective_to",
     "two list rates for item calls_all in USD both in effect from 2026-05-01; close r_old "
     "with effective_to 2026-05-01"),
    ("rates.csv", (24, 25), "effective_from/effective_to",
     "two rates of customer c_usd for item calls_all in USD both in effect from 2025-06-01"),
    ("rates.csv", (26,), "free_units", "free_units (-2) is negative"),
    ("rate_tiers.csv", (5,), "rate_id", "unknown rate r_nope (not in rates.csv)"),
    ("rate_tiers.csv", (6,), "rate_id", "r1 is a per_unit rate; only graduated and volume"),
    ("rate_tiers.csv", (7,), "tier", "the tiers of r_gap are numbered 1, 3 (tier 2 missing)"),
    ("rate_tiers.csv", (10,), "tier", "duplicate tier r_dupt tier 1 (also on row 9)"),
    ("rate_tiers.csv", (13,), "up_to", "up_to (100) is not above tier 1's up_to (100)"),
    ("rate_tiers.csv", (15,), "up_to", "up_to is empty but tier 1 is not the last"),
    ("rate_tiers.csv", (16,), "up_to", "the last tier of r_open has up_to 50; the last tier "
                                       "must be open-ended"),
    ("rate_tiers.csv", (17,), "tier", "tier 'x' is not a whole number >= 1"),
    ("rate_tiers.csv", (18,), "unit_price", "unit_price (-1) is negative"),
    ("rate_tiers.csv", (19,), "flat_fee", "flat_fee (-5) is negative"),
    ("rate_tiers.csv", (21,), "up_to", "up_to (0) must be greater than 0"),
    ("commitments.csv", (1, 2), "effective_from/effective_to",
     "two commitments of customer c_usd both in effect from 2026-01-01"),
    ("commitments.csv", (3,), "currency", "a commitment in USD for a EUR customer"),
    ("commitments.csv", (4,), "customer_id", "unknown customer ghost"),
    ("commitments.csv", (5,), "minimum_amount",
     "minimum_amount (100.5) has more decimal places than JPY's minor unit (0)"),
    ("commitments.csv", (6,), "minimum_amount", "minimum_amount (-1) is negative"),
]


def test_bad_catalog_reports_every_problem_together(tmp_path):
    root = write_catalog_dir(tmp_path / "bad", BAD_CATALOG)
    problems = validate(load_catalog(root))
    got = [(p.file, p.rows, p.field, str(p)) for p in problems]
    assert len(got) == len(EXPECTED_BAD), "\n".join(g[3] for g in got)
    for (file, rows, field, text), want in zip(got, EXPECTED_BAD, strict=True):
        assert (file, rows, field) == want[:3], text
        assert want[3] in text, text
    # only ingest-relevant ones stop ingest
    lookup = lookup_problems(load_catalog(root))
    assert {p.file for p in lookup} == {"customers.csv", "meters.csv"}


def test_missing_file_missing_column_and_empty_file(tmp_path):
    root = write_catalog_dir(tmp_path / "c", {
        "customers.csv": "customer_id,customer_name\nc1,One\n",
        "meters.csv": "",
        "product_items.csv": "product_item_id,display_name,meter_id,dimension_filter\n",
        "rate_tiers.csv": "rate_id,tier,up_to,unit_price,flat_fee\n",
    })
    problems = validate(load_catalog(root))
    assert located(problems) == [
        ("customers.csv", None, "currency"),
        ("meters.csv", None, None),
        ("rates.csv", None, None),
    ]
    assert "missing column currency" in str(problems[0])
    assert "no header row" in str(problems[1])
    assert "missing file" in str(problems[2])


def test_optional_files_and_blank_rows(tmp_path):
    root = write_catalog_dir(tmp_path / "c", {
        "customers.csv": "\ufeffcustomer_id , customer_name,currency\n c1 ,One, USD \n,,\n"
                         "c2,Two,EUR\n",
        "meters.csv": "meter_id,display_name,unit,aggregation,unique_dimension\nm,M,u,sum,\n",
        "product_items.csv": "product_item_id,display_name,meter_id,dimension_filter\n"
                             "a,A,m,sku=a=b\nb,B,m,sku=c\n",
        "rates.csv": "rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,"
                     "package_size,free_units,effective_from,effective_to\n"
                     "r,a,,USD,per_unit,1,,0,2025-01-01,\n",
    })
    catalog = load_catalog(root)
    assert validate(catalog) == []
    assert [(r.row, r["customer_id"], r["currency"]) for r in catalog.customers] == [
        (1, "c1", "USD"), (3, "c2", "EUR")]
    assert catalog.commitments == () and catalog.rate_tiers == ()
    items = parse(catalog).product_items
    assert (items[0].filter_key, items[0].filter_value) == ("sku", "a=b")


def test_problem_str_formats():
    p = Problem("rates.csv", 4, "free_units", "free_units (5) on a graduated rate; remove it "
                    "or give tier 1 a zero price", "r_disk_new")
    assert str(p) == ("rates.csv row 4 (r_disk_new), free_units: free_units (5) on a graduated "
                      "rate; remove it or give tier 1 a zero price")
    three = Problem("rates.csv", 1, "f", "m", "a, b, c", other_rows=(2, 5))
    assert str(three) == "rates.csv rows 1, 2 and 5 (a, b, c), f: m"
    assert str(Problem("rates.csv", None, None, "missing file")) == "rates.csv: missing file"


def test_read_currencies():
    currencies = read_currencies()
    assert currencies["USD"] == 2 and currencies["EUR"] == 2 and currencies["JPY"] == 0
    assert currencies["KWD"] == 3 and currencies["BHD"] == 3 and currencies["CLF"] == 4
    assert currencies["UYW"] == 4 and currencies["ISK"] == 0
    assert not {"XAU", "XXX", "XDR", "XTS"} & set(currencies)
    assert len(currencies) > 150


# --------------------------------------------------------------------------- period check
PERIOD_CATALOG = {
    "customers.csv": """
customer_id,customer_name,currency
c_usd,USD Co,USD
c_eur,EUR Co,EUR
""",
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension
calls,Calls,call,sum,
disk,Disk,GB,max,
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
calls,Calls,calls,
disk_eu,Disk EU,disk,region=eu
disk_us,Disk US,disk,region=us
""",
    "rates.csv": """
rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r_calls_usd_old,calls,,USD,per_unit,1,,,2025-01-01,2026-05-01
r_calls_usd_new,calls,,USD,per_unit,2,,,2026-06-01,
r_calls_eur,calls,,EUR,per_unit,1,,,2025-01-01,
r_disk_eu_usd,disk_eu,,USD,per_unit,1,,,2025-01-01,
r_disk_us_c_eur,disk_us,c_eur,EUR,per_unit,1,,,2025-01-01,
""",
}


def _insert_events(con, rows):
    con.executemany("""
        insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
            dimensions, source_file, row_number, ingest_run_id, landed_at, landing_seq)
        values (?, ?, ?, 1, ?::timestamptz, ?, 'test.jsonl', ?, 'run-1',
                now(), ?)""",
                    [(eid, cust, meter, at, dims, i, i)
                     for i, (eid, cust, meter, at, dims) in enumerate(rows, start=1)])


def test_period_problems_finds_usage_without_a_rate(tmp_path):
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", PERIOD_CATALOG))
    assert validate(catalog) == []
    db = tmp_path / "warehouse.duckdb"
    con = warehouse.connect(db)
    _insert_events(con, [
        ("e1", "c_usd", "calls", "2026-05-10 10:00:00+00", "{}"),          # no USD rate in May
        ("e2", "c_usd", "calls", "2026-05-11 10:00:00+00", "{}"),
        ("e3", "c_eur", "calls", "2026-05-10 10:00:00+00", "{}"),          # EUR list price
        ("e4", "c_usd", "disk", "2026-05-10 10:00:00+00", '{"region":"eu"}'),   # priced
        ("e5", "c_usd", "disk", "2026-05-10 10:00:00+00", '{"region":"us"}'),   # no USD rate
        ("e6", "c_eur", "disk", "2026-05-10 10:00:00+00", '{"region":"us"}'),   # override
        ("e7", "c_usd", "disk", "2026-05-10 10:00:00+00", '{"region":"ap"}'),   # unbilled
        ("e8", "c_usd", "disk", "2026-05-10 10:00:00+00", "{}"),                # unbilled
        ("e9", "ghost", "calls", "2026-05-12 10:00:00+00", "{}"),          # not in catalog
        ("e10", "c_usd", "calls", "2026-04-30 23:59:59.999999+00", "{}"),  # April: priced
        ("e11", "c_usd", "calls", "2026-06-01 00:00:00+00", "{}"),         # June: priced
        ("e12", "c_usd", "calls", "2026-05-31 22:30:00-02:00", "{}"),      # June 1 in UTC
        ("e13", "c_eur", "old_meter", "2026-03-02 10:00:00+00", "{}"),     # meter removed
        ("e14", "ghost", "calls", "2026-03-12 10:00:00+00", "{}"),         # not in catalog
    ])
    problems = period_problems(con, catalog, date(2026, 5, 1))
    assert [(p.file, p.row, p.field, p.key) for p in problems] == [
        ("customers.csv", None, "customer_id", "ghost"),
        ("meters.csv", None, "meter_id", "old_meter"),
        ("rates.csv", None, "product_item_id", "calls, c_usd"),
        ("rates.csv", None, "product_item_id", "disk_us, c_usd"),
    ]
    messages = {p.key: str(p) for p in problems}
    assert ("c_usd (USD) has 2026-05 usage of item calls (2 events, e.g. e1) and no rate in "
            "effect on 2026-05-01 in USD") in messages["calls, c_usd"]
    assert ("customer ghost has 2 landed events (2026-03 to 2026-05, e.g. e14) but is not in "
            "customers.csv; landed events are never removed, so put the row back (to stop "
            "billing the customer, give it an active_to)") in messages["ghost"]
    assert ("meter old_meter has 1 landed event (2026-03, e.g. e13) but is not in meters.csv"
            in messages["old_meter"])
    # every month's meter usage keeps those events: billing any month needs the rows back
    for month in (date(2026, 4, 1), date(2026, 6, 1)):
        assert [p.key for p in period_problems(con, catalog, month)] == ["ghost",
                                                                            "old_meter"]
    # the catalog went in as temp tables only: nothing left behind, catalog.* untouched
    assert con.execute("select count(*) from duckdb_tables() where table_name like "
                       "'_meterline_check%'").fetchone()[0] == 0
    con.close()
    # readers use read-only connections: the check works there too
    ro = warehouse.connect(db, read_only=True)
    try:
        assert len(period_problems(ro, catalog, date(2026, 5, 1))) == 4
    finally:
        ro.close()


def test_period_problems_without_usage_table_is_empty(tmp_path):
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", PERIOD_CATALOG))
    assert period_problems(con, catalog, date(2026, 5, 1)) == []
    with pytest.raises(ValueError):
        period_problems(con, catalog, date(2026, 5, 2))


# --------------------------------------------------------------------------- loading
EXACT_CATALOG = {
    "customers.csv": """
customer_id,customer_name,currency,active_from,active_to
c1,One,USD,2026-01-15,2027-01-01
c2,Two,KWD,,
""",
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension
m,M,u,sum,
users,Users,user,unique_count,user_id
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
a,A,m,sku=a=b
b,B,m,sku=c
u,U,users,
""",
    "rates.csv": """
rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r_tiny,a,,USD,per_unit,0.000000000001,,,2025-01-01,
r_kwd,a,,KWD,per_unit,0.0125,,,2025-01-01,
r_pkg,b,c2,KWD,package,1.0005,99999999999999999999999999.999999999999,2.5,2025-01-01,2026-03-01
r_vol,u,,USD,volume,,,,2025-01-01,
""",
    "rate_tiers.csv": """
rate_id,tier,up_to,unit_price,flat_fee
r_vol,1,10.5,1.0005,
r_vol,2,,0.0125,3.000
""",
    "commitments.csv": """
customer_id,minimum_amount,currency,effective_from,effective_to
c2,10.125,KWD,2026-01-01,
""",
}


def test_write_catalog_round_trips_exact_values(tmp_path):
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", EXACT_CATALOG))
    assert validate(catalog) == []
    con = warehouse.connect(tmp_path / "w.duckdb")
    write_catalog(con, catalog)
    write_catalog(con, catalog)  # replaces, never appends
    rates = con.execute("select rate_id, customer_id, unit_price, package_size, free_units, "
                        "effective_from, effective_to from catalog.rates order by rate_id"
                        ).fetchall()
    assert rates == [
        ("r_kwd", None, Decimal("0.0125"), None, Decimal(0), date(2025, 1, 1), None),
        ("r_pkg", "c2", Decimal("1.0005"), Decimal("99999999999999999999999999.999999999999"),
         Decimal("2.5"), date(2025, 1, 1), date(2026, 3, 1)),
        ("r_tiny", None, Decimal("0.000000000001"), None, Decimal(0), date(2025, 1, 1), None),
        ("r_vol", None, None, None, Decimal(0), date(2025, 1, 1), None),
    ]
    assert con.execute("select rate_id, tier, up_to, unit_price, flat_fee from catalog.rate_tiers"
                       " order by tier").fetchall() == [
        ("r_vol", 1, Decimal("10.5"), Decimal("1.0005"), Decimal(0)),
        ("r_vol", 2, None, Decimal("0.0125"), Decimal(3)),
    ]
    assert con.execute("select * from catalog.commitments").fetchall() == [
        ("c2", Decimal("10.125"), "KWD", date(2026, 1, 1), None)]
    assert con.execute("select * from catalog.customers order by customer_id").fetchall() == [
        ("c1", "One", "USD", date(2026, 1, 15), date(2027, 1, 1)),
        ("c2", "Two", "KWD", None, None)]
    assert con.execute("select * from catalog.product_items order by 1").fetchall() == [
        ("a", "A", "m", "sku=a=b"), ("b", "B", "m", "sku=c"), ("u", "U", "users", None)]
    assert con.execute("select * from catalog.meters order by 1").fetchall() == [
        ("m", "M", "u", "sum", None, None),
        ("users", "Users", "user", "unique_count", "user_id", None)]
    types = dict(con.execute(
        "select table_name || '.' || column_name, data_type from information_schema.columns "
        "where table_schema = 'catalog'").fetchall())
    assert types["rates.unit_price"] == "DECIMAL(38,12)"
    assert types["rate_tiers.flat_fee"] == "DECIMAL(38,12)"
    assert types["commitments.minimum_amount"] == "DECIMAL(38,12)"
    assert types["rate_tiers.tier"] == "INTEGER"
    assert types["rates.effective_from"] == "DATE" and types["customers.active_to"] == "DATE"

    # a catalog that does not validate is refused and changes nothing
    bad = dict(EXACT_CATALOG)
    bad["rates.csv"] = EXACT_CATALOG["rates.csv"] + "r_x,a,,USD,per_unit,-1,,,2025-01-01,\n"
    bad_catalog = load_catalog(write_catalog_dir(tmp_path / "bad", bad))
    with pytest.raises(CatalogInvalid) as err:
        write_catalog(con, bad_catalog)
    assert "rates.csv row 5 (r_x), unit_price" in str(err.value)
    assert con.execute("select count(*) from catalog.rates").fetchone()[0] == 4
    con.close()


def test_write_catalog_loads_the_demo_book(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    catalog = load_catalog(SEEDS)
    write_catalog(con, catalog)
    counts = {t: con.execute(f"select count(*) from catalog.{t}").fetchone()[0]
              for t in CATALOG_DDL}
    assert counts == {t: len(getattr(catalog, t)) for t in CATALOG_DDL}
    con.close()


# --------------------------------------------------------------------------- demo events
DEMO_MONTHS = [date(2026, 10, 1), date(2026, 11, 1)]


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_generate_events_is_deterministic_and_writes_every_format(tmp_path):
    catalog = load_catalog(SEEDS)
    first = demo.generate_events(tmp_path / "a", catalog, DEMO_MONTHS)
    again = demo.generate_events(tmp_path / "b", catalog, DEMO_MONTHS)
    other = demo.generate_events(tmp_path / "c", catalog, DEMO_MONTHS, seed=8)
    assert [p.name for p in first] == [
        "idp_logins_2026-10_to_2026-11.csv", "infra_snapshots_2026-10_to_2026-11.parquet",
        "usage_2026-10.jsonl.gz", "usage_2026-11.jsonl.gz"]
    assert all(p.stat().st_size > 0 for p in first)
    assert _digest(first) == _digest(again)
    assert _digest(first) != _digest(other)

    by_suffix = {"".join(p.suffixes[-2:]) if p.name.endswith(".gz") else p.suffix: p
                 for p in first}
    assert set(by_suffix) == {".jsonl.gz", ".csv", ".parquet"}

    lines = gzip.decompress((tmp_path / "a/usage_2026-11.jsonl.gz").read_bytes()
                            ).decode().splitlines()
    parsed, malformed = [], []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            malformed.append(line)
    assert len(malformed) == 1
    ids = [e["event_id"] for e in parsed]
    assert 1 <= len(ids) - len(set(ids)) <= 5  # a few exact re-sends
    assert any(e["customer_id"] == "trial_zeta" for e in parsed)  # unknown customer
    assert any(e["meter"] == "gpu_seconds" for e in parsed)  # unknown meter
    assert any(isinstance(e["timestamp"], int) for e in parsed)  # epoch milliseconds
    assert any(e["timestamp"].endswith("+09:00") for e in parsed
               if isinstance(e["timestamp"], str))
    assert any(isinstance(e.get("value"), str) for e in parsed)  # Stripe-style string values

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    csv_path = tmp_path / "a/idp_logins_2026-10_to_2026-11.csv"
    assert con.execute(f"select count(*) from read_csv('{csv_path}', all_varchar=true) "
                       "where timestamp is null").fetchone()[0] == 2  # missing timestamps
    pq = tmp_path / "a/infra_snapshots_2026-10_to_2026-11.parquet"
    described = {r[0]: r[1] for r in
                 con.execute(f"describe select * from read_parquet('{pq}')").fetchall()}
    assert described["value"].startswith("DECIMAL")
    assert described["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert described["dimensions"] == "MAP(VARCHAR, VARCHAR)"
    regions = {r[0] for r in con.execute(
        f"select distinct dimensions['region'] from read_parquet('{pq}') "
        "where meter = 'storage_gb'").fetchall()}
    assert {"us", "eu", "ap"} <= regions


def test_demo_events_respect_the_catalog_and_the_months(tmp_path):
    catalog = load_catalog(SEEDS)
    paths = demo.generate_events(tmp_path, catalog, [date(2026, 9, 1)] + DEMO_MONTHS,
                                 until=date(2026, 11, 25))
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    jsonl = [str(p) for p in paths if p.name.endswith(".jsonl.gz")]
    csv_path = next(p for p in paths if p.suffix == ".csv")
    pq = next(p for p in paths if p.suffix == ".parquet")
    con.execute(f"""
        create table ev as
        select json->>'event_id' as event_id, json->>'customer_id' as customer_id,
               json->>'meter' as meter,
               case when json_type(json->'timestamp') in ('UBIGINT', 'BIGINT')
                    then make_timestamp((json->>'timestamp')::bigint * 1000)::timestamptz
                    else (json->>'timestamp')::timestamptz end as ts
        from read_ndjson_objects({jsonl}, ignore_errors = true)
        where json_valid(json) and json->>'meter' is not null
        union all
        select event_id, customer_id, meter, timestamp::timestamptz
        from read_csv('{csv_path}', all_varchar = true) where timestamp is not null
        union all
        select event_id, customer_id, meter, timestamp from read_parquet('{pq}')""")
    total = con.execute("select count(*) from ev").fetchone()[0]
    assert 120_000 <= total <= 300_000, total
    lo, hi = con.execute("select min(ts), max(ts) from ev").fetchone()
    assert lo.date() >= date(2026, 9, 1)
    assert hi < con.execute("select '2026-11-25 00:00:00+00'::timestamptz").fetchone()[0]
    customers, meters = ingest_lookup(catalog)
    seen = {r[0] for r in con.execute("select distinct customer_id from ev").fetchall()}
    assert seen - customers == {"trial_zeta"}
    assert {r[0] for r in con.execute("select distinct meter from ev").fetchall()} \
        == set(meters) | {"gpu_seconds"}
    # active ranges hold in UTC: umbrella_labs from 2026-09-15, hooli ended 2026-10-01
    assert con.execute("select count(*) from ev where customer_id = 'umbrella_labs' "
                       "and ts < '2026-09-15 00:00:00+00'").fetchone()[0] == 0
    assert con.execute("select count(*) from ev where customer_id = 'hooli' "
                       "and ts >= '2026-10-01 00:00:00+00'").fetchone()[0] == 0
    assert con.execute("select count(*) from ev where customer_id = 'hooli'").fetchone()[0] > 0


def test_a_huge_tier_number_is_reported_not_enumerated(tmp_path):
    """A tier numbered 10^26 names the first missing tiers and how many more, at no cost (it
    once built a set of every number up to it and ran out of memory)."""
    files = dict(BAD_CATALOG)
    files["rate_tiers.csv"] = files["rate_tiers.csv"].replace(
        "r_gap,3,,1,", "r_gap,123456789012345678901234567,,1,")
    problems = validate(load_catalog(write_catalog_dir(tmp_path / "huge", files)))
    gap = [str(p) for p in problems if "the tiers of r_gap" in str(p)]
    assert len(gap) == 1, gap
    assert ("(tier 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21 and "
            "123456789012345678901234545 more missing)") in gap[0]
