"""Jobs the CLI, the UI and (later) schedules run."""

from __future__ import annotations

import dagster as dg


ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Land new event files from $METERLINE_HOME/landing into raw tables.",
)

billing_job = dg.define_asset_job(
    "billing_job",
    selection=dg.AssetSelection.groups("catalog", "reference", "staging", "intermediate", "marts"),
    description="Validate the catalog, then build meter usage, rated usage and draft invoices "
    "for one month (one dbt build).",
)

publish_job = dg.define_asset_job(
    "publish_job",
    selection=dg.AssetSelection.groups("catalog", "reference", "staging", "intermediate", "marts",
                                       "publishing"),
    description="Rebuild one month, run every reconciliation check in the same run, and publish "
    "it (or nothing). Refused inside the grace period and on any failed check.",
)
