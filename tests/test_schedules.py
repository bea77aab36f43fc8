"""The monthly close schedule and the landing sensor, evaluated for given dates and folders."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from orchestration.billing.project import ensure_manifest

ensure_manifest()

from orchestration.billing.schedules import monthly_close  # noqa: E402
from orchestration.ingestion.sensors import landing_files  # noqa: E402


def _tick(when: datetime):
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        return monthly_close(context)


@pytest.mark.parametrize("when, grace, partition", [
    (datetime(2026, 11, 2, 2, tzinfo=UTC), "24", "2026-10"),   # the 2nd, 02:00: October closes
    (datetime(2027, 1, 2, 2, tzinfo=UTC), "24", "2026-12"),    # across a year
    (datetime(2026, 11, 4, 2, tzinfo=UTC), "72", "2026-10"),   # 3 days of grace: the 4th
])
def test_schedule_asks_for_the_previous_month_once_grace_passed(monkeypatch, when, grace,
                                                                 partition):
    monkeypatch.setenv("METERLINE_GRACE_HOURS", grace)
    request = _tick(when)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == partition and request.run_key == f"publish-{partition}"


@pytest.mark.parametrize("when, grace", [
    (datetime(2026, 11, 1, 2, tzinfo=UTC), "24"),   # the 1st: October's grace runs to the 2nd
    (datetime(2026, 11, 3, 2, tzinfo=UTC), "72"),
])
def test_schedule_skips_inside_the_grace_period(monkeypatch, when, grace):
    monkeypatch.setenv("METERLINE_GRACE_HOURS", grace)
    assert isinstance(_tick(when), dg.SkipReason)


def test_sensor_requests_an_ingest_only_when_landing_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    (tmp_path / "landing").mkdir()
    with dg.build_sensor_context() as context:
        assert isinstance(landing_files(context), dg.SkipReason)
    (tmp_path / "landing" / "a.jsonl").write_text("{}\n")
    (tmp_path / "landing" / "notes.txt").write_text("not events")
    with dg.build_sensor_context() as context:
        first = landing_files(context)
        assert isinstance(first, dg.RunRequest)
        cursor = context.cursor
    with dg.build_sensor_context(cursor=cursor) as context:
        assert isinstance(landing_files(context), dg.SkipReason)
    (tmp_path / "landing" / "b.csv").write_text("event_id\n")
    with dg.build_sensor_context(cursor=cursor) as context:
        second = landing_files(context)
        assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_schedule_skips_a_month_before_the_uis_first_partition():
    """Under `meterline ui` the partitions may start later (METERLINE_FIRST_PERIOD, read when the
    definitions load, so in a process of its own): the tick skips, naming the CLI command."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("from datetime import UTC, datetime\n"
            "import dagster as dg\n"
            "from orchestration.billing.project import ensure_manifest; ensure_manifest()\n"
            "from orchestration.billing.schedules import monthly_close\n"
            "with dg.build_schedule_context(scheduled_execution_time="
            "datetime(2026, 11, 2, 2, tzinfo=UTC)) as context:\n"
            "    result = monthly_close(context)\n"
            "print(type(result).__name__, getattr(result, 'skip_message', ''))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                          env={**env, "METERLINE_FIRST_PERIOD": "2026-11"}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.stdout.startswith("SkipReason 2026-10 is before 2026-11"), done.stderr[-2000:]
    assert "meterline bill --period 2026-10 --publish" in done.stdout
