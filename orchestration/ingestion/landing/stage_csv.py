"""Staging a CSV file (RFC 4180, "," and '"'): its lines grouped into records, the header matched
to the fields, each record's cells as stage rows (sql/csv_records.sql, sql/stage_csv.sql)."""

from __future__ import annotations

import duckdb

from orchestration.ingestion.landing.sqltext import LINES, RECS, STAGE
from orchestration.ingestion.landing.text import FileUnreadable, stage_lines
from orchestration.lib.sql import read_sql

FIELDS = ("event_id", "customer_id", "meter", "value", "timestamp", "dimensions")


def stage_csv(con: duckdb.DuckDBPyConnection, file_idx: int, text_path: str) -> None:
    stage_lines(con, text_path)
    # a line with an odd number of quotes opens or closes a field that spans lines
    spans = con.execute(f"""
        select count(*) from {LINES}
        where (strlen(line) - strlen(replace(line, '"', ''))) % 2 = 1
    """).fetchone()[0]
    records_of = "quoted_records" if spans else "line_records"
    con.execute(read_sql(__file__, "csv_records.sql", records=RECS, lines=LINES,
                         records_of=records_of))
    head = con.execute(
        f"select well_formed, fields from {RECS} where row_number = 0"
    ).fetchone()
    if head is None:
        raise FileUnreadable("the CSV file has no header row; the first line must name the "
                             "fields (event_id,customer_id,meter,value,timestamp,dimensions)")
    if not head[0]:
        raise FileUnreadable("the CSV header row is not valid CSV (check its quotes)")
    names = [n.strip() for n in head[1]]
    pos: dict[str, int | None] = dict.fromkeys(FIELDS)
    for i, n in enumerate(names):
        if n in FIELDS:
            if pos[n] is not None:
                raise FileUnreadable(f"the CSV header names the column {n!r} twice; keep one")
            pos[n] = i + 1  # DuckDB lists are 1-based
    con.execute(read_sql(__file__, "stage_csv.sql", stage=STAGE, records=RECS),
                {"file_idx": file_idx, "width": len(names), **pos})
