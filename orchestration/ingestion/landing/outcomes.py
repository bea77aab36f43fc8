"""The writes of one batch (inside its transaction): every row not in EXC lands, from the
candidates and from each typed Parquet file read again; duplicates and quarantine rows come from
the few rows read whole (WIDE); re-checked quarantine rows are resolved or get their new reason."""

from __future__ import annotations

from datetime import datetime

import duckdb

from orchestration.ingestion.landing.files import ListedFile
from orchestration.ingestion.landing.sqltext import CAND, EXC, FILES, WIDE
from orchestration.ingestion.landing.stage_parquet import TypedSource


def write_outcomes(con: duckdb.DuckDBPyConnection, *, run_id: str, now: datetime,
                   run_base: int, typed: list[TypedSource],
                   files: dict[int, ListedFile]) -> None:
    """The batch's rows where their outcome puts them: every row not in EXC lands (from the
    candidates, and from each typed Parquet file read again); duplicates and quarantine rows
    come from the few rows read whole (WIDE). ``run_base``: the highest landing_seq before the
    run (a row's landing_seq is it plus the row's position)."""
    params = {"run": run_id, "now": now, "base": run_base}
    origin = f"""left join {FILES} f on f.file_idx = c.file_idx
        left join raw.quarantined_events q on c.phase = 0 and q.landing_seq = c.q_seq"""
    con.execute(f"""
        insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
            dimensions, source_file, row_number, file_sha256, ingest_run_id, landed_at,
            landing_seq, is_relanded)
        select c.event_id, c.customer_id, c.meter_id, c.value, c.event_at, c.dimensions,
               coalesce(f.source_file, q.source_file), c.row_number,
               coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz,
               $base + c.pos, c.phase = 0
        from {CAND} c anti join {EXC} e on e.pos = c.pos
        {origin}
    """, params)
    for t in typed:
        col = t.columns(valid=True)  # only rows not in EXC: they pass every rule
        f = files[t.file_idx]
        con.execute(f"""
            insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
                dimensions, source_file, row_number, file_sha256, ingest_run_id, landed_at,
                landing_seq, is_relanded)
            select {col['event_id']}, {col['customer_id']}, {col['meter_id']},
                   {col['value']}, {col['event_at']}, {col['dimensions']}, $source,
                   p.file_row_number + 1, $sha, $run, $now::timestamptz, $base + {t.pos()},
                   false
            from {t.src} p anti join {EXC} e on e.pos = {t.pos()}
        """, {**params, "source": f.source_file, "sha": f.sha256})
    con.execute(f"""
        insert into raw.duplicate_events (source_file, row_number, event_id, file_sha256,
            ingest_run_id, landed_at, is_relanded)
        select coalesce(f.source_file, q.source_file), c.row_number, c.event_id,
               coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz, c.phase = 0
        from {EXC} e join {WIDE} c on c.pos = e.pos
        {origin}
        where e.outcome = 'duplicate'
        order by e.pos
    """, {"run": run_id, "now": now})
    con.execute(f"""
        insert into raw.quarantined_events (source_file, row_number, raw_row, reason,
            landed_at, resolved_at, file_sha256, ingest_run_id, landing_seq, event_id,
            customer_id, meter_id, value, event_at, dimensions)
        select f.source_file, c.row_number, c.raw_row, e.reason, $now::timestamptz, null,
               f.file_sha256, $run, $base + e.pos, c.event_id, c.customer_id, c.meter_id,
               c.value, c.event_at, c.dimensions
        from {EXC} e join {WIDE} c on c.pos = e.pos
        join {FILES} f on f.file_idx = c.file_idx
        where e.phase = 1 and e.outcome = 'quarantined'
        order by e.pos
    """, params)
    con.execute(f"""
        update raw.quarantined_events q set resolved_at = $now::timestamptz
        from (select c.q_seq from {CAND} c left join {EXC} e on e.pos = c.pos
              where c.phase = 0 and (e.pos is null or e.outcome <> 'quarantined')) r
        where q.landing_seq = r.q_seq
    """, {"now": now})
    con.execute(f"""
        update raw.quarantined_events q set reason = r.reason
        from (select c.q_seq, e.reason from {EXC} e join {WIDE} c on c.pos = e.pos
              where e.phase = 0 and e.outcome = 'quarantined') r
        where q.landing_seq = r.q_seq and q.reason <> r.reason
    """)
