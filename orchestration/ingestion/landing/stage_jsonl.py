"""Staging a JSON Lines file: its lines parsed by DuckDB's JSON functions (sql/stage_jsonl.sql)."""

from __future__ import annotations

import duckdb

from orchestration.ingestion.landing.sqltext import LINES, STAGE
from orchestration.ingestion.landing.text import stage_lines
from orchestration.lib.sql import read_sql


def stage_jsonl(con: duckdb.DuckDBPyConnection, file_idx: int, text_path: str,
                first_line: int = 1) -> None:
    """Stage the lines of ``text_path``, a piece of file ``file_idx`` that starts at line
    ``first_line`` (text.pieces)."""
    stage_lines(con, text_path, first_line)
    con.execute(read_sql(__file__, "stage_jsonl.sql", stage=STAGE, lines=LINES),
                {"file_idx": file_idx})
