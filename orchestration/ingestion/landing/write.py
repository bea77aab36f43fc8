"""One ingest call: list and hash the files, stage them, and classify and write them in batches
of about LAND_BATCH_ROWS staged rows (whole files, in landing order), each batch one transaction
(rolled back whole on any error; earlier batches stay landed), with the run's report."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from orchestration.ingestion.landing.classify import (
    add_rechecks,
    classify_staged,
    decide_outcomes,
    epoch_seconds,
    keys_of_candidates,
    recheck_count,
)
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
    epoch_seconds_note,
    memory_exhausted,
    ordered_reasons,
)
from orchestration.ingestion.landing.outcomes import write_outcomes
from orchestration.ingestion.landing.sqltext import (
    BATCH_TABLES,
    CAND,
    EXC,
    FILES,
    KEYS,
    LK_CUST,
    LK_METER,
    STAGE,
    TEMP_TABLES,
)
from orchestration.ingestion.landing.stage import create_stage_table, stage_file, unstage
from orchestration.ingestion.landing.stage_parquet import TypedSource
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
    batch = _Batch(con, lookup, run_id, now, report, say)
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
                    typed = stage_file(con, f, idx, tmp, base=batch.next_base,
                                       billable=batch.billable)
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
                batch.add(idx, f, typed)
                if batch.rows_staged() >= LAND_BATCH_ROWS:
                    batch.land(clock)
                    say(f"landed the rows of {len(staged)} file(s) so far")
            # the last files, the quarantine re-check of a run without files, and the run's row
            # with every file it found unreadable or landed before (typed Parquet files are read
            # again while their batch is written: inside the folder of their links)
            batch.land(clock)
        batch.finish()
    finally:
        for t in TEMP_TABLES:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists {t}")
    say(f"landed {report.totals()['landed']} rows from {len(staged)} files")
    return report


def billable_range(now: datetime) -> tuple[datetime, datetime]:
    """[first instant of PARTITION_START's month, first instant of the month after ``now``'s)
    in UTC: the events a bill can reach as of ``now`` (``bill`` refuses earlier and future
    periods)."""
    first = datetime.fromisoformat(PARTITION_START + "-01T00:00:00+00:00")
    current = now.astimezone(UTC).date().replace(day=1)
    nxt = next_period(current)
    return first, datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def _out_of_range_months(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows the batch landed (from files or re-checked) dated outside ``billable_range``,
    counted per UTC month: KEYS holds the month of every valid row dated there."""
    return dict(con.execute(f"""
        select k.month, count(*)::bigint
        from {KEYS} k anti join {EXC} e on e.pos = k.pos
        where k.month is not null
        group by k.month order by k.month
    """).fetchall())


#: Staged rows after which the files staged so far are classified and written before the next
#: file is read, in a transaction of their own: the run's temp tables hold one batch, not every
#: file. A file is never split (a file lands whole or not at all).
LAND_BATCH_ROWS = 4_000_000


class _Batch:
    """The files staged since the last write, and what the run has written so far.

    Batches are landed in landing order (the quarantine re-check first, then files in order),
    each in its own transaction: a batch's duplicates are decided against every event landed
    before, this run's earlier batches included, so the outcome is the one a single batch of all
    the files would give, row for row.

    Every row of the run has a position in its landing order: the re-checked rows 1..n (by their
    landing_seq), then each file's rows at its base plus their row_number (a file's base is the
    previous file's base plus its highest row_number). A row written gets landing_seq = the
    highest landing_seq before the run + its position: increasing in landing order, the same
    whatever the batches, computed without sorting; the positions of duplicates (and of
    re-checked rows that stay quarantined) are left unused."""

    def __init__(self, con: duckdb.DuckDBPyConnection, lookup: Lookup, run_id: str,
                 now: datetime, report: IngestReport, say: Callable[[str], None]):
        self.con, self.run_id, self.now, self.report, self.say = con, run_id, now, report, say
        self.billable = billable_range(now)
        self.pending: list[int] = []
        self.typed: list[TypedSource] = []
        self.landed_once = False
        self.per_file: dict[int, FileResult] = {}
        self.rel = Relanded()
        self.recheck_changes = 0
        self.out_of_range: dict[str, int] = {}
        self.files: dict[int, ListedFile] = {}
        self.run_recorded = False
        self.run_base: int | None = None  # the highest landing_seq before the run
        self.next_base = recheck_count(con)  # the first file's rows follow the re-checked ones
        con.execute(f"create or replace temp table {LK_CUST} as "
                    f"select unnest(?::varchar[]) as customer_id", [sorted(lookup.customers)])
        con.execute(f"create or replace temp table {LK_METER} as "
                    f"select unnest(?::varchar[]) as meter_id, unnest(?::varchar[]) as aggregation",
                    [list(lookup.meters), list(lookup.meters.values())])
        con.execute(f"create or replace temp table {FILES} (file_idx integer, source_file varchar, "
                    f"file_sha256 varchar, file_format varchar, size_bytes bigint, base bigint)")

    def add(self, idx: int, f: ListedFile, typed: TypedSource | None) -> None:
        """A staged file joins the batch at the next base (typed: its rows are in KEYS)."""
        con, base = self.con, self.next_base
        if typed is not None:
            span = typed.rows
            self.typed.append(typed)
        else:
            span = con.execute(f"select coalesce(max(row_number), 0) from {STAGE} "
                               f"where file_idx = ?", [idx]).fetchone()[0]
        con.execute(f"insert into {FILES} values (?, ?, ?, ?, ?, ?)",
                    [idx, f.source_file, f.sha256, f.fmt, f.size, base])
        self.next_base = base + span
        self.per_file[idx] = FileResult(f.source_file, f.sha256, f.fmt or "")
        self.files[idx] = f
        self.pending.append(idx)

    def rows_staged(self) -> int:
        return (self.con.execute(f"select count(*) from {STAGE}").fetchone()[0]
                + sum(t.rows for t in self.typed))

    def land(self, clock: float) -> None:
        """In one transaction: classify and write the staged files (and, in the first batch, the
        re-checked quarantine rows), record them and the run; then empty the stage."""
        con = self.con
        self.say("validating")
        con.execute("begin transaction")
        try:
            self._land(clock)
            con.execute("commit")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("rollback")
            if isinstance(exc, duckdb.OutOfMemoryException):
                names = ", ".join(self.files[i].source_file for i in self.pending) or "none"
                raise memory_exhausted(
                    con, exc, f"{names}: ran out of memory while landing this batch of files",
                    "Nothing of this batch was landed (files recorded in raw.landed_files stay "
                    "landed)", "the files") from None
            raise
        for table in (STAGE, KEYS):
            con.execute(f"delete from {table}")
        for table in BATCH_TABLES:
            if table not in (STAGE, KEYS):
                con.execute(f"drop table if exists {table}")
        self.pending, self.typed = [], []
        self.landed_once = True

    def _land(self, clock: float) -> None:
        con = self.con
        classify_staged(con)
        if not self.landed_once:
            add_rechecks(con)
            self.run_base = int(con.execute("""
                select greatest((select coalesce(max(landing_seq), 0) from raw.usage_events),
                                (select coalesce(max(landing_seq), 0) from raw.quarantined_events))
            """).fetchone()[0])
        keys_of_candidates(con, *self.billable)
        decide_outcomes(con, self.typed)
        if not self.landed_once:
            self.recheck_changes = con.execute(f"""
                select count(*) from {CAND} c
                join raw.quarantined_events q on q.landing_seq = c.q_seq
                left join {EXC} e on e.pos = c.pos
                where c.phase = 0
                  and (e.pos is null or e.outcome <> 'quarantined' or e.reason <> q.reason)
            """).fetchone()[0]
        self._write_outcomes()
        self._count()
        self._record(clock)

    def _write_outcomes(self) -> None:
        write_outcomes(self.con, run_id=self.run_id, now=self.now, run_base=self.run_base or 0,
                       typed=self.typed, files=self.files)

    def _count(self) -> None:
        con = self.con
        for idx, n in con.execute(f"""
            select file_idx, count(*) from {KEYS} where phase = 1 group by all
        """).fetchall():
            fr = self.per_file[idx]
            fr.read += n
            fr.landed += n
        for idx, outcome, reason, n in con.execute(f"""
            select file_idx, outcome, reason, count(*) from {EXC}
            where phase = 1 group by all
        """).fetchall():
            fr = self.per_file[idx]
            fr.landed -= n
            if outcome == "duplicate":
                fr.duplicates += n
            else:
                fr.quarantined += n
                fr.quarantined_by_reason[reason] = fr.quarantined_by_reason.get(reason, 0) + n
        for idx, n, row_number, epoch in epoch_seconds(con):
            self.per_file[idx].notes.append(epoch_seconds_note(n, row_number, epoch))
        rel = self.rel
        checked = con.execute(f"select count(*) from {KEYS} where phase = 0").fetchone()[0]
        rel.checked += checked
        rel.landed += checked
        for outcome, reason, n in con.execute(f"""
            select outcome, reason, count(*) from {EXC} where phase = 0 group by all
        """).fetchall():
            rel.landed -= n
            if outcome == "duplicate":
                rel.duplicates += n
            else:
                rel.still_quarantined += n
                rel.by_reason[reason] = rel.by_reason.get(reason, 0) + n
        for month, n in _out_of_range_months(con).items():
            self.out_of_range[month] = self.out_of_range.get(month, 0) + n

    def _record(self, clock: float) -> None:
        """In the batch's transaction: its files in raw.landed_files, and the run's row as it
        stands (a run that finds nothing new and changes nothing writes nothing, not even its
        run row)."""
        con, report, run_id, now = self.con, self.report, self.run_id, self.now
        if self.pending:
            con.executemany("""
                insert into raw.landed_files (file_sha256, source_file, file_format, size_bytes,
                    ingest_run_id, landed_at, rows_read, rows_landed, rows_duplicate,
                    rows_quarantined)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [[f.sha256, f.source_file, f.fmt, f.size, run_id, now, r.read, r.landed,
                   r.duplicates, r.quarantined]
                  for idx in self.pending for f, r in [(self.files[idx], self.per_file[idx])]])
        if not (self.per_file or report.unreadable or self.recheck_changes):
            return
        row = [now + timedelta(seconds=time.monotonic() - clock), len(self.per_file),
               len(report.already_landed), len(report.unreadable), self.rel.landed, run_id]
        if self.run_recorded:
            con.execute("""
                update raw.ingest_runs set finished_at = ?, files_landed = ?, files_skipped = ?,
                    files_unreadable = ?, rows_relanded = ?
                where ingest_run_id = ?
            """, row)
        else:
            con.execute("""
                insert into raw.ingest_runs (finished_at, files_landed, files_skipped,
                    files_unreadable, rows_relanded, ingest_run_id, started_at)
                values (?, ?, ?, ?, ?, ?, ?)
            """, [*row, now])
            self.run_recorded = True

    def finish(self) -> None:
        """The run's report, from what every batch counted."""
        report = self.report
        per_file = [self.per_file[idx] for idx in sorted(self.per_file)]
        for fr in per_file:
            fr.quarantined_by_reason = ordered_reasons(fr.quarantined_by_reason)
        report.files = per_file
        self.rel.by_reason = ordered_reasons(self.rel.by_reason)
        report.relanded = self.rel
        report.out_of_range_months = dict(sorted(self.out_of_range.items()))
