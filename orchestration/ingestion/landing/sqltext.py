"""What the landing SQL is built from: the temp tables of one call and the quoting of a literal
or an identifier that SQL text embeds."""

from __future__ import annotations

# Temp objects live in the caller's connection for the duration of one call only.
_T = "_ml_ingest"
STAGE = f"{_T}_stage"
TYPED = f"{_T}_typed"  # rows of typed Parquet files, already in the candidates' shape
CAND = f"{_T}_cand"
OUT = f"{_T}_out"
FILES = f"{_T}_files"
LK_CUST = f"{_T}_customers"
LK_METER = f"{_T}_meters"
LINES = f"{_T}_lines"
RECS = f"{_T}_records"
TEMP_TABLES = (STAGE, TYPED, CAND, OUT, FILES, LK_CUST, LK_METER, LINES, RECS)


def ord_of(alias: str) -> str:
    """A candidate's landing order (re-checked rows by their landing_seq, then files in order,
    then rows): the key the outcome table and the candidates share."""
    return (f"case when {alias}.phase = 0 then {alias}.q_seq::hugeint "
            f"else (({alias}.file_idx + 1)::hugeint << 64) + {alias}.row_number end")


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'
