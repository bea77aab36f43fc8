"""Staging: one ``INSERT ... SELECT`` per file turns its rows into the uniform shape of the stage
table (sql/stage_table.sql); a file that cannot be read says why in one line."""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.ingestion.landing.files import ListedFile
from orchestration.ingestion.landing.model import memory_exhausted
from orchestration.ingestion.landing.sqltext import KEYS, LINES, RECS, STAGE
from orchestration.ingestion.landing.stage_csv import stage_csv
from orchestration.ingestion.landing.stage_jsonl import stage_jsonl
from orchestration.ingestion.landing.stage_parquet import TypedSource, stage_parquet
from orchestration.ingestion.landing.text import FileUnreadable, first_invalid_utf8, pieces
from orchestration.lib.sql import read_sql


def create_stage_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(read_sql(__file__, "stage_table.sql", stage=STAGE, keys=KEYS))


def unstage(con: duckdb.DuckDBPyConnection, idx: int) -> None:
    """Forget what file ``idx`` staged (it turned out unreadable)."""
    for table in (STAGE, KEYS):
        con.execute(f"delete from {table} where file_idx = ?", [idx])


def _safe_path(path: Path, tmp: Path, idx: int | str, ext: str) -> str:
    """A path DuckDB reads literally (it expands *, ? and [ as globs): a symlink if needed."""
    s = str(path.resolve())
    if any(ch in s for ch in "*?[]{}'\\"):
        link = tmp / f"f{idx}.{ext}"
        link.symlink_to(path.resolve())
        return str(link)
    return s


def stage_file(con: duckdb.DuckDBPyConnection, f: ListedFile, idx: int, tmp: Path, *,
               base: int, billable: tuple[object, object]) -> TypedSource | None:
    """Stage file ``idx``: a typed Parquet file into KEYS (its source returned: ``base`` places
    its rows in the run's landing order), any other into the stage table (None)."""
    text: Path | None = None
    try:
        if f.fmt == "parquet":
            return stage_parquet(con, idx, _safe_path(f.path, tmp, idx, "parquet"), base,
                                 *billable)
        if f.fmt == "csv":
            text = f.path
            stage_csv(con, idx, _safe_path(f.path, tmp, idx, "csv"))
        else:
            text = f.path
            for number, (piece, first_line) in enumerate(
                    pieces(f.path, tmp, idx, gz=f.fmt == "jsonl.gz")):
                stage_jsonl(con, idx, _safe_path(piece, tmp, f"{idx}_{number}", "jsonl"),
                            first_line)
        return None
    except duckdb.OutOfMemoryException as e:
        raise memory_exhausted(
            con, e, f"{f.source_file}: ran out of memory while reading it",
            "Nothing from it or the files after it was landed (files recorded in "
            "raw.landed_files before it stay landed)", "the file") from None
    except duckdb.Error as e:
        raise FileUnreadable(_read_error(f, e, text)) from None
    finally:
        con.execute(f"drop table if exists {LINES}")
        con.execute(f"drop table if exists {RECS}")


def _read_error(f: ListedFile, e: duckdb.Error, text: Path | None) -> str:
    msg = str(e).strip()
    if "UTF-8" in msg or "utf-8" in msg.lower():
        gz = f.fmt == "jsonl.gz"
        where = first_invalid_utf8(text, gz=gz) if text is not None else None
        if where is None:
            return f"{f.source_file} is not valid UTF-8 text; re-encode the file as UTF-8"
        line, offset, byte = where
        of = " of the decompressed content" if gz else ""
        return (f"{f.source_file} is not valid UTF-8 text: the first invalid byte (0x{byte:02x}) "
                f"is on line {line}, byte offset {offset}{of} (counted from 0); re-encode the "
                f"file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)")
    first = msg.splitlines()[0] if msg else type(e).__name__
    kind = {"parquet": "Parquet", "csv": "CSV"}.get(f.fmt or "", "JSON Lines")
    return f"not a readable {kind} file ({first})"
