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

month_to_date_job = dg.define_asset_job(
    "month_to_date_job",
    # the same models as billing_job, without the data tests and reconciliation checks: a draft
    # for the explorers is proved when it is billed or published, never here
    selection=dg.AssetSelection.groups("catalog", "reference", "staging", "intermediate",
                                       "marts").without_checks(),
    tags=WRITER,
    description="Refresh one open month's draft (usage, rated usage, invoice lines, the "
    "explorers' marts) after an ingest, so the explorers show month-to-date usage and the "
    "estimate without a bill. Runs after every ingest that landed events (the CLI's `ingest`, "
    "or the month_to_date_refresh sensor after the landing sensor's ingest).",
)
