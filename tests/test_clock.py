"""The one injectable clock (orchestration/lib/clock.py) and the calendar decisions made with it:
the 1st of a month inside the grace period, month ends, and the demo's months on any day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from orchestration.cli.demo import demo_months
from orchestration.lib import clock, periods
from orchestration.lib.settings import UsageError


def test_a_pinned_clock_starts_at_its_instant_and_moves_on(monkeypatch):
    monkeypatch.setenv("METERLINE_NOW", "2026-12-01T05:00:00+01:00")
    first = clock.now()
    assert first.tzinfo is not None and first.utcoffset().total_seconds() == 0
    assert datetime(2026, 12, 1, 4, 0, tzinfo=UTC) <= first < datetime(2026, 12, 1, 4, 1,
                                                                      tzinfo=UTC)
    assert clock.now() >= first, "instants recorded one after the other keep their order"
    assert clock.today() == date(2026, 12, 1)


def test_an_unpinned_clock_is_utc(monkeypatch):
    monkeypatch.delenv("METERLINE_NOW", raising=False)
    monkeypatch.setenv("TZ", "America/New_York")
    assert clock.now().utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["2026-12-01T05:00:00", "yesterday", "2026-13-01T00:00:00Z"])
def test_a_pinned_clock_must_name_its_offset(monkeypatch, text):
    monkeypatch.setenv("METERLINE_NOW", text)
    with pytest.raises(UsageError, match="METERLINE_NOW"):
        clock.now()


@pytest.mark.parametrize(("now", "published", "drafts"), [
    # the 1st, inside the 24 h grace of November: October is the latest closed month
    ("2026-12-01T05:00:00Z", "2026-10", ["2026-11"]),
    # the 2nd at 00:00 exactly: November's grace is over
    ("2026-12-02T00:00:00Z", "2026-11", ["2026-12"]),
    ("2026-12-01T23:59:59Z", "2026-10", ["2026-11"]),
    # mid-month: last month is published, this month drafted to date
    ("2026-11-17T12:00:00Z", "2026-10", ["2026-11"]),
    # the last instant of a month, and New Year
    ("2026-12-31T23:59:59Z", "2026-11", ["2026-12"]),
    ("2027-01-01T05:00:00Z", "2026-11", ["2026-12"]),
    ("2027-01-02T05:00:00Z", "2026-12", ["2027-01"]),
])
def test_demo_publishes_the_latest_closed_month_on_any_day(now, published, drafts):
    at = clock.parse_instant(now)
    month, draft_months, generated = demo_months(at, 24)
    assert periods.period_key(month) == published
    assert [periods.period_key(m) for m in draft_months] == drafts
    assert generated[0] == periods.previous_period(month) and generated[1] == month
    assert at >= periods.grace_ends_at(month, 24)
    for m in draft_months:
        assert at < periods.grace_ends_at(m, 24)


def test_demo_with_a_long_grace_goes_back_further():
    month, drafts, _ = demo_months(clock.parse_instant("2026-12-01T05:00:00Z"), 24 * 40)
    assert periods.period_key(month) == "2026-09" and [periods.period_key(m) for m in drafts] \
        == ["2026-10", "2026-11"]


def test_future_period_is_judged_by_the_clock(monkeypatch):
    monkeypatch.setenv("METERLINE_NOW", "2026-12-01T00:00:00Z")
    assert periods.parse_period("2026-12") == date(2026, 12, 1)
    with pytest.raises(UsageError, match="future"):
        periods.parse_period("2027-01")
    monkeypatch.setenv("METERLINE_NOW", "2026-11-30T23:59:59Z")
    with pytest.raises(UsageError, match="future"):
        periods.parse_period("2026-12")


def _instant_of_a_run(tags: dict[str, str]) -> datetime:
    """clock.run_instant as a real Dagster run's op sees it (an ephemeral instance)."""
    import dagster as dg

    seen: list[datetime] = []

    @dg.op
    def record(context):  # annotations are strings here (__future__): none for Dagster
        seen.append(clock.run_instant(context))

    @dg.job
    def one_step():
        record()

    result = one_step.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags)
    assert result.success
    return seen[0]


def test_a_run_has_one_instant_from_its_tag_the_pinned_clock_or_its_creation(monkeypatch):
    """Month-to-date level usage accrues up to the run's instant (CONTRACT.md v1.2 section 3):
    the CLI's tag; else, for a run the UI or the schedule launched, the pinned clock's instant
    (the same in every step's process); else the run's creation time, in UTC."""
    tagged = clock.run_instant_tag()[clock.RUN_INSTANT_TAG]
    assert _instant_of_a_run({clock.RUN_INSTANT_TAG: tagged}) == clock.parse_instant(tagged)
    monkeypatch.setenv(clock.ENV, "2026-03-15T12:00:00.123456+00:00")
    assert _instant_of_a_run({}) == datetime(2026, 3, 15, 12, 0, 0, 123456, tzinfo=UTC)
    monkeypatch.delenv(clock.ENV)
    before = datetime.now(UTC)
    created = _instant_of_a_run({})
    assert before <= created <= datetime.now(UTC) and created.utcoffset().total_seconds() == 0
