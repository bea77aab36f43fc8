"""Billing periods: calendar months in UTC (CONTRACT.md section 4). Pure functions."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from orchestration.lib import clock
from orchestration.lib.settings import UsageError

PARTITION_START = "2020-01"
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def parse_period(text: str, *, today: date | None = None) -> date:
    """``YYYY-MM`` -> the period's first day. A malformed or future month is bad usage (exit 2);
    the current month is allowed (a month-to-date draft)."""
    match = _PERIOD.match(text or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError(f"--period {text!r} is not a month: give it as YYYY-MM, e.g. 2026-10")
    start = date(int(match.group(1)), int(match.group(2)), 1)
    today = today or clock.now().date()
    if start > today.replace(day=1):
        raise UsageError(
            f"--period {text} is in the future (today is {today.isoformat()} UTC): "
            f"bill a month that has started"
        )
    if start < date.fromisoformat(PARTITION_START + "-01"):
        raise UsageError(f"--period {text} is before {PARTITION_START}, the first billable month")
    return start


def next_period(start: date) -> date:
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def previous_period(start: date) -> date:
    return date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def period_key(start: date) -> str:
    """The Dagster partition key of a period: ``YYYY-MM``."""
    return start.strftime("%Y-%m")


def period_from_key(key: str) -> date:
    return date.fromisoformat(key + "-01")


def period_end_instant(start: date) -> datetime:
    nxt = next_period(start)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


def grace_ends_at(start: date, grace_hours: int) -> datetime:
    """The instant from which period ``start`` may be published (section 7)."""
    return period_end_instant(start) + timedelta(hours=grace_hours)


def is_month_to_date(start: date, *, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return period_end_instant(start) > now


def open_months(today: date, published: set[date] | frozenset[date]) -> list[date]:
    """The months whose month-to-date draft an ingest refreshes, oldest first: the previous month
    while it is not published (late events of its last days, its grace period) and the current
    month. Older unpublished months keep the draft of their last `bill`."""
    current = today.replace(day=1)
    previous = previous_period(current)
    return [m for m in (previous, current) if m == current or m not in published]
