"""The catalog side of level meters (CONTRACT.md v1.2, issue 15):

1. the `time_unit` problems of the catalog check (`meterline catalog` exits 1 listing each by
   file, row and field); an empty time_unit on time_weighted_sum is `period`, and meters.csv
   may leave the column out;
2. the period check "usage of an item and no rate in effect": a level meter's item is live in
   a period also through a non-zero level carried into it, with no event of the period;
3. the overflow pre-check: a level (a running sum) and a time_weighted_sum's integral (level x
   microseconds) must fit DECIMAL(38,12), named by customer and item (or meter) before the
   build runs, also through the real `meterline bill`;
4. the summary `meterline catalog` prints names each time_weighted_sum meter's time_unit.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from orchestration.catalog.model import parse
from orchestration.catalog.periods import period_problems
from orchestration.catalog.read import load_catalog
from orchestration.catalog.rules import validate
from orchestration.catalog.summary import summary
from orchestration.lib import warehouse
from tests.conftest import run_meterline

CUSTOMERS = """
customer_id,customer_name,currency
c1,One,USD
c2,Two,USD
c3,Three,USD
c4,Four,USD
c5,Five,USD
"""
RATES_HEADER = ("rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,"
                "package_size,free_units,effective_from,effective_to\n")


def write_catalog_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text.lstrip("\n"))
    return root


def located(problems) -> list[tuple[str, int | None, str | None]]:
    return [(p.file, p.row, p.field) for p in problems]


def cli(tmp_path: Path, catalog: Path, *args: str):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return run_meterline(list(args), home=home, catalog=catalog, cwd=cwd)


# --------------------------------------------------------------------------- 1. time_unit
TIME_UNIT_CATALOG = {
    "customers.csv": CUSTOMERS,
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension,time_unit
storage_gb,Storage,GB-month,time_weighted_sum,,
seats,Seats,seat-day,time_weighted_sum,,day
weekly,Weekly,GB-week,time_weighted_sum,,week
projects,Projects,project,running_total,,day
calls,Calls,call,sum,,hour
instances,Instances,instance-hour,time_weighted_sum,,hour
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
storage,Storage,storage_gb,
""",
    "rates.csv": RATES_HEADER + "r_storage,storage,,USD,per_unit,0.25,,,2025-01-01,\n",
}


def test_time_unit_problems_are_listed_by_file_row_and_field(tmp_path):
    root = write_catalog_dir(tmp_path / "c", TIME_UNIT_CATALOG)
    problems = validate(load_catalog(root))
    assert located(problems) == [("meters.csv", 3, "time_unit"), ("meters.csv", 4, "time_unit"),
                                 ("meters.csv", 5, "time_unit")]
    text = [str(p) for p in problems]
    assert text[0].startswith("meters.csv row 3 (weekly), time_unit: time_unit 'week' is not "
                              "one of period, day, hour")
    assert text[1] == ("meters.csv row 4 (projects), time_unit: time_unit (day) is only for "
                       "time_weighted_sum meters, not running_total; leave it empty")
    assert text[2] == ("meters.csv row 5 (calls), time_unit: time_unit (hour) is only for "
                       "time_weighted_sum meters, not sum; leave it empty")
    # an empty time_unit on time_weighted_sum is valid: it reads as period
    units = {m.meter_id: m.time_unit for m in parse(load_catalog(root)).meters}
    assert units == {"storage_gb": "period", "seats": "day", "weekly": "period",
                     "projects": None, "calls": None, "instances": "hour"}


@pytest.mark.e2e
def test_meterline_catalog_exits_1_listing_the_time_unit_problems(tmp_path):
    root = write_catalog_dir(tmp_path / "c", TIME_UNIT_CATALOG)
    text = [str(p) for p in validate(load_catalog(root))]
    assert len(text) == 3
    result = cli(tmp_path, root, "catalog")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"The catalog in {root} has 3 problem(s):" in result.stdout
    for line in text:
        assert f"  - {line}" in result.stdout
    as_json = json.loads(cli(tmp_path, root, "catalog", "--format", "json").stdout)
    assert as_json["valid"] is False and as_json["problems"] == text


NO_TIME_UNIT_METERS = """
meter_id,display_name,unit,aggregation,unique_dimension
storage_gb,Storage,GB-month,time_weighted_sum,
projects,Projects,project,running_total,
calls,Calls,call,sum,
"""


def test_a_meters_csv_without_the_time_unit_column_is_valid(tmp_path):
    files = dict(TIME_UNIT_CATALOG)
    files["meters.csv"] = NO_TIME_UNIT_METERS
    root = write_catalog_dir(tmp_path / "c", files)
    catalog = load_catalog(root)
    assert validate(catalog) == []
    assert {m.meter_id: m.time_unit for m in parse(catalog).meters} == {
        "storage_gb": "period", "projects": None, "calls": None}
    assert ("3 meters: running_total 1 (projects); sum 1 (calls); time_weighted_sum 1 "
            "(storage_gb per period)") in summary(catalog, date(2026, 3, 1))


@pytest.mark.e2e
def test_meterline_catalog_accepts_meters_without_the_time_unit_column(tmp_path):
    files = dict(TIME_UNIT_CATALOG)
    files["meters.csv"] = NO_TIME_UNIT_METERS
    root = write_catalog_dir(tmp_path / "c", files)
    result = cli(tmp_path, root, "catalog")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("3 meters: running_total 1 (projects); sum 1 (calls); time_weighted_sum 1 "
            "(storage_gb per period)") in result.stdout


# --------------------------------------------------------------------------- 4. summary
def test_summary_names_each_time_weighted_meters_time_unit(tmp_path):
    files = dict(TIME_UNIT_CATALOG)
    files["meters.csv"] = """
meter_id,display_name,unit,aggregation,unique_dimension,time_unit
storage_gb,Storage,GB-month,time_weighted_sum,,
seats,Seats,seat-day,time_weighted_sum,,day
projects,Projects,project,running_total,,
calls,Calls,call,sum,,
"""
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", files))
    assert validate(catalog) == []
    text = summary(catalog, date(2026, 3, 1))
    assert ("4 meters: running_total 1 (projects); sum 1 (calls); time_weighted_sum 2 "
            "(storage_gb per period, seats per day)") in text


def test_the_v1_2_conformance_catalog_validates_and_summarises():
    case = Path(__file__).resolve().parents[2] / "shared/conformance-v1.2/05-time-weighted-meters"
    if not case.is_dir():
        pytest.skip(f"{case} is absent (the workspace's shared/ folder)")
    catalog = load_catalog(case / "catalog")
    assert [str(p) for p in validate(catalog)] == []
    assert ("5 meters: running_total 1 (projects); time_weighted_sum 4 (storage_gb per period, "
            "scratch_gb per period, seats per day, instances per hour)"
            ) in summary(catalog, date(2026, 3, 1))


# --------------------------------------------------------------------------- 2. carried level
PERIOD_CATALOG = {
    "customers.csv": CUSTOMERS,
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension,time_unit
storage_gb,Storage,GB-month,time_weighted_sum,,
projects,Projects,project,running_total,,
calls,Calls,call,sum,,
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
storage_eu,Storage EU,storage_gb,region=eu
storage_us,Storage US,storage_gb,region=us
projects,Projects,projects,
calls,Calls,calls,
""",
    # storage_us, projects and calls have no rate from April on; storage_eu always has one
    "rates.csv": RATES_HEADER + """
r_eu,storage_eu,,USD,per_unit,0.25,,,2025-01-01,
r_us,storage_us,,USD,per_unit,0.20,,,2025-01-01,2026-04-01
r_projects,projects,,USD,per_unit,2,,,2025-01-01,2026-04-01
r_calls,calls,,USD,per_unit,1,,,2025-01-01,2026-04-01
""",
}


def insert_events(con, rows) -> None:
    """Events as landed: (event_id, customer_id, meter_id, value, event_at, dimensions)."""
    con.executemany("""
        insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
            dimensions, source_file, row_number, ingest_run_id, landed_at, landing_seq)
        values (?, ?, ?, ?::decimal(38, 12), ?::timestamptz, ?, 'test.jsonl', ?, 'run-1',
                now(), ?)""",
                    [(eid, cust, meter, value, at, dims, i, i)
                     for i, (eid, cust, meter, value, at, dims) in enumerate(rows, start=1)])


US, EU = '{"region":"us"}', '{"region":"eu"}'


def test_a_carried_level_makes_a_level_item_live_without_an_event(tmp_path):
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", PERIOD_CATALOG))
    assert validate(catalog) == []
    db = tmp_path / "home" / "warehouse.duckdb"
    db.parent.mkdir()
    con = warehouse.connect(db)
    insert_events(con, [
        # c1: US level 10 carried into April and May (no event there): live, no rate
        ("c1-1", "c1", "storage_gb", "10", "2026-02-20 00:00:00+00", US),
        ("c1-2", "c1", "storage_gb", "7", "2026-03-05 00:00:00+00", EU),  # EU is priced
        # c2: +5 then -5: the level is back at 0, nothing carried: not live
        ("c2-1", "c2", "storage_gb", "5", "2026-03-01 00:00:00+00", US),
        ("c2-2", "c2", "storage_gb", "-5", "2026-03-20 00:00:00+00", US),
        # c3: fractions that cancel exactly (0.5 - 0.25 - 0.25), and a level of 10^-12
        ("c3-1", "c3", "storage_gb", "0.5", "2026-03-01 00:00:00+00", US),
        ("c3-2", "c3", "storage_gb", "-0.25", "2026-03-02 00:00:00+00", US),
        ("c3-3", "c3", "storage_gb", "-0.25", "2026-03-03 00:00:00+00", US),
        ("c3-4", "c3", "projects", "0.000000000001", "2026-03-31 23:59:59.999999+00", "{}"),
        # c4: a sum meter carries nothing; a level meter's event at April's first instant is
        # April's own usage, not carried into April
        ("c4-1", "c4", "calls", "100", "2026-03-10 00:00:00+00", "{}"),
        ("c4-2", "c4", "projects", "2", "2026-04-01 00:00:00+00", "{}"),
        # c5: a negative level carried in is not 0 either
        ("c5-1", "c5", "projects", "-3", "2026-01-15 00:00:00+00", "{}"),
        # an unbilled level (no item matches) never blocks
        ("c5-2", "c5", "storage_gb", "50", "2026-01-15 00:00:00+00", '{"region":"ap"}'),
    ])

    def found(month: date) -> list[str]:
        return [str(p) for p in period_problems(con, catalog, month)]

    assert found(date(2026, 3, 1)) == []  # every item has a rate in March
    april = found(date(2026, 4, 1))
    assert [p.split(": ", 1)[0] for p in april] == [
        "rates.csv (storage_us, c1), product_item_id",
        "rates.csv (projects, c3), product_item_id",
        "rates.csv (projects, c4), product_item_id",
        "rates.csv (projects, c5), product_item_id",
    ]
    assert april[0] == (
        "rates.csv (storage_us, c1), product_item_id: c1 (USD) has 2026-04 usage of item "
        "storage_us (no 2026-04 event, but a level of 10 carried in from 1 earlier event, e.g. "
        "c1-1) and no rate in effect on 2026-04-01 in USD (no list price and no rate of c1); "
        "add one")
    assert "a level of 0.000000000001 carried in from 1 earlier event, e.g. c3-4" in april[1]
    assert "has 2026-04 usage of item projects (1 event, e.g. c4-2)" in april[2]
    assert "a level of -3 carried in from 1 earlier event, e.g. c5-1" in april[3]
    # May: only the carried levels (c4's April event carries 2 into May now)
    may = found(date(2026, 5, 1))
    assert [p.split(": ", 1)[0] for p in may] == [
        "rates.csv (storage_us, c1), product_item_id",
        "rates.csv (projects, c3), product_item_id",
        "rates.csv (projects, c4), product_item_id",
        "rates.csv (projects, c5), product_item_id",
    ]
    assert "a level of 2 carried in from 1 earlier event, e.g. c4-2" in may[2]
    con.close()


@pytest.mark.e2e
def test_meterline_catalog_period_lists_a_carried_level_without_a_rate(tmp_path):
    root = write_catalog_dir(tmp_path / "c", PERIOD_CATALOG)
    home = tmp_path / "home"
    home.mkdir()
    con = warehouse.connect(home / "warehouse.duckdb")
    insert_events(con, [("c1-1", "c1", "storage_gb", "10", "2026-02-20 00:00:00+00", US)])
    con.close()
    result = run_meterline(["catalog", "--period", "2026-05"], home=home, catalog=root,
                           cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "has 1 problem(s)" in result.stdout
    assert ("  - rates.csv (storage_us, c1), product_item_id: c1 (USD) has 2026-05 usage of "
            "item storage_us (no 2026-05 event, but a level of 10 carried in from 1 earlier "
            "event, e.g. c1-1) and no rate in effect on 2026-05-01 in USD") in result.stdout
    # in March its rate was in effect: valid, and the summary follows
    march = run_meterline(["catalog", "--period", "2026-03"], home=home, catalog=root,
                          cwd=tmp_path)
    assert march.returncode == 0, march.stdout + march.stderr
    assert "time_weighted_sum 1 (storage_gb per period)" in march.stdout


# --------------------------------------------------------------------------- 3. overflow
OVERFLOW_CATALOG = {
    "customers.csv": CUSTOMERS,
    "meters.csv": """
meter_id,display_name,unit,aggregation,unique_dimension,time_unit
storage_gb,Storage,GB-month,time_weighted_sum,,
seats,Seats,seat-day,time_weighted_sum,,day
projects,Projects,project,running_total,,
""",
    "product_items.csv": """
product_item_id,display_name,meter_id,dimension_filter
storage_eu,Storage EU,storage_gb,region=eu
storage_us,Storage US,storage_gb,region=us
seats,Seats,seats,
projects,Projects,projects,
""",
    "rates.csv": RATES_HEADER + """
r_eu,storage_eu,,USD,per_unit,0.25,,,2025-01-01,
r_us,storage_us,,USD,per_unit,0.20,,,2025-01-01,
r_seats,seats,,USD,per_unit,0.01,,,2025-01-01,
r_projects,projects,,USD,per_unit,2,,,2025-01-01,
""",
}


NOW = "2026-12-10T00:00:00Z"  # December is the current month: levels run on to it


@pytest.fixture
def overflow_problems_of(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("METERLINE_NOW", NOW)
    catalog = load_catalog(write_catalog_dir(tmp_path / "c", OVERFLOW_CATALOG))
    assert validate(catalog) == []

    def check(rows, month: date = date(2026, 3, 1)) -> list[str]:
        db = tmp_path / f"w{len(list(tmp_path.glob('w*.duckdb')))}.duckdb"
        con = warehouse.connect(db)
        try:
            insert_events(con, rows)
            return [str(p) for p in period_problems(con, catalog, month)]
        finally:
            con.close()
    return check


def heads(problems: list[str]) -> list[str]:
    return [p.split(": ", 2)[1] for p in problems]


def test_a_level_held_for_a_month_that_overflows_the_integral_is_named(overflow_problems_of):
    """10^25 fits DECIMAL(38,12) as a value and as a level, but 10^25 x 2,678,400,000,000
    microseconds (March) does not."""
    problems = overflow_problems_of([
        ("big-1", "c1", "storage_gb", "10000000000000000000000000",
         "2026-03-01 00:00:00+00", EU),
        ("ok-1", "c2", "storage_gb", "30000000000000", "2026-03-01 00:00:00+00", EU),  # fits
        ("ok-2", "c2", "projects", "90000000000000000000000000", "2026-03-01 00:00:00+00", "{}"),
    ])
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "raw.usage_events (c1, storage_eu), value: customer c1, item storage_eu (meter "
        "storage_gb, time_weighted_sum), period 2026-03 and 9 later periods: its level x "
        "duration (in microseconds, up to 2.68 x 10^12 in a month) about 2.68e+37 (the largest "
        "change big-1, 10000000000000000000000000 in size), more than DECIMAL(38,12) holds"
    ), problems


def test_level_overflows_carry_and_name_the_item_unbilled_set_or_meter(overflow_problems_of):
    problems = overflow_problems_of([
        # 3.8 x 10^13 held for a 28-day month (February) or a 30-day one fits, for a 31-day
        # month it does not: March, May, July, August, October and December
        ("feb-1", "c1", "storage_gb", "38000000000000", "2026-02-01 00:00:00+00", US),
        # two items that fit on their own (2 x 10^13 x 31 days = 5.4 x 10^25) but not together:
        # the meter's own level is named
        ("eu-1", "c2", "storage_gb", "20000000000000", "2026-11-01 00:00:00+00", EU),
        ("us-1", "c2", "storage_gb", "20000000000000", "2026-11-01 00:00:00+00", US),
        # the events no item matches
        ("ap-1", "c3", "storage_gb", "50000000000000", "2026-06-01 00:00:00+00",
         '{"region":"ap"}'),
        # a running_total's level: 6 x 10^25 twice is 1.2 x 10^26 (its integral is no figure)
        ("p-1", "c4", "projects", "60000000000000000000000000", "2026-03-01 00:00:00+00", "{}"),
        ("p-2", "c4", "projects", "60000000000000000000000000", "2026-05-01 00:00:00+00", "{}"),
        # seat-days: the divisor does not matter, the integral in microseconds does; the
        # current month counts whole
        ("s-1", "c5", "seats", "40000000000000", "2026-12-01 00:00:00+00", "{}"),
    ])
    assert heads(problems) == [
        "customer c1, item storage_us (meter storage_gb, time_weighted_sum), period 2026-03 and "
        "5 later periods",
        "customer c2, meter storage_gb (time_weighted_sum, its level over all its events), "
        "period 2026-11 and 1 later period",
        "customer c3, meter storage_gb's unbilled usage (time_weighted_sum, the events no item "
        "matches), period 2026-06 and 6 later periods",
        "customer c4, item projects (meter projects, running_total), period 2026-05 and 7 later "
        "periods",
        "customer c5, item seats (meter seats, time_weighted_sum), period 2026-12",
    ], problems
    assert [p.split(": ", 1)[0] for p in problems] == [
        "raw.usage_events (c1, storage_us), value", "raw.usage_events (c2, storage_gb), value",
        "raw.usage_events (c3, storage_gb), value", "raw.usage_events (c4, projects), value",
        "raw.usage_events (c5, seats), value"]
    assert "its level (the running sum of its events' values) reaches about 1.2e+26" \
        in problems[3]
    assert "level x duration" not in problems[3]
    assert "(the largest change feb-1, 38000000000000 in size)" in problems[0]
    assert "(the largest change eu-1, 20000000000000 in size)" in problems[1]
    assert all("no month can be billed" in p for p in problems)


def test_no_level_overflow_below_the_limits(overflow_problems_of):
    assert overflow_problems_of([
        ("a", "c1", "storage_gb", "37000000000000", "2026-01-01 00:00:00+00", US),  # 9.9e25
        ("b", "c2", "seats", "-37000000000000", "2026-01-01 00:00:00+00", "{}"),
        ("c", "c3", "projects", "99900000000000000000000000", "2026-03-01 00:00:00+00", "{}"),
        # changes that cancel: their sizes add up to a candidate (4 x 10^14 x 31 days), but the
        # levels stay at 0 and each month's changes x duration are small enough
        *[(f"d{i}", "c4", "storage_gb", "-1000000000000" if i % 2 else "1000000000000",
           f"2026-{1 + i // 40:02d}-{1 + i % 40 // 2:02d} 00:00:00+00", EU) for i in range(400)],
    ]) == []


def test_a_huge_change_undone_at_once_still_overflows_its_part(overflow_problems_of):
    """The build weighs each change by the microseconds to its period's end (value x duration,
    in DECIMAL(38,12)): a change of 10^26 - 1 undone at the same instant still overflows it."""
    problems = overflow_problems_of([
        ("b", "c2", "storage_gb", "99999999999999999999999999", "2026-03-01 00:00:00+00", EU),
        ("c", "c2", "storage_gb", "-99999999999999999999999999", "2026-03-01 00:00:00+00", EU),
    ])
    assert heads(problems) == [
        "customer c2, item storage_eu (meter storage_gb, time_weighted_sum), period 2026-03"]


@pytest.mark.e2e
def test_meterline_bill_names_the_customer_and_item_of_an_overflowing_level(tmp_path):
    """Through the real CLI: `ingest` lands the value 10^25 exactly, then `bill` stops (exit 1)
    before anything is priced, naming the customer and the item."""
    root = write_catalog_dir(tmp_path / "catalog", OVERFLOW_CATALOG)
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    events = [
        {"event_id": "big-1", "customer_id": "c1", "meter": "storage_gb",
         "value": 10 ** 25, "timestamp": "2026-03-01T00:00:00Z",
         "dimensions": {"region": "eu"}},
        {"event_id": "ok-1", "customer_id": "c2", "meter": "storage_gb", "value": "12.5",
         "timestamp": "2026-03-05T00:00:00Z", "dimensions": {"region": "us"}},
    ]
    (home / "landing" / "levels.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {"METERLINE_NOW": NOW}
    ingest = run_meterline(["ingest"], home=home, catalog=root, cwd=cwd, env=env)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    bill = run_meterline(["bill", "--period", "2026-03"], home=home, catalog=root, cwd=cwd,
                         env=env)
    output = bill.stdout + bill.stderr
    assert bill.returncode == 1, output
    assert "has 1 problem(s); nothing was priced" in output
    assert ("raw.usage_events (c1, storage_eu), value: customer c1, item storage_eu (meter "
            "storage_gb, time_weighted_sum), period 2026-03 and 9 later periods: its level x "
            "duration") in output
    assert "(the largest change big-1, 10000000000000000000000000 in size)" in output
