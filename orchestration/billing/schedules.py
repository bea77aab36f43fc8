"""The monthly close: publish the previous month at the first 02:00 UTC after its grace period.

The schedule ticks every day at 02:00 UTC and asks for the previous month's `publish_job` run
once that month's grace period (METERLINE_GRACE_HOURS, read at each tick) has passed: with the
default 24 hours that is 02:00 UTC on the 2nd. The run key is the month, so a month is asked for
once; publishing a published month again would do nothing anyway."""

from __future__ import annotations

from datetime import UTC

import dagster as dg

from orchestration.billing.jobs import publish_job
from orchestration.lib import periods
from orchestration.lib import settings as settings_lib


def month_to_close(scheduled_at) -> tuple[str, bool]:
    """(the partition key of the month before the tick's month, has its grace passed)."""
    at = scheduled_at.astimezone(UTC)
    previous = periods.previous_period(at.date().replace(day=1))
    grace = settings_lib.load().grace_hours
    return periods.period_key(previous), at >= periods.grace_ends_at(previous, grace)


@dg.schedule(job=publish_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Publish the previous month at the first 02:00 UTC after its grace "
             "period (the 2nd with the default 24 h).")
def monthly_close(context: dg.ScheduleEvaluationContext):
    from orchestration.billing.partitions import FIRST_PERIOD_ENV, monthly_partitions

    key, ready = month_to_close(context.scheduled_execution_time)
    if not ready:
        return dg.SkipReason(f"{key} is still in its grace period")
    first = monthly_partitions.get_first_partition_key()
    if first is None or key < first:  # the UI's partitions start later (METERLINE_FIRST_PERIOD)
        return dg.SkipReason(
            f"{key} is before {first}, the first partition of this code location "
            f"({FIRST_PERIOD_ENV}): publish it with meterline bill --period {key} --publish, "
            f"or restart meterline ui once its events have landed")
    return dg.RunRequest(run_key=f"publish-{key}", partition_key=key,
                         tags={"meterline/source": "schedule"})
