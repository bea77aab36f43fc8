"""Classification: the staged rows, and the quarantined rows that are re-checked, through every
rule by one CASE in contract order (sql/classify.sql, ``sqltext.reason_case``) into the batch's
narrow KEYS table; then duplicates, decided on the few rows that need it (sql/contested.sql,
sql/exceptions.sql). Runs inside the write transaction."""

from __future__ import annotations

import duckdb

from orchestration.ingestion.landing.model import MAX_EPOCH_MS, MIN_EPOCH_MS
from orchestration.ingestion.landing.sqltext import (
    CAND,
    CONTESTED,
    EXC,
    FILES,
    KEYS,
    LK_CUST,
    LK_METER,
    NEED,
    SEEN,
    STAGE,
    WIDE,
    keys_insert,
    reason_case,
)
from orchestration.ingestion.landing.stage_parquet import TypedSource
from orchestration.lib.sql import read_sql

#: the candidates' fields, in the order of CAND (classify.sql) and WIDE
FIELDS = ("pos", "phase", "file_idx", "row_number", "q_seq", "raw_row", "event_id",
          "customer_id", "meter_id", "value", "event_at", "dimensions")


def classify_staged(con: duckdb.DuckDBPyConnection) -> None:
    """From the uniform stage rows to typed fields and one failure flag per rule, placed in the
    run's landing order by their file's base."""
    con.execute(read_sql(__file__, "classify.sql", cand=CAND, stage=STAGE, files=FILES),
                {"min_ms": MIN_EPOCH_MS, "max_ms": MAX_EPOCH_MS})


#: the quarantine rows every run re-checks
RECHECKED = ("from raw.quarantined_events where resolved_at is null "
             "and reason in ('unknown_customer', 'unknown_meter')")


def add_rechecks(con: duckdb.DuckDBPyConnection) -> None:
    """The quarantined unknown_customer / unknown_meter rows join the candidates, first in
    landing order (positions 1..n, by their landing_seq)."""
    con.execute(f"""
        insert into {CAND} by name
        select row_number() over (order by landing_seq) as pos,
               0 as phase, null as file_idx, row_number, landing_seq as q_seq, raw_row,
               event_id, customer_id, meter_id, value, event_at, dimensions,
               false as f_malformed, false as f_missing, false as f_event_id,
               false as f_value, false as f_timestamp, false as f_dimensions
        {RECHECKED}
    """)


def recheck_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many quarantined rows a run re-checks (they take the first positions)."""
    return con.execute(f"select count(*) {RECHECKED}").fetchone()[0]


def keys_of_candidates(con: duckdb.DuckDBPyConnection, lo: object, hi: object) -> None:
    """The candidates' rows into KEYS, with the first rule each breaks."""
    reason = reason_case(malformed="c.f_malformed", missing="c.f_missing",
                         event_id="c.f_event_id", value_flag="c.f_value", value="c.value",
                         timestamp="c.f_timestamp", dimensions="c.f_dimensions")
    con.execute(keys_insert(f"""
        select c.pos, c.phase, c.file_idx, c.event_id, c.event_at, {reason} as reason
        from {CAND} c
        left join {LK_METER} m on m.meter_id = c.meter_id
        left join {LK_CUST} k on k.customer_id = c.customer_id
    """), {"lo": lo, "hi": hi})


def decide_outcomes(con: duckdb.DuckDBPyConnection, typed: list[TypedSource]) -> None:
    """EXC: every row of the batch that does not simply land, with its outcome and reason.

    Narrow and set-based: one hash aggregate over KEYS' ids, one semi join with the landed
    events on the id, and only the rows that break a rule or share an id (about 1%) are read
    whole: from the candidates, or again from their typed Parquet file (``raw_row`` is rendered
    for those rows only). WIDE also keeps a candidate's ``ts_low_epoch`` (classify.sql; NULL for
    typed rows, whose timestamp is an instant, and for re-checked rows)."""
    con.execute(read_sql(__file__, "contested.sql", keys=KEYS, seen=SEEN, contested=CONTESTED,
                         need=NEED))
    fields = ", ".join(FIELDS)
    con.execute(f"""
        create or replace temp table {WIDE} as
        select {', '.join('c.' + f for f in FIELDS)}, n.reason, c.ts_low_epoch
        from {CAND} c join {NEED} n on n.pos = c.pos
    """)
    for t in typed:
        col = t.columns()
        exprs = {"pos": t.pos(), "phase": "1", "file_idx": str(t.file_idx),
                 "row_number": "p.file_row_number + 1", "q_seq": "null::bigint", **col}
        con.execute(f"""
            insert into {WIDE} ({fields}, reason)
            select {', '.join(exprs[f] for f in FIELDS)}, n.reason
            from {t.src} p join {NEED} n on n.pos = {t.pos()}
        """)
    con.execute(read_sql(__file__, "exceptions.sql", exc=EXC, wide=WIDE, need=NEED,
                         seen=SEEN, contested=CONTESTED))


def epoch_seconds(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int, int, int]]:
    """Per file of the batch, its quarantined rows whose timestamp is an epoch integer below
    10^12 (epoch seconds, most likely): (file_idx, how many, the first one's row_number, its
    integer). Read from WIDE, the few rows read whole: never from the rows that land."""
    return con.execute(f"""
        select file_idx, count(*), arg_min(row_number, pos), arg_min(ts_low_epoch, pos)
        from {WIDE}
        where phase = 1 and reason is not null and ts_low_epoch is not null
        group by file_idx order by file_idx
    """).fetchall()
