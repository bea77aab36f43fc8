"""Classification: the staged rows, and the quarantined rows that are re-checked, through every
rule by one CASE in contract order; then duplicates, and a landing_seq for every row written
(sql/classify.sql, sql/outcome.sql). Runs inside the write transaction."""

from __future__ import annotations

import duckdb

from orchestration.ingestion.landing.sqltext import (
    CAND,
    LK_CUST,
    LK_METER,
    OUT,
    STAGE,
    TYPED,
    ord_of,
)
from orchestration.lib.sql import read_sql


def classify_staged(con: duckdb.DuckDBPyConnection) -> None:
    """From the uniform stage rows to typed fields and one failure flag per rule; the rows of
    typed Parquet files join as they were staged."""
    con.execute(read_sql(__file__, "classify.sql", cand=CAND, stage=STAGE, typed=TYPED))


def add_rechecks(con: duckdb.DuckDBPyConnection) -> None:
    """The quarantined unknown_customer / unknown_meter rows join the candidates, in landing
    order."""
    con.execute(f"""
        insert into {CAND} by name
        select 0 as phase, null as file_idx, row_number, landing_seq as q_seq, raw_row,
               event_id, customer_id, meter_id, value, event_at, dimensions,
               false as f_malformed, false as f_missing, false as f_event_id,
               false as f_value, false as f_timestamp, false as f_dimensions
        from raw.quarantined_events
        where resolved_at is null and reason in ('unknown_customer', 'unknown_meter')
    """)


def decide_outcomes(con: duckdb.DuckDBPyConnection, base_seq: int) -> None:
    """Reasons in contract order, then duplicates, then a landing_seq for every row written.

    ``ord`` is the run's landing order: re-checked rows by their original landing_seq, then files
    in order, then rows. It is computed, not sorted, and the duplicate step uses a hash aggregate
    and hash joins on narrow columns, so a large run needs one narrow sort (for landing_seq).
    """
    con.execute(read_sql(__file__, "outcome.sql", out=OUT, cand=CAND, meters=LK_METER,
                         customers=LK_CUST, ord_c=ord_of("c")), {"base_seq": base_seq})
