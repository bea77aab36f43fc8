"""Landing assets: event files in `$METERLINE_HOME/landing/` -> `raw` tables."""


import uuid
from pathlib import Path

import dagster as dg

from orchestration.catalog.periods import ingest_lookup, lookup_problems
from orchestration.catalog.read import load_catalog
from orchestration.ingestion import landing
from orchestration.instance import DUCKDB_POOL
from orchestration.lib import clock
from orchestration.resources import MeterlineResource


class IngestConfig(dg.Config):
    paths: list[str] = []  # empty: everything new in landing/


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", "usage_events"], group_name="ingestion",
            description="Every landed usage event, exact values, UTC instants (CONTRACT.md s2).",
            skippable=True,  # not materialized by a run that found nothing new
        ),
        dg.AssetSpec(
            ["raw", "quarantined_events"], group_name="ingestion",
            description="Rejected rows with their reason; nothing is dropped silently.",
            skippable=True,
        ),
    ],
    pool=DUCKDB_POOL,
)
def landed_events(context: dg.AssetExecutionContext, config: IngestConfig,
                  meterline: MeterlineResource):
    cfg = meterline.settings()
    cfg.require_home()
    cfg.require_catalog()
    catalog = load_catalog(cfg.catalog_dir)
    problems = lookup_problems(catalog)
    if problems:
        raise dg.Failure(
            description="the catalog's customers or meters are invalid; fix them before "
            "ingesting:\n"
            + "\n".join(f"  - {p}" for p in problems),
            metadata={"problems": [str(p) for p in problems]},
        )
    customers, meters = ingest_lookup(catalog)
    paths = [Path(p) for p in config.paths] or None
    run_id = f"ing-{clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with meterline.writer() as con:
        report = landing.ingest(
            con, landing_dir=cfg.landing_dir, paths=paths,
            lookup=landing.Lookup(customers=customers, meters=meters),
            run_id=run_id, now=clock.now(), progress=context.log.info,
        )
    meterline.refresh_snapshot()
    doc = report.to_dict()
    totals = doc["totals"]
    meta = {
        "report": dg.MetadataValue.json(doc),
        "rows_read": totals["read"],
        "rows_landed": totals["landed"],
        "rows_duplicate": totals["duplicates"],
        "rows_quarantined": totals["quarantined"],
        "files_unreadable": len(doc["unreadable"]),
    }
    relanded = doc["relanded"]
    if not doc["files"] and not relanded["landed"] and not relanded["duplicates"]:
        # Nothing new was read (every file landed before, or none could be read): the raw
        # tables did not change, so the latest materialization keeps describing them. The
        # report is kept as an observation (the run's events, the asset's timeline).
        yield dg.AssetObservation(asset_key=["raw", "usage_events"],
                                  metadata={**meta, "nothing_new": True})
        return
    yield dg.MaterializeResult(asset_key=["raw", "usage_events"], metadata=meta)
    yield dg.MaterializeResult(
        asset_key=["raw", "quarantined_events"],
        metadata={"rows_quarantined": totals["quarantined"]},
    )
