from datetime import UTC, date, datetime

import pytest

from orchestration.lib import periods
from orchestration.lib.settings import UsageError


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-10", "2026/10", "", "2026-1",
                                  "2026-10-01"])
def test_malformed_period_is_usage_error(text):
    with pytest.raises(UsageError, match="YYYY-MM"):
        periods.parse_period(text, today=date(2026, 11, 25))


def test_future_period_is_usage_error_and_current_month_is_allowed():
    today = date(2026, 11, 25)
    with pytest.raises(UsageError, match="future"):
        periods.parse_period("2026-12", today=today)
    assert periods.parse_period("2026-11", today=today) == date(2026, 11, 1)
    assert periods.parse_period("2026-01", today=today) == date(2026, 1, 1)


def test_month_arithmetic_crosses_years():
    assert periods.next_period(date(2026, 12, 1)) == date(2027, 1, 1)
    assert periods.previous_period(date(2026, 1, 1)) == date(2025, 12, 1)
    assert periods.period_key(date(2026, 3, 1)) == "2026-03"


def test_grace_period_and_month_to_date():
    assert periods.grace_ends_at(date(2026, 10, 1), 24) == datetime(2026, 11, 2, tzinfo=UTC)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert periods.is_month_to_date(date(2026, 11, 1), now=now)
    assert not periods.is_month_to_date(date(2026, 10, 1), now=now)


def test_open_months_are_the_unpublished_previous_month_and_the_current_one():
    # the 1st of January: the previous month is December of the year before
    assert periods.open_months(date(2027, 1, 1), set()) == [date(2026, 12, 1), date(2027, 1, 1)]
    # once the previous month is published only the current month stays open
    assert periods.open_months(date(2026, 12, 17), {date(2026, 11, 1)}) == [date(2026, 12, 1)]
    # an older unpublished month is not refreshed (it keeps its last bill's draft)
    assert periods.open_months(date(2026, 12, 31), {date(2026, 10, 1)}) == [
        date(2026, 11, 1), date(2026, 12, 1)]


def test_ingest_refresh_setting():
    from orchestration.lib.settings import load

    assert load({}).ingest_refresh is True
    assert load({"METERLINE_INGEST_REFRESH": "off"}).ingest_refresh is False
    assert load({"METERLINE_INGEST_REFRESH": " ON "}).ingest_refresh is True
    with pytest.raises(UsageError, match="METERLINE_INGEST_REFRESH"):
        load({"METERLINE_INGEST_REFRESH": "sometimes"})
