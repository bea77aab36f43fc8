"""One ingest call: list and hash the files, stage each, then classify and write everything in
one transaction (rolled back whole on any error), with the run's report."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from orchestration.ingestion.landing.classify import add_rechecks, classify_staged, decide_outcomes
from orchestration.ingestion.landing.files import (
    EMPTY_FILE,
    ListedFile,
    NotRegular,
    hash_file,
    list_files,
)
from orchestration.ingestion.landing.model import (
    AGGREGATIONS,
    AlreadyLanded,
    FileResult,
    IngestError,
    IngestReport,
    Lookup,
    Relanded,
    Skipped,
    Unreadable,
    ordered_reasons,
)
from orchestration.ingestion.landing.sqltext import (
    FILES,
    LK_CUST,
    LK_METER,
    OUT,
    TEMP_TABLES,
)
from orchestration.ingestion.landing.stage import create_stage_table, stage_file, unstage
from orchestration.ingestion.landing.text import FileUnreadable, NothingToLand
from orchestration.ingestion.report import escape_name
from orchestration.lib.periods import PARTITION_START, next_period


def ingest(
    con: duckdb.DuckDBPyConnection,
    *,
    landing_dir: Path,
    paths: list[Path] | None,
    lookup: Lookup,
    run_id: str,
    now: datetime,
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Land event files (see the package docstring). ``con``: a read-write warehouse connection."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))")
    bad_aggs = sorted({a for a in lookup.meters.values() if a not in AGGREGATIONS})
    if bad_aggs:
        raise ValueError(f"unknown aggregation(s) in lookup: {bad_aggs}")
    say = progress or (lambda _msg: None)
    clock = time.monotonic()
    landing_dir = Path(landing_dir)
    report = IngestReport(ingest_run_id=run_id)

    if con.execute("select 1 from raw.ingest_runs where ingest_run_id = ?", [run_id]).fetchone():
        raise IngestError(f"ingest run id {run_id!r} was used before; give each run a new id")

    files = list_files(landing_dir, paths)
    landed_before = dict(con.execute(
        "select file_sha256, source_file from raw.landed_files").fetchall())

    staged: list[ListedFile] = []
    staged_hashes: dict[str, str] = {}
    try:
        create_stage_table(con)
        with tempfile.TemporaryDirectory(prefix="meterline-ingest-") as tmpdir:
            tmp = Path(tmpdir)
            for f in files:
                if f.error:
                    report.unreadable.append(Unreadable(f.source_file, f.error))
                    continue
                if f.skip:
                    report.skipped.append(Skipped(f.source_file, f.skip))
                    continue
                try:
                    f.sha256, f.size = hash_file(f.path, follow=f.follow)
                except NotRegular as e:  # changed since it was listed
                    report.skipped.append(Skipped(f.source_file, str(e)))
                    continue
                except OSError as e:
                    report.unreadable.append(Unreadable(
                        f.source_file, f"cannot read the file ({e.strerror or e})"))
                    continue
                if f.size == 0:  # emptied since it was listed
                    report.skipped.append(Skipped(f.source_file, EMPTY_FILE))
                    continue
                first = landed_before.get(f.sha256) or staged_hashes.get(f.sha256)
                if first is not None:
                    say(f"{escape_name(f.source_file)}: same content as "
                        f"{escape_name(first)}, skipped")
                    report.already_landed.append(AlreadyLanded(f.source_file, f.sha256, first))
                    continue
                idx = len(staged)
                say(f"reading {escape_name(f.source_file)}")
                try:
                    stage_file(con, f, idx, tmp)
                except NothingToLand as e:
                    report.skipped.append(Skipped(f.source_file, str(e)))
                    say(f"{escape_name(f.source_file)}: {e}")
                    continue
                except FileUnreadable as e:
                    unstage(con, idx)
                    report.unreadable.append(Unreadable(
                        f.source_file,
                        f"{e}. Nothing from this file was landed and it is not recorded as "
                        f"landed: fix or replace it, then run ingest again."))
                    say(f"{escape_name(f.source_file)}: unreadable: {escape_name(str(e))}")
                    continue
                staged.append(f)
                staged_hashes[f.sha256] = f.source_file

        _write(con, staged, lookup, run_id, now, report, say, clock)
    finally:
        for t in TEMP_TABLES:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists {t}")
    return report


def billable_range(now: datetime) -> tuple[datetime, datetime]:
    """[first instant of PARTITION_START's month, first instant of the month after ``now``'s)
    in UTC: the events a bill can reach as of ``now`` (``bill`` refuses earlier and future
    periods)."""
    first = datetime.fromisoformat(PARTITION_START + "-01T00:00:00+00:00")
    current = now.astimezone(UTC).date().replace(day=1)
    nxt = next_period(current)
    return first, datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def _out_of_range_months(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, int]:
    """Rows landed by this run (from files or re-checked) dated outside ``billable_range``,
    counted per UTC month: one aggregate over the run's outcome table."""
    lo, hi = billable_range(now)
    return dict(con.execute(f"""
        select strftime(timezone('UTC', event_at), '%Y-%m') as month, count(*)::bigint
        from {OUT}
        where outcome = 'landed' and (event_at < $lo or event_at >= $hi)
        group by month order by month
    """, {"lo": lo, "hi": hi}).fetchall())


def _write(
    con: duckdb.DuckDBPyConnection,
    staged: list[ListedFile],
    lookup: Lookup,
    run_id: str,
    now: datetime,
    report: IngestReport,
    say: Callable[[str], None],
    clock: float,
) -> None:
    con.execute(f"create or replace temp table {LK_CUST} as "
                f"select unnest(?::varchar[]) as customer_id", [sorted(lookup.customers)])
    con.execute(f"create or replace temp table {LK_METER} as "
                f"select unnest(?::varchar[]) as meter_id, unnest(?::varchar[]) as aggregation",
                [list(lookup.meters), list(lookup.meters.values())])
    con.execute(f"create or replace temp table {FILES} (file_idx integer, source_file varchar, "
                f"file_sha256 varchar, file_format varchar, size_bytes bigint)")
    if staged:
        con.executemany(f"insert into {FILES} values (?, ?, ?, ?, ?)",
                        [[i, f.source_file, f.sha256, f.fmt, f.size] for i, f in enumerate(staged)])

    say("validating")
    con.execute("begin transaction")
    try:
        classify_staged(con)
        add_rechecks(con)
        base_seq = con.execute("""
            select greatest((select coalesce(max(landing_seq), 0) from raw.usage_events),
                            (select coalesce(max(landing_seq), 0) from raw.quarantined_events))
        """).fetchone()[0]
        decide_outcomes(con, int(base_seq))
        recheck_changes = con.execute(f"""
            select count(*) from {OUT} o join raw.quarantined_events q on q.landing_seq = o.q_seq
            where o.phase = 0 and (o.outcome <> 'quarantined' or o.reason <> q.reason)
        """).fetchone()[0]

        params = {"run": run_id, "now": now}
        con.execute(f"""
            insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
                dimensions, source_file, row_number, file_sha256, ingest_run_id, landed_at,
                landing_seq, is_relanded)
            select o.event_id, o.customer_id, o.meter_id, o.value, o.event_at, o.dimensions,
                   coalesce(f.source_file, q.source_file), o.row_number,
                   coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz,
                   o.landing_seq, o.phase = 0
            from {OUT} o
            left join {FILES} f on f.file_idx = o.file_idx
            left join raw.quarantined_events q on o.phase = 0 and q.landing_seq = o.q_seq
            where o.outcome = 'landed'
            order by o.ord
        """, params)
        con.execute(f"""
            insert into raw.duplicate_events (source_file, row_number, event_id, file_sha256,
                ingest_run_id, landed_at, is_relanded)
            select coalesce(f.source_file, q.source_file), o.row_number, o.event_id,
                   coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz, o.phase = 0
            from {OUT} o
            left join {FILES} f on f.file_idx = o.file_idx
            left join raw.quarantined_events q on o.phase = 0 and q.landing_seq = o.q_seq
            where o.outcome = 'duplicate'
            order by o.ord
        """, params)
        con.execute(f"""
            insert into raw.quarantined_events (source_file, row_number, raw_row, reason,
                landed_at, resolved_at, file_sha256, ingest_run_id, landing_seq, event_id,
                customer_id, meter_id, value, event_at, dimensions)
            select f.source_file, o.row_number, o.raw_row, o.reason, $now::timestamptz, null,
                   f.file_sha256, $run, o.landing_seq, o.event_id, o.customer_id, o.meter_id,
                   o.value, o.event_at, o.dimensions
            from {OUT} o join {FILES} f on f.file_idx = o.file_idx
            where o.phase = 1 and o.outcome = 'quarantined'
            order by o.ord
        """, params)
        con.execute(f"""
            update raw.quarantined_events q set resolved_at = $now::timestamptz
            from {OUT} o
            where o.phase = 0 and q.landing_seq = o.q_seq and o.outcome <> 'quarantined'
        """, {"now": now})
        con.execute(f"""
            update raw.quarantined_events q set reason = o.reason
            from {OUT} o
            where o.phase = 0 and q.landing_seq = o.q_seq and o.outcome = 'quarantined'
              and q.reason <> o.reason
        """)

        counts = con.execute(f"""
            select file_idx, outcome, reason, count(*) from {OUT}
            where phase = 1 group by all
        """).fetchall()
        per_file = [FileResult(f.source_file, f.sha256, f.fmt or "") for f in staged]
        for idx, outcome, reason, n in counts:
            fr = per_file[idx]
            fr.read += n
            if outcome == "landed":
                fr.landed += n
            elif outcome == "duplicate":
                fr.duplicates += n
            else:
                fr.quarantined += n
                fr.quarantined_by_reason[reason] = fr.quarantined_by_reason.get(reason, 0) + n
        for fr in per_file:
            fr.quarantined_by_reason = ordered_reasons(fr.quarantined_by_reason)
        report.files = per_file

        rel = Relanded()
        for outcome, reason, n in con.execute(f"""
            select outcome, reason, count(*) from {OUT} where phase = 0 group by all
        """).fetchall():
            rel.checked += n
            if outcome == "landed":
                rel.landed += n
            elif outcome == "duplicate":
                rel.duplicates += n
            else:
                rel.still_quarantined += n
                rel.by_reason[reason] = rel.by_reason.get(reason, 0) + n
        rel.by_reason = ordered_reasons(rel.by_reason)
        report.relanded = rel
        report.out_of_range_months = _out_of_range_months(con, now)

        if per_file:
            con.executemany("""
                insert into raw.landed_files (file_sha256, source_file, file_format, size_bytes,
                    ingest_run_id, landed_at, rows_read, rows_landed, rows_duplicate,
                    rows_quarantined)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [[f.sha256, f.source_file, f.fmt, f.size, run_id, now, r.read, r.landed,
                   r.duplicates, r.quarantined] for f, r in zip(staged, per_file, strict=True)])
        # a run that finds nothing new and changes nothing writes nothing (not even its run row)
        changed = bool(per_file or report.unreadable or recheck_changes)
        finished = now + timedelta(seconds=time.monotonic() - clock)
        if changed:
            con.execute("""
                insert into raw.ingest_runs (ingest_run_id, started_at, finished_at,
                    files_landed, files_skipped, files_unreadable, rows_relanded)
                values (?, ?, ?, ?, ?, ?, ?)
            """, [run_id, now, finished, len(per_file), len(report.already_landed),
                  len(report.unreadable), rel.landed])
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    say(f"landed {report.totals()['landed']} rows from {len(staged)} files")
