"""`meterline explain` for a level meter's line (CONTRACT.md v1.2 sections 3 and 6): the level
carried into the period and how many events it sums, one step per distinct timestamp of the
period's events (level, how long it held, level x duration), the integral, the divisor and the
quantity; for running_total the level at the end.

The fast tests run explain's own functions on a hand-built warehouse (an in-memory DuckDB with
the columns they read). The e2e ones bill conformance case 05 (its catalog and events copied
into the test's tmp dir) with the real CLI; figures from its steps.json.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.cli import explain_level as explain
from tests.conftest import CONFORMANCE_V12, MISSING_SHARED, run_meterline

CASE = CONFORMANCE_V12 / "05-time-weighted-meters"
MARCH, APRIL = date(2026, 3, 1), date(2026, 4, 1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- the arithmetic -----------------------------------------------------------------------------

def test_quotient_is_rounded_once_half_away_from_zero():
    q = explain.quotient_12
    assert q(Decimal(3430) * 86_400_000_000, 31 * 86_400_000_000) == Decimal("110.645161290323")
    assert q(Decimal("0.000000000001"), 2) == Decimal("0.000000000001")  # 0.5e-12 -> up
    assert q(Decimal("-0.000000000001"), 2) == Decimal("-0.000000000001")  # away from zero
    assert q(Decimal("0.000000000001"), 3) == Decimal(0)
    # beyond 28 digits (Decimal's default precision) it stays exact
    units = 12345678901234567890123456123456789012  # 38 digits
    assert q(Decimal(f"{units * 7}E-12"), 7) == Decimal(f"{units}E-12")
    with pytest.raises(ValueError):
        q(Decimal("0.0000000000001"), 1)


def test_spans_read_as_days_hours_minutes_seconds():
    assert explain.span(1_900_800_000_000) == "22 d"
    assert explain.span(2_116_800_000_000) == "24 d 12 h"
    assert explain.span(992_730_500_000) == "11 d 11 h 45 min 30.5 s"
    assert explain.span(1) == "0.000001 s"
    assert explain.span(0) == "0 s"


# --- level_figures on a hand-built warehouse ----------------------------------------------------

EVENTS = [  # (event_id, customer, meter, event_at, value, dimensions, landed_at)
    ("a1", "c", "gb", "2026-02-20T00:00:00Z", "100", '{"region":"eu"}', "2026-03-01T00:00:00Z"),
    ("a2", "c", "gb", "2026-03-01T00:00:00Z", "50", '{"region":"us"}', "2026-04-01T00:00:00Z"),
    ("a3", "c", "gb", "2026-03-10T00:00:00Z", "20", '{"region":"eu"}', "2026-04-01T00:00:00Z"),
    ("a4", "c", "gb", "2026-03-10T00:00:00Z", "-5", '{"region":"eu"}', "2026-04-01T00:00:00Z"),
    ("a5", "c", "gb", "2026-03-10T00:00:00Z", "30", '{"zone":"eu"}', "2026-04-01T00:00:00Z"),
    ("a6", "c", "gb", "2026-03-20T12:00:00Z", "40", '{"region":"eu"}', "2026-04-05T00:00:00Z"),
    ("a7", "c", "gb", "2026-04-01T00:00:00Z", "-15", '{"region":"eu"}', "2026-04-05T00:00:00Z"),
    ("o1", "other", "gb", "2026-03-02T00:00:00Z", "999", '{"region":"eu"}',
     "2026-04-01T00:00:00Z"),
    ("p1", "c", "proj", "2026-02-15T00:00:00Z", "3", "{}", "2026-03-01T00:00:00Z"),
    ("p2", "c", "proj", "2026-03-05T00:00:00Z", "2", "{}", "2026-04-01T00:00:00Z"),
    ("p3", "c", "proj", "2026-03-31T23:59:59.999999Z", "-1", "{}", "2026-04-01T00:00:00Z"),
    ("p4", "c", "proj", "2026-04-01T00:00:00Z", "10", "{}", "2026-04-01T00:00:00Z"),
]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema raw")
    con.execute("create table raw.usage_events (event_id varchar, customer_id varchar, "
                "meter_id varchar, event_at timestamptz, value decimal(38, 12), "
                "dimensions varchar, landed_at timestamptz)")
    con.executemany("insert into raw.usage_events values (?, ?, ?, ?::timestamptz, ?, ?, "
                    "?::timestamptz)", EVENTS)
    yield con
    con.close()


def figures(con, **overrides) -> dict:
    args = {"customer_id": "c", "meter_id": "gb", "aggregation": "time_weighted_sum",
            "time_unit": "period", "dimension_filter": "region=eu", "period_start": MARCH,
            "period_end": APRIL, "accrued_to": at("2026-04-01T00:00:00Z"), "landed_by": None}
    args.update(overrides)
    return explain.level_figures(con, **args)


def test_the_items_level_over_a_closed_month(con):
    f = figures(con, landed_by=at("2026-04-01T00:00:00Z"))  # a6 landed later: not counted
    assert (f["carried_level"], f["carried_event_count"]) == ("100", 1)
    assert f["carried_segment"] == {
        "from": "2026-03-01T00:00:00+00:00", "to": "2026-03-10T00:00:00+00:00", "level": "100",
        "duration_us": 777_600_000_000, "level_x_duration": "77760000000000"}
    # a3 and a4 act together; a5 has no `region` key and another customer's o1 is not read
    assert f["step_count"] == 1 and f["period_event_count"] == 2
    assert f["steps"] == [{"at": "2026-03-10T00:00:00+00:00", "change": "15", "event_count": 2,
                           "level": "115", "duration_us": 1_900_800_000_000,
                           "until": "2026-04-01T00:00:00+00:00",
                           "level_x_duration": "218592000000000"}]
    assert f["integral"] == "296352000000000"  # 100 x 9 d + 115 x 22 d, in microseconds
    assert f["divisor_us"] == 2_678_400_000_000
    assert f["quantity"] == "110.645161290323"
    assert f["events_landed_by"] == "2026-04-01T00:00:00+00:00"


def test_every_landed_event_counts_for_a_draft_and_late_ones_are_counted(con):
    f = figures(con, landed_after=at("2026-04-01T00:00:00Z"))
    assert f["step_count"] == 2 and f["events_landed_by"] is None
    assert [s["level"] for s in f["steps"]] == ["115", "155"]
    assert f["quantity"] == "125.483870967742"  # (100 x 9 + 115 x 10.5 + 155 x 11.5) / 31
    assert f["landed_after"] == {"at": "2026-04-01T00:00:00+00:00", "event_count": 1}  # a6


def test_a_month_to_date_draft_accrues_up_to_the_run_instant(con):
    f = figures(con, accrued_to=at("2026-03-15T00:00:00Z"), time_unit="day")
    assert f["step_count"] == 1 and f["events_not_accrued"] == 1  # a6 is after the run instant
    assert f["steps"][0]["until"] == "2026-03-15T00:00:00+00:00"
    assert f["divisor_us"] == 86_400_000_000
    assert f["quantity"] == "1475"  # 100 x 9 d + 115 x 5 d, in level-days


def test_a_first_event_at_the_periods_first_instant_leaves_no_carried_segment(con):
    f = figures(con, dimension_filter="region=us", time_unit="hour")
    assert f["carried_level"] == "0" and f["carried_segment"] is None
    assert f["steps"][0]["at"] == "2026-03-01T00:00:00+00:00"
    assert f["quantity"] == str(50 * 31 * 24)


def test_only_the_first_ten_steps_are_shown_but_all_count(con):
    con.executemany("insert into raw.usage_events values (?, 'c', 'gb', ?::timestamptz, 1, "
                    "'{\"region\":\"eu\"}', '2026-04-01T00:00:00Z')",
                    [(f"n{d}", f"2026-03-{d:02d}T06:00:00Z") for d in range(11, 26)])
    f = figures(con)
    assert f["step_count"] == 17 and len(f["steps"]) == explain.STEPS_SHOWN
    total = Decimal(f["carried_segment"]["level_x_duration"]) + Decimal(f["steps_integral"])
    assert Decimal(f["integral"]) == total
    # +1 at 06:00 on each of days 11..25, each held to April 1st: 32 - d - 0.25 days
    level_days = 100 * 9 + 115 * 22 + 40 * Decimal("11.5") + sum(
        Decimal(32 - d) - Decimal("0.25") for d in range(11, 26))
    expected = (level_days / 31).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)
    assert Decimal(f["quantity"]) == expected


def test_running_total_is_the_level_before_the_end(con):
    f = figures(con, meter_id="proj", aggregation="running_total", time_unit=None,
                dimension_filter=None)
    assert (f["carried_level"], f["carried_event_count"]) == ("3", 1)
    assert [(s["at"], s["change"], s["level"]) for s in f["steps"]] == [
        ("2026-03-05T00:00:00+00:00", "2", "5"),
        ("2026-03-31T23:59:59.999999+00:00", "-1", "4")]
    assert "duration_us" not in f["steps"][0] and "integral" not in f
    assert f["closing_level"] == f["quantity"] == "4"  # p4 at April's first instant is April's


def test_the_text_walks_through_the_figures(con, capsys):
    f = figures(con, landed_by=at("2026-04-01T00:00:00Z"))
    explain.say_level(print, f)
    out = capsys.readouterr().out
    assert "carried into 2026-03-01T00:00:00+00:00: 100, the sum of the 1 event(s)" in out
    assert "carried segment (not a step)" in out and "777600000000 us (9 d)" in out
    assert ("2026-03-10T00:00:00+00:00: change +15 (2 event(s)), level 115 until "
            "2026-04-01T00:00:00+00:00: 1900800000000 us (22 d)") in out
    assert "= 77760000000000 (carried segment) + 218592000000000 (steps) = 296352000000000" in out
    assert "divisor: time unit period, the whole month = 2678400000000 us (31 d)" in out
    assert "quantity = 296352000000000 / 2678400000000 = 110.645161290323" in out


@pytest.fixture
def billed(con):
    """con with March published on 04-02 (a6, landed 04-05, is late for it), its EU usage line
    and May's draft adjustment line for it."""
    con.execute("create schema marts")
    con.execute("create schema billing")
    con.execute("create table marts.fct_invoice_lines (customer_id varchar, "
                "product_item_id varchar, billing_period_start date, usage_period_start date, "
                "line_type varchar, quantity decimal(38, 12))")
    con.execute("insert into marts.fct_invoice_lines values "
                "('c', 'eu', '2026-03-01', '2026-03-01', 'usage', 110.645161290323), "
                "('c', 'eu', '2026-05-01', '2026-03-01', 'adjustment', 14.838709677419)")
    con.execute("create table billing.published_periods (billing_period_start date, "
                "published_at timestamptz)")
    con.execute("insert into billing.published_periods values "
                "('2026-03-01', '2026-04-02T00:00:00Z')")
    return con


def _line_fields(line_type: str, usage_period_start: str, usage_period_end: str) -> dict:
    return {"line_type": line_type, "product_item_id": "eu", "meter_id": "gb",
            "usage_period_start": usage_period_start, "usage_period_end": usage_period_end}


METER = ("time_weighted_sum", None, "period", "region=eu")


def test_an_adjustment_shows_the_restated_period(billed):
    may_draft = ("c", date(2026, 5, 1), "draft", at("2026-06-01T00:00:00Z"), None)
    level = explain.line_level(billed, may_draft,
                                _line_fields("adjustment", "2026-03-01", "2026-04-01"),
                                Decimal("14.838709677419"), METER, True)
    assert level["accrued_to"] == "2026-04-01T00:00:00+00:00"  # the restated period's end
    assert level["quantity"] == "125.483870967742"
    assert level["landed_after"] == {"at": "2026-04-02T00:00:00+00:00", "event_count": 1}
    assert level["restated"] == {"quantity": "125.483870967742",
                                 "billed_before": "110.645161290323",
                                 "change": "14.838709677419", "matches_line": True}


def test_a_published_line_counts_the_events_landed_by_its_publication(billed, capsys):
    march = ("c", MARCH, "published", at("2026-04-01T00:00:00Z"), at("2026-04-02T00:00:00Z"))
    fields = _line_fields("usage", "2026-03-01", "2026-04-01")
    level = explain.line_level(billed, march, fields, Decimal("110.645161290323"), METER, True)
    assert level["events_landed_by"] == "2026-04-02T00:00:00+00:00"
    assert level["quantity"] == level["billed_quantity"] == "110.645161290323"
    assert level["matches_line"] is True
    draft = ("c", MARCH, "draft", at("2026-04-01T00:00:00Z"), None)  # a6 counts: it differs
    level = explain.line_level(billed, draft, fields, Decimal("110.645161290323"), METER, True)
    assert level["matches_line"] is False
    explain.say_outcome(print, {"item_quantity": "110.645161290323"}, level)
    assert ("note: max(125.483870967742, 0) = 125.483870967742, but the item's quantity on "
            "this invoice is 110.645161290323") in capsys.readouterr().out
    unavailable = explain.line_level(billed, draft, fields, None, METER, False)
    assert "readers' snapshot" in unavailable["unavailable"]


# --- the real CLI on conformance case 05 -------------------------------------------------------

def _explain(home: Path, invoice: str, line: int | None = None, fmt: str = "json"):
    paths = {"home": home / "home", "catalog": home / "catalog", "cwd": home / "cwd"}
    args = ["explain", "--invoice", invoice, *(["--line", str(line)] if line else [])]
    done = run_meterline([*args, "--format", fmt], **paths)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["lines"] if fmt == "json" else done.stdout


def _meterline(home: Path, *args: str):
    done = run_meterline(list(args), home=home / "home", catalog=home / "catalog",
                         cwd=home / "cwd", env={"METERLINE_GRACE_HOURS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def case05(tmp_path_factory) -> Path:
    """A home with case 05's catalog and a_usage.jsonl, March billed (a draft)."""
    if not CASE.is_dir():
        pytest.skip(MISSING_SHARED)
    root = tmp_path_factory.mktemp("case05")
    shutil.copytree(CASE / "catalog", root / "catalog")
    (root / "home" / "landing").mkdir(parents=True)
    (root / "cwd").mkdir()
    shutil.copy(CASE / "events" / "a_usage.jsonl", root / "home" / "landing")
    _meterline(root, "ingest")
    _meterline(root, "bill", "--period", "2026-03")
    return root


def _line(lines: list[dict], item: str, line_type: str = "usage",
          usage_period_start: str | None = None) -> dict:
    found = [ln for ln in lines if ln["product_item_id"] == item and ln["line_type"] == line_type
             and usage_period_start in (None, ln["usage_period_start"])]
    assert found, [(ln["product_item_id"], ln["line_type"]) for ln in lines]
    return found[0]


@pytest.mark.e2e
def test_explain_of_a_time_weighted_line(case05):
    line = _line(_explain(case05, "INV-202603-tw_acme"), "storage_eu")
    level = line["level"]
    assert line["quantity"] == "110.645161290323" and line["aggregate"] == "110.645161290323"
    assert (level["carried_level"], level["carried_event_count"]) == ("100", 1)
    assert level["carried_segment"]["duration_us"] == 9 * 86_400_000_000
    assert level["step_count"] == 1
    assert [(s["at"], s["level"], s["duration_us"]) for s in level["steps"]] == [
        ("2026-03-10T00:00:00+00:00", "115", 1_900_800_000_000)]
    assert level["integral"] == str((100 * 9 + 115 * 22) * 86_400_000_000)
    assert level["divisor_us"] == 2_678_400_000_000
    assert level["quantity"] == level["billed_quantity"] == "110.645161290323"
    assert level["matches_line"] is True
    assert level["events_landed_by"] is None  # a draft: every landed event
    assert [e["event_id"] for e in line["events_shown"]] == ["acme-3", "acme-4"]
    text = _explain(case05, "INV-202603-tw_acme", line["line_number"], fmt="table")
    assert "carried into 2026-03-01T00:00:00+00:00: 100, the sum of the 1 event(s)" in text
    assert "level 115 until 2026-04-01T00:00:00+00:00: 1900800000000 us (22 d)" in text
    assert "quantity = 296352000000000 / 2678400000000 = 110.645161290323" in text
    assert "billed Q = max(110.645161290323, 0) = 110.645161290323" in text


@pytest.mark.e2e
def test_explain_of_a_running_total_and_a_carried_only_line(case05):
    level = _line(_explain(case05, "INV-202603-tw_proj"), "projects")["level"]
    assert (level["carried_level"], level["step_count"]) == ("3", 2)
    assert [s["level"] for s in level["steps"]] == ["5", "4"]
    assert level["quantity"] == level["closing_level"] == "4" and level["matches_line"]
    quiet = _line(_explain(case05, "INV-202603-tw_quiet"), "storage_eu")
    assert quiet["event_count"] == 0 and quiet["level"]["step_count"] == 0
    assert quiet["level"]["carried_segment"]["duration_us"] == 2_678_400_000_000
    assert quiet["level"]["quantity"] == quiet["quantity"] == "12"


@pytest.fixture(scope="module")
def case05_late(case05) -> Path:
    """case05 with March and April published, then b_late.csv landed (late-acme +40 EU at
    03-20 12:00Z, late-proj +1 at 03-18, ...)."""
    _meterline(case05, "bill", "--period", "2026-03", "--publish")
    _meterline(case05, "bill", "--period", "2026-04", "--publish")
    shutil.copy(CASE / "events" / "b_late.csv", case05 / "home" / "landing")
    _meterline(case05, "ingest")
    return case05


@pytest.mark.e2e
def test_a_published_line_is_explained_with_the_events_landed_by_its_publication(case05_late):
    line = _line(_explain(case05_late, "INV-202603-tw_acme"), "storage_eu")
    level = line["level"]
    assert level["events_landed_by"] is not None  # late-acme landed after: not in it
    assert level["step_count"] == 1 and level["quantity"] == "110.645161290323"
    assert level["matches_line"] is True
    text = _explain(case05_late, "INV-202603-tw_acme", line["line_number"], fmt="table")
    assert f"landed by {level['events_landed_by']}, when the invoice was published" in text


@pytest.mark.e2e
def test_a_level_adjustment_restates_its_period(case05_late):
    """May's adjustments restate March and April with every landed event (May is a draft)."""
    _meterline(case05_late, "bill", "--period", "2026-05")
    may = _explain(case05_late, "INV-202605-tw_acme")
    adjustment = _line(may, "storage_eu", "adjustment", "2026-03-01")
    restated = adjustment["level"]
    assert adjustment["quantity"] == "14.838709677419"
    assert [s["level"] for s in restated["steps"]] == ["115", "155"]
    assert restated["quantity"] == "125.483870967742"
    assert restated["landed_after"]["event_count"] == 1  # late-acme
    assert restated["restated"] == {"quantity": "125.483870967742",
                                    "billed_before": "110.645161290323",
                                    "change": "14.838709677419", "matches_line": True}
    april = _line(may, "storage_eu", "adjustment", "2026-04-01")["level"]["restated"]
    assert (april["quantity"], april["billed_before"], april["change"]) == ("140", "100", "40")
    proj = _line(_explain(case05_late, "INV-202605-tw_proj"), "projects", "adjustment",
                 "2026-03-01")["level"]["restated"]
    assert (proj["quantity"], proj["billed_before"], proj["change"]) == ("5", "4", "1")
