"""Billing jobs: the CLI's `bill`, the monthly schedule and the UI run them."""

from __future__ import annotations

import dagster as dg

from orchestration.instance import WRITER

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
