"""Land new files as they appear in `$METERLINE_HOME/landing/`.

The sensor lists the folder (names, sizes, modification times; it never opens the warehouse) and
asks for an `ingest_job` run when that listing changed since its last tick. The run waits for
the `duckdb` pool like every writer, so a tick during a `bill` queues behind it."""

from __future__ import annotations

import hashlib

import dagster as dg

from orchestration.billing.jobs import ingest_job
from orchestration.lib import settings as settings_lib

ACCEPTED = (".jsonl", ".jsonl.gz", ".csv", ".parquet")


def landing_listing() -> list[str]:
    landing = settings_lib.load().landing_dir
    if not landing.is_dir():
        return []
    listing = []
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        if path.name.endswith(ACCEPTED):
            stat = path.stat()
            listing.append(f"{path.relative_to(landing)}|{stat.st_size}|{stat.st_mtime_ns}")
    return listing


@dg.sensor(job=ingest_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Ingest new or changed files in $METERLINE_HOME/landing.")
def landing_files(context: dg.SensorEvaluationContext):
    listing = landing_listing()
    if not listing:
        return dg.SkipReason("landing/ holds no event files")
    digest = hashlib.sha256("\n".join(listing).encode()).hexdigest()
    if digest == context.cursor:
        return dg.SkipReason("nothing new in landing/")
    context.update_cursor(digest)
    return dg.RunRequest(run_key=f"landing-{digest[:16]}",
                         run_config={"ops": {"landed_events": {"config": {"paths": []}}}},
                         tags={"meterline/source": "sensor"})
