"""After the landing sensor's ingest lands events, refresh the open months' drafts.

`meterline ingest` refreshes the open months itself (orchestration/cli/commands.py); an ingest the
landing sensor or the UI launched is followed by this run-status sensor, which asks for a
`month_to_date_job` run per open month (lib/periods.py `open_months`: the previous month while it
is not published, and the current month). So a file dropped into landing/ shows in the explorers
within a minute, without a `bill`. The ingest job is handed in by definitions.py: billing never
imports ingestion."""

from __future__ import annotations

import dagster as dg

from orchestration.billing.jobs import month_to_date_job
from orchestration.billing.partitions import monthly_partitions
from orchestration.lib import clock, periods
from orchestration.lib import settings as settings_lib

SENSOR_NAME = "month_to_date_refresh"


def published_periods(snapshot) -> set:
    """The published months in the readers' snapshot (none without one)."""
    import duckdb

    from orchestration.lib import readers, warehouse

    if not snapshot.is_file():
        return set()
    try:
        con = warehouse.connect(snapshot, read_only=True)
    except duckdb.Error:
        return set()
    try:
        if not readers.table_exists(con, "billing", "published_periods"):
            return set()
        return {row[0] for row in con.execute(
            "select billing_period_start from billing.published_periods").fetchall()}
    finally:
        con.close()


def landed_events(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The ingest run materialized raw/usage_events (it read something new)."""
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return any(record.dagster_event.asset_key == dg.AssetKey(["raw", "usage_events"])
               for record in records if record.dagster_event is not None)


def month_to_date_after(ingest_job) -> dg.RunStatusSensorDefinition:
    """The sensor that follows each successful run of ``ingest_job`` not started by the CLI."""

    @dg.run_status_sensor(
        name=SENSOR_NAME, run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
        request_job=month_to_date_job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After an ingest the CLI did not start lands events, refresh the open "
        "months' drafts (month_to_date_job) for the explorers.")
    def month_to_date_refresh(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if run.tags.get("meterline/source") == "cli":
            return dg.SkipReason("the CLI's ingest refreshes the open months itself")
        cfg = settings_lib.load()
        if not cfg.ingest_refresh:
            return dg.SkipReason("METERLINE_INGEST_REFRESH=off")
        if not landed_events(context.instance, run.run_id):
            return dg.SkipReason(f"ingest run {run.run_id} landed nothing new")
        months = periods.open_months(clock.today(), published_periods(cfg.snapshot_path))
        keys = set(monthly_partitions.get_partition_keys())
        return [dg.RunRequest(run_key=f"mtd-{run.run_id}-{periods.period_key(month)}",
                              partition_key=periods.period_key(month),
                              tags={"meterline/source": "sensor",
                                    "meterline/after_ingest": run.run_id})
                for month in months if periods.period_key(month) in keys]

    return month_to_date_refresh
