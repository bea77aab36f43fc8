"""Files read as text (JSON Lines, gzip content, CSV): decompression, the lines of a file, and
where its first byte that is not UTF-8 is."""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

import duckdb

from orchestration.ingestion.landing.sqltext import LINES, lit

EMPTY_GZIP = "empty file (the gzip stream decompresses to 0 bytes): nothing to land"
UTF8_SCAN_CHUNK = 1 << 20


class FileUnreadable(Exception):
    pass


class NothingToLand(Exception):
    """Nothing to land (a gzip stream that decompresses to nothing): reported as skipped."""


def stage_lines(con: duckdb.DuckDBPyConnection, text_path: str) -> None:
    """The file as lines (line number, text without \\r and BOM) in the temp table LINES."""
    con.execute(f"""
        create or replace temp table {LINES} as
        with t as materialized (
            select string_split(content, chr(10)) as l from read_text({lit(text_path)})
        ), u as (
            select unnest(l) as line, generate_subscripts(l, 1) as ln from t
        )
        select ln::bigint as ln,
               regexp_replace(
                   case when ln = 1 and starts_with(line, chr(65279)) then substr(line, 2)
                        else line end,
                   '\\r$', '') as line
        from u
    """)


def decompress(path: Path, tmp: Path, idx: int) -> Path:
    out = tmp / f"d{idx}.jsonl"
    try:
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except EOFError as e:
        raise FileUnreadable(f"the gzip stream is truncated ({e})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise FileUnreadable(f"not a readable gzip file ({e})") from None
    if out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        raise NothingToLand(EMPTY_GZIP)
    return out


def first_invalid_utf8(path: Path) -> tuple[int, int, int] | None:
    """(1-based line, 0-based byte offset, byte value) of the first byte that is not valid
    UTF-8, or None. Bounded memory and C-speed: the file is decoded in chunks (a character cut
    by a chunk's end is carried to the next), and newlines are counted with ``bytes.count``."""
    offset = 0  # bytes of the file before ``carry``
    lines = 0  # newlines before ``offset``
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(UTF8_SCAN_CHUNK)
            data = carry + chunk
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as e:
                cut = bool(chunk) and e.reason == "unexpected end of data" and e.end == len(data)
                if not cut:
                    return (lines + data.count(b"\n", 0, e.start) + 1, offset + e.start,
                            data[e.start])
                good = e.start
            lines += data.count(b"\n", 0, good)
            offset += good
            carry = data[good:]
            if not chunk:
                return None
