"""Land new files as they appear in `$METERLINE_HOME/landing/`.

The sensor lists the folder (names, sizes, modification times) and asks for an `ingest_job` run
when that listing changed since its last tick and some listed file has content not landed yet:
it compares with `raw.landed_files` of the read-only snapshot
(`$METERLINE_HOME/snapshot/warehouse.duckdb`, hashing only files whose size matches a landed
file), never the live warehouse. So a UI start on a home whose files the CLI already landed asks
for nothing. Without a snapshot it asks; an ingest that finds nothing new records no
materialization. The run waits for the `duckdb` pool like every writer, so a tick during a
`bill` queues behind it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg

from orchestration.ingestion.jobs import ingest_job
from orchestration.lib import settings as settings_lib


def landing_listing() -> list[str]:
    """``relative path|size|mtime_ns`` of every file an ingest would read (the same rule as
    `ingest`: accepted suffixes in any case, regular files only, symlinks never followed)."""
    from orchestration.ingestion.landing import landable_files

    landing = settings_lib.load().landing_dir
    listing = []
    for path in landable_files(landing):
        stat = os.lstat(path)
        listing.append(f"{path.relative_to(landing)}|{stat.st_size}|{stat.st_mtime_ns}")
    return listing


def landed_in_snapshot(snapshot: Path) -> dict[int, set[str]] | None:
    """size in bytes -> the SHA-256 of every landed file of that size, from the snapshot's
    raw.landed_files (read-only); None when there is no readable snapshot."""
    import duckdb

    from orchestration.lib import warehouse

    if not snapshot.is_file():
        return None
    try:
        con = warehouse.connect(snapshot, read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute("select size_bytes, file_sha256 from raw.landed_files").fetchall()
    except duckdb.Error:  # a snapshot from before the first ingest
        return None
    finally:
        con.close()
    landed: dict[int, set[str]] = {}
    for size, sha in rows:
        landed.setdefault(size, set()).add(sha)
    return landed


def first_unlanded(listing: list[str]) -> str | None:
    """The first listed file whose content is not in raw.landed_files of the snapshot (all of
    them count as new without a snapshot); None when every one has landed."""
    cfg = settings_lib.load()
    landed = landed_in_snapshot(cfg.snapshot_path)
    if landed is None:
        return listing[0].split("|")[0] if listing else None
    for entry in listing:
        name, size, _ = entry.rsplit("|", 2)
        shas = landed.get(int(size))
        if not shas:
            return name
        digest = hashlib.sha256()
        with (cfg.landing_dir / name).open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() not in shas:
            return name
    return None


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
    try:
        new = first_unlanded(listing)
    except OSError:  # a file moved or removed while hashing: ask again next tick
        return dg.SkipReason("landing/ changed while it was read")
    context.update_cursor(digest)
    if new is None:
        return dg.SkipReason(f"every file in landing/ ({len(listing)}) has landed already")
    return dg.RunRequest(run_key=f"landing-{digest[:16]}",
                         run_config={"ops": {"landed_events": {"config": {"paths": []}}}},
                         tags={"meterline/source": "sensor"})
