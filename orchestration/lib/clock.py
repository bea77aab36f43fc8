"""The one clock of Meterline: every "now" (landed_at, published_at, the grace period, the
current month, the demo's months) comes from here, never from ``datetime.now`` directly.

``METERLINE_NOW`` pins it to an ISO-8601 instant with an offset (``2026-12-01T05:00:00Z``).
A pinned clock starts at that instant when a process first reads it and then moves on with the
real time elapsed in that process, so instants recorded one after the other (a publish, then a
late event's ``landed_at``) keep their order. Tests pin it (tests/conftest.py); an operator can
pin it to re-run a close as of a given instant. Unset, it is the machine's clock, in UTC
whatever the machine's time zone."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, date, datetime, timedelta

from orchestration.lib.settings import UsageError

ENV = "METERLINE_NOW"
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
_pinned: dict[str, tuple[datetime, float]] = {}  # value of METERLINE_NOW -> (instant, monotonic)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant that names its offset (``Z`` or ``+hh:mm``), as UTC."""
    text = text.strip()
    if not _OFFSET.search(text):
        raise UsageError(f"{ENV}={text!r} is not an instant with an offset: give it as "
                         f"YYYY-MM-DDTHH:MM:SSZ, e.g. 2026-12-01T05:00:00Z")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{ENV}={text!r} is not an ISO-8601 instant: give it as "
                         f"YYYY-MM-DDTHH:MM:SSZ, e.g. 2026-12-01T05:00:00Z") from None
    return at.astimezone(UTC)


def now() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    raw = os.environ.get(ENV)
    if not raw:
        return datetime.now(UTC)
    if raw not in _pinned:
        _pinned[raw] = (parse_instant(raw), time.monotonic())
    start, ticks = _pinned[raw]
    return start + timedelta(seconds=time.monotonic() - ticks)


def today() -> date:
    """The current UTC date."""
    return now().date()


#: the run tag holding a run's one instant (ISO-8601, UTC, microseconds): what a month-to-date
#: level meter accrues up to (CONTRACT.md v1.2 section 3), the same for every step of the run
RUN_INSTANT_TAG = "meterline/run_instant"


def run_instant_tag() -> dict[str, str]:
    """The tag a launcher gives a run: now, truncated to microseconds (a datetime already is)."""
    return {RUN_INSTANT_TAG: now().isoformat()}


def run_instant(context) -> datetime:
    """The instant of the Dagster run of ``context`` (an op or asset context): its
    ``meterline/run_instant`` tag, or for a run launched without one (the UI's launchpad, the
    schedule) the pinned clock's instant when METERLINE_NOW is set, else the moment the run was
    created: every step of one run sees the same instant."""
    tagged = context.run.tags.get(RUN_INSTANT_TAG)
    if tagged:
        return parse_instant(tagged)
    if os.environ.get(ENV):  # a pinned clock: its instant itself, the same in every step's process
        return parse_instant(os.environ[ENV])
    record = context.instance.get_run_record_by_id(context.run_id)
    created = record.create_timestamp if record is not None else None
    if created is None:
        return now()
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created.astimezone(UTC)
