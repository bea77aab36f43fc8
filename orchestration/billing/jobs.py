"""Jobs the CLI, the UI, the schedule and the sensor run."""

from __future__ import annotations

import dagster as dg

from orchestration.lib.runner import WRITER_TAG

# Every job writes the warehouse: the home's dagster.yaml lets one run with this tag be in
# progress at a time (orchestration/lib/runner.py says how the CLI takes its turn).
WRITER = {WRITER_TAG: "warehouse"}


ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    tags=WRITER,
    description="Land new event files from $METERLINE_HOME/landing into raw tables.",
)

billing_job = dg.define_asset_job(
    "billing_job",
    selection=dg.AssetSelection.groups("catalog", "reference", "staging", "intermediate", "marts"),
    tags=WRITER,
    description="Validate the catalog, then build meter usage, rated usage and draft invoices "
    "for one month (one dbt build).",
)

publish_job = dg.define_asset_job(
    "publish_job",
    selection=dg.AssetSelection.groups("catalog", "reference", "staging", "intermediate", "marts",
                                       "publishing"),
    tags=WRITER,
    description="Rebuild one month, run every reconciliation check in the same run, and publish "
    "it (or nothing). Refused inside the grace period and on any failed check.",
)
