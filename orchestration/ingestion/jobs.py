"""The ingestion job: the CLI's `ingest`, the landing sensor and the UI run it."""

from __future__ import annotations

import dagster as dg

from orchestration.instance import WRITER

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    tags=WRITER,
    description="Land new event files from $METERLINE_HOME/landing into raw tables.",
)
