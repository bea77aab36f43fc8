"""Meterline's Dagster code location: wiring only."""

from __future__ import annotations

import dagster as dg

from orchestration.billing.assets import billing_models, price_book, publish_invoices
from orchestration.billing.checks import reconciliation
from orchestration.billing.jobs import billing_job, month_to_date_job, publish_job
from orchestration.billing.project import (
    MeterlineDbtCliResource,
    dbt_project,
    dbt_run_executable,
)
from orchestration.billing.schedules import monthly_close
from orchestration.billing.sensors import month_to_date_after
from orchestration.ingestion.assets import landed_events
from orchestration.ingestion.jobs import ingest_job
from orchestration.ingestion.sensors import landing_files
from orchestration.progress import meterline_progress
from orchestration.resources import MeterlineResource

defs = dg.Definitions(
    assets=[landed_events, price_book, billing_models, publish_invoices],
    asset_checks=[reconciliation],
    jobs=[ingest_job, billing_job, publish_job, month_to_date_job],
    schedules=[monthly_close],
    sensors=[landing_files, month_to_date_after(ingest_job)],
    resources={
        "dbt": MeterlineDbtCliResource(project_dir=dbt_project,
                                       profiles_dir=str(dbt_project.project_dir),
                                       dbt_executable=dbt_run_executable()),
        "meterline": MeterlineResource(),
    },
    loggers={"meterline_progress": meterline_progress, "console": dg.colored_console_logger},
    # One writer on the DuckDB file: steps run in this process, one at a time.
    executor=dg.in_process_executor,
)
