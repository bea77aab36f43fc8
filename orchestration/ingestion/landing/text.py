"""Files read as text (JSON Lines, gzip content, CSV): decompression, the lines of a file, and
where its first byte that is not UTF-8 is."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from orchestration.ingestion.landing.sqltext import LINES, lit

EMPTY_GZIP = "empty file (the gzip stream decompresses to 0 bytes): nothing to land"
UTF8_SCAN_CHUNK = 1 << 20
#: The size of the pieces a text file is read in (``pieces``).
PIECE_BYTES = 64 << 20


class FileUnreadable(Exception):
    pass


class NothingToLand(Exception):
    """Nothing to land (a gzip stream that decompresses to nothing): reported as skipped."""


def stage_lines(con: duckdb.DuckDBPyConnection, text_path: str, first_line: int = 1) -> None:
    """The file as lines (line number, text without \\r and BOM) in the temp table LINES; the
    file is a piece of a larger one whose first line is number ``first_line`` (``pieces``)."""
    con.execute(f"""
        create or replace temp table {LINES} as
        with t as materialized (
            select string_split(content, chr(10)) as l from read_text({lit(text_path)})
        ), u as (
            select unnest(l) as line,
                   generate_subscripts(l, 1) + {int(first_line) - 1} as ln from t
        )
        select ln::bigint as ln,
               regexp_replace(
                   case when ln = 1 and starts_with(line, chr(65279)) then substr(line, 2)
                        else line end,
                   '\\r$', '') as line
        from u
    """)


def _read(src, size: int, gz: bool) -> bytes:
    """The next ``size`` bytes of ``src``; a gzip stream that breaks is FileUnreadable (errors
    writing the pieces are not: a full disk is reported as one)."""
    try:
        return src.read(size)
    except EOFError as e:
        raise FileUnreadable(f"the gzip stream is truncated ({e})") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise FileUnreadable(f"not a readable gzip file ({e})") from None
    except OSError as e:
        if not gz:
            raise
        raise FileUnreadable(f"not a readable gzip file ({e})") from None


def pieces(path: Path, tmp: Path, idx: int, *, gz: bool,
           piece_bytes: int | None = None) -> Iterator[tuple[Path, int]]:
    """The text of ``path`` (gzip content when ``gz``) as files of about ``piece_bytes`` that end
    at a line end, each with the number of its first line: DuckDB reads a text file as one value,
    so a file is read in pieces to keep memory bounded whatever its size. Each piece is removed
    when the next is asked for. Cutting only after a newline byte never splits a UTF-8 character,
    a line or a \\r\\n. Raises FileUnreadable for a gzip stream that breaks, NothingToLand for
    one that decompresses to nothing."""
    piece_bytes = piece_bytes or PIECE_BYTES
    first_line, number, carry, total = 1, 0, b"", 0
    with (gzip.open if gz else open)(path, "rb") as src:
        while True:
            block = _read(src, piece_bytes, gz)
            total += len(block)
            data = carry + block
            if not data:
                break
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:  # one line longer than a piece: read on
                    carry = data
                    continue
                piece, carry = data[:cut + 1], data[cut + 1:]
            else:
                piece, carry = data, b""
            out = tmp / f"p{idx}_{number}.txt"
            out.write_bytes(piece)
            try:
                yield out, first_line
            finally:
                out.unlink(missing_ok=True)
            first_line += piece.count(b"\n")
            number += 1
            if not block:
                break
    if gz and total == 0:
        raise NothingToLand(EMPTY_GZIP)


def first_invalid_utf8(path: Path, *, gz: bool = False) -> tuple[int, int, int] | None:
    """(1-based line, 0-based byte offset, byte value) of the first byte that is not valid
    UTF-8 in ``path`` (in its decompressed content when ``gz``), or None. Bounded memory and
    C-speed: the file is decoded in chunks (a character cut by a chunk's end is carried to the
    next), and newlines are counted with ``bytes.count``."""
    offset = 0  # bytes of the file before ``carry``
    lines = 0  # newlines before ``offset``
    carry = b""
    with (gzip.open if gz else open)(path, "rb") as fh:
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
