"""Landing usage-event files into the warehouse (CONTRACT.md section 2).

``ingest()`` reads JSON Lines (``.jsonl``, ``.jsonl.gz``), CSV and Parquet files and puts every
row in exactly one of ``raw.usage_events`` (landed), ``raw.duplicate_events`` (an identical later
copy of a landed event) or ``raw.quarantined_events`` (a rule broken; the first reason in contract
order). It is set-based: DuckDB reads and validates the rows; Python only loops over files and
columns.

How one call works:

1. Files are listed (``paths`` in the order given, a directory expanding to its files; else
   everything under ``landing_dir``, by the byte order of the relative path) and hashed
   (SHA-256). A file whose content is in ``raw.landed_files``, or was staged earlier in the same
   call, is skipped and reported in ``already_landed``. Entries that are never read are reported
   in ``skipped`` (``source_file``, ``reason``) and do not make the run fail (see "What is read").
   ``raw.ingest_runs`` gets no row for a run that only skipped entries.
2. Each remaining file is *staged*: one ``INSERT ... SELECT`` turns its rows into a uniform shape
   in a temp table (per field: what kind of value it held, and its text). JSONL and CSV are read
   as text (``read_text``, split into lines; ``.jsonl.gz`` is decompressed to a temp file first)
   and parsed by DuckDB's JSON functions and regular expressions; Parquet through
   ``read_parquet(..., file_row_number = true)`` with per-column-type expressions. A file that
   cannot be read (truncated gzip, corrupt Parquet, invalid UTF-8, a CSV without a header) is
   reported in ``unreadable`` and lands nothing; it is not recorded in ``raw.landed_files``, so
   the next run retries it.
3. In one transaction: unresolved quarantine rows with reason ``unknown_customer`` /
   ``unknown_meter`` join the run (first in landing order, by their ``landing_seq``), every row is
   checked by one CASE in contract order, duplicates are decided (the first landed copy of an
   ``event_id`` wins: existing ``raw.usage_events`` first, then this run's order), and all tables
   are written, with ``raw.landed_files`` and ``raw.ingest_runs`` rows. Any error rolls all of it
   back. The same transaction counts, in one aggregate over the run's outcome table, the rows it
   landed (from files or re-checked) dated before ``PARTITION_START`` (2020-01) or after the
   month of ``now``: ``out_of_range_months`` (``{"1969-12": 3, "9999-01": 1}``, UTC months).
   They are valid events (CONTRACT.md section 2 puts no bound on the date) and stay in
   ``raw.usage_events``, but ``bill`` cannot reach their month (before 2020-01 never; a future
   month once it has started), so the report says so.

What is read (landing/ is written by producers; nothing in it is followed or trusted):

* Under ``landing_dir`` (and under a directory given in ``paths``) entries are judged by
  ``lstat`` before anything is opened. Only regular files named like event files are read, and
  only when their resolved path is still inside that directory. A symlink (to a file or a
  directory, outside or inside) is skipped, ``symlink (not followed)``; a FIFO, socket or device
  named like an event file is skipped, ``not a regular file (a FIFO)`` (never opened: a FIFO
  would block the run). A real directory is walked whatever its name (``events.parquet/`` holding
  part files lands its parts). A name that is not UTF-8 is skipped (``rename it``), shown
  escaped. Files are then opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again with
  ``fstat``, so an entry swapped since the listing is skipped, not followed.
* A file given explicitly in ``paths`` is read as given (a symlink is followed), but must be a
  regular file: otherwise it is ``unreadable`` (``not a regular file (a FIFO): give a regular
  file``), as are missing files and other extensions.
* An empty file (0 bytes, any accepted suffix, listed or given) is skipped with reason
  ``empty file (0 bytes): nothing to land``, on every run: it is not recorded in
  ``raw.landed_files`` (all empty files share one SHA-256, so recording one would report the next
  as "landed before"), and not unreadable. Likewise a ``.jsonl.gz`` whose stream decompresses to
  nothing: ``empty file (the gzip stream decompresses to 0 bytes): nothing to land``. A file with
  only blank lines, or a CSV with only a header, is not empty: it lands 0 rows.
* Invalid UTF-8 (JSONL, gzip content, CSV): the contract says nothing about encodings; its rules
  are about rows, and a quarantined row keeps "the row as text", which such a row is not. A file
  with an invalid byte is almost always a whole file in another encoding (Latin-1, UTF-16), so the
  file is unreadable as a whole, as any unreadable file: nothing lands, it is not recorded, it is
  retried on the next run, and ``ingest`` exits 1. The message names the file, the 1-based line and
  the 0-based byte offset of the first invalid byte (of the decompressed content for
  ``.jsonl.gz``) and says to re-encode the file as UTF-8. The offset is found only once DuckDB
  has rejected the file, by decoding it in 1 MiB chunks and counting newlines with
  ``bytes.count`` (bounded memory, no Python loop over lines).
* Reports print file names through ``report.escape_name`` (control characters as ``\\n``,
  ``\\t``, ``\\x1b``); the JSON document keeps the real names.

Exact values: every value becomes decimal *text* first (a JSON string; a JSON number's own token
taken from the line; a CSV cell; a Parquet VARCHAR, integer or DECIMAL as text, a Parquet DOUBLE
at its shortest text, e.g. ``42.07`` or ``1e-13``), then is validated and normalised by string
arithmetic (exponent applied, leading and trailing zeros dropped: at most 26 digits before the
point and 12 after) and cast from text to DECIMAL(38, 12). A JSON number's token is cross-checked
against DuckDB's own DECIMAL(38, 12) parse of the same line; when the token cannot be found or
disagrees (e.g. the key ``value`` written with an escape), the row is ``invalid_value``, never a
guess. Nothing goes through a double.

Instants: timestamp strings are validated by pattern and turned into epoch microseconds with
explicit date arithmetic (``make_date``, offset subtracted, fraction truncated to microseconds),
then ``timezone('UTC', make_timestamp(us))``: no step uses the session or machine zone.

Limits: a JSONL or CSV file is read into memory as one string (DuckDB strings stop at 4 GB).
Files are hashed before they are read: a producer must write files elsewhere and move them into
``landing/`` when complete (a half-written file would land as it is).

Decisions where the contract is silent:

* JSONL: a line that is not one JSON object, or an object naming one of the six fields twice at
  the top level (ambiguous), is ``malformed_row``. Keys are case-sensitive; other keys are
  ignored (kept in ``raw_row``). DuckDB's JSON parser accepts trailing commas; a line with one
  (``{"event_id": "e1", …,}``, ``[1, 2,]`` inside) is ``malformed_row`` as JSON says. It also
  accepts ``NaN``; such a line is still read as an object (``NaN`` as a value is
  ``invalid_value``).
* Blank lines (empty or only spaces/tabs) are not rows, in JSONL and in CSV: they are not counted
  in ``read``. JSONL ``row_number`` is the physical line number (blank lines still count as lines);
  CSV ``row_number`` is the record number after the header, blank lines not counted (a quoted field
  may span lines). A UTF-8 byte order mark at the start of a file is ignored; ``\\r\\n`` line ends
  are accepted.
* CSV: RFC 4180 with ``,`` and ``"``. Header names are matched exactly (surrounding spaces
  ignored); columns in any order; unknown extra columns are ignored (they still count for the
  field count, and are kept in ``raw_row``); a required column absent from the header makes
  every row ``missing_field``; the same known column named twice makes the file unreadable; a file
  without a header row is unreadable. A record whose quoting is broken (``ab"c``, ``"8"x``, an
  unterminated quote, which swallows the rest of the file into that one record) is
  ``malformed_row``. Cells are never trimmed. ``raw_row`` is the record's text as in the file.
* Parquet ``raw_row`` is a JSON rendering of the row (timestamps with time zone in UTC).
* ``customer_id`` / ``meter`` that are not strings (a JSON number, a Parquet integer column) are
  ``unknown_customer`` / ``unknown_meter`` (no catalog id can match them) and are stored as NULL,
  so a re-check never lands them. Ids are compared exactly (no trimming, case-sensitive).
* Value strings: ``[+-]digits[.digits][e[+-]d]`` (``.5`` and ``5.`` accepted, exponent of at most
  4 digits); no surrounding spaces; ``inf``/``nan``/booleans/objects are ``invalid_value``.
  ``-0`` is 0 (not negative).
* Timestamps: ``T``/``Z`` upper case only; years 0001-9999; seconds 00-59 (no leap second);
  offsets up to 23:59. Epoch milliseconds must be >= 0 and at most 9999-12-31T23:59:59.999Z; a
  JSON number with a fraction or exponent is ``invalid_timestamp``. Parquet: TIMESTAMP WITH TIME
  ZONE is an instant; integer columns are epoch ms; TIMESTAMP / TIMESTAMP_NS / DATE and any other
  type are ``invalid_timestamp``.
* Dimensions: a JSON object whose values are all strings; duplicate keys are
  ``invalid_dimensions``. Parquet MAP(VARCHAR, VARCHAR) (a NULL map value is invalid), STRUCT of
  strings, or a JSON string. Stored as canonical JSON with keys in byte order (``{}`` when none).
* ``raw.ingest_runs`` gets one row per call that changed something (landed a file, found an
  unreadable one, or changed a quarantined row on re-check). A call with nothing new writes
  nothing at all, so repeating ``ingest`` is a no-op on every table.
* Files given in ``paths`` that do not exist, or have another extension, are reported unreadable.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from orchestration.ingestion.report import escape_name, out_of_range_lines, skipped_lines
from orchestration.lib.periods import PARTITION_START, next_period

ACCEPTED_SUFFIXES = (".jsonl.gz", ".jsonl", ".csv", ".parquet")
REASONS = (
    "malformed_row",
    "missing_field",
    "invalid_event_id",
    "invalid_value",
    "negative_value",
    "invalid_timestamp",
    "invalid_dimensions",
    "unknown_customer",
    "unknown_meter",
    "conflicting_duplicate",
)
RECHECKED_REASONS = ("unknown_customer", "unknown_meter")
AGGREGATIONS = ("sum", "count", "unique_count", "max", "latest")
FIELDS = ("event_id", "customer_id", "meter", "value", "timestamp", "dimensions")

# Temp objects live in the caller's connection for the duration of one call only.
_T = "_ml_ingest"
STAGE = f"{_T}_stage"
CAND = f"{_T}_cand"
OUT = f"{_T}_out"
FILES = f"{_T}_files"
LK_CUST = f"{_T}_customers"
LK_METER = f"{_T}_meters"
LINES = f"{_T}_lines"
RECS = f"{_T}_records"

STAGE_DDL = f"""
create or replace temp table {STAGE} (
    file_idx        integer not null,
    row_number      bigint not null,
    raw_row         varchar,
    malformed       boolean not null,
    eid_t           varchar,   -- missing | string | other
    eid             varchar,
    cust_t          varchar,   -- missing | string | other
    cust            varchar,
    meter_t         varchar,   -- missing | string | other
    meter           varchar,
    val_t           varchar,   -- default (missing/null/empty: 1) | text | invalid
    val_text        varchar,
    val_check       decimal(38, 12),  -- JSON numbers: DuckDB's own exact parse, to cross-check
    val_needs_check boolean,
    ts_t            varchar,   -- missing | text | epoch | instant | invalid
    ts_text         varchar,
    ts_instant      timestamptz,
    dims_t          varchar,   -- none | json | invalid
    dims_json       varchar
)
"""

# A value string: sign, mantissa (at least one digit: checked on the groups), optional exponent of
# at most 4 digits.
VALUE_GROUPS = r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,4}))?$"
# The raw token of a JSON number under the key "value" (cross-checked against DuckDB's parse).
VALUE_TOKEN = r'"value"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)'
TS_PATTERN = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4})$"
)
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
# CSV (RFC 4180, "," and '"'): a field, and a whole record.
CSV_FIELD = r'"(?:[^"]|"")*"|[^",\n]*'
CSV_RECORD = f"(?:{CSV_FIELD})(?:,(?:{CSV_FIELD}))*"

JSON_SHAPE = "{" + ",".join(f'"{f}":"JSON"' for f in FIELDS) + "}"

INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}


class IngestError(Exception):
    """The run could not be written (nothing was changed)."""


@dataclass
class Lookup:
    """The catalog as ingest needs it."""

    customers: set[str]
    meters: dict[str, str]  # meter_id -> aggregation ('sum','count','unique_count','max','latest')


@dataclass
class FileResult:
    source_file: str
    sha256: str
    format: str
    read: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "sha256": self.sha256,
            "format": self.format,
            "read": self.read,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason),
        }


@dataclass
class AlreadyLanded:
    source_file: str
    sha256: str
    first_landed_as: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "sha256": self.sha256,
            "first_landed_as": self.first_landed_as,
        }


@dataclass
class Unreadable:
    source_file: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"source_file": self.source_file, "error": self.error}


@dataclass
class Skipped:
    """An entry that was not read at all (a symlink, a special file, an empty file...)."""

    source_file: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"source_file": self.source_file, "reason": self.reason}


@dataclass
class Relanded:
    checked: int = 0
    landed: int = 0
    duplicates: int = 0
    still_quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "still_quarantined": self.still_quarantined,
            "by_reason": dict(self.by_reason),
        }


@dataclass
class IngestReport:
    ingest_run_id: str
    files: list[FileResult] = field(default_factory=list)
    already_landed: list[AlreadyLanded] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    relanded: Relanded = field(default_factory=Relanded)
    skipped: list[Skipped] = field(default_factory=list)
    # landed events (this run) dated before PARTITION_START or after the current month: YYYY-MM
    out_of_range_months: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """False when a file could not be read (quarantined rows do not make a run fail)."""
        return not self.unreadable

    def totals(self) -> dict[str, int]:
        return {
            "read": sum(f.read for f in self.files),
            "landed": sum(f.landed for f in self.files),
            "duplicates": sum(f.duplicates for f in self.files),
            "quarantined": sum(f.quarantined for f in self.files),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingest_run_id": self.ingest_run_id,
            "files": [f.to_dict() for f in self.files],
            "already_landed": [a.to_dict() for a in self.already_landed],
            "unreadable": [u.to_dict() for u in self.unreadable],
            "relanded": self.relanded.to_dict(),
            "totals": self.totals(),
            "skipped": [s.to_dict() for s in self.skipped],
            "out_of_range_months": dict(self.out_of_range_months),
        }

    def format_table(self) -> str:
        """A report for people: one aligned row per file, then re-landed, skipped, unreadable."""
        out: list[str] = [f"ingest run {self.ingest_run_id}"]
        if self.files:
            header = ("file", "format", "read", "landed", "duplicates", "quarantined")
            rows = [
                (escape_name(f.source_file), f.format, str(f.read), str(f.landed),
                 str(f.duplicates), str(f.quarantined))
                for f in self.files
            ]
            t = self.totals()
            rows.append(("total", "", str(t["read"]), str(t["landed"]), str(t["duplicates"]),
                         str(t["quarantined"])))
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

            def fmt(r: tuple[str, ...]) -> str:
                cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                cells += [r[i].rjust(widths[i]) for i in range(2, len(r))]
                return "  ".join(cells).rstrip()

            out.append(fmt(header))
            out.append("  ".join("-" * w for w in widths))
            for f, r in zip(self.files, rows[:-1], strict=True):
                out.append(fmt(r))
                for reason, n in _ordered_reasons(f.quarantined_by_reason):
                    out.append(f"{'':{widths[0]}}    quarantined {reason}: {n}")
            out.append(fmt(rows[-1]))
        else:
            out.append("no new files")
        r = self.relanded
        if r.checked:
            line = (f"re-checked from quarantine: {r.checked} rows; landed {r.landed}, "
                    f"duplicates {r.duplicates}, still quarantined {r.still_quarantined}")
            out.append(line)
            for reason, n in _ordered_reasons(r.by_reason):
                out.append(f"    still quarantined {reason}: {n}")
        if self.already_landed:
            out.append("skipped, content landed before:")
            w = max(len(escape_name(a.source_file)) for a in self.already_landed)
            for a in self.already_landed:
                out.append(f"    {escape_name(a.source_file):{w}}  same content as "
                           f"{escape_name(a.first_landed_as)} (sha256 {a.sha256[:12]})")
        out += skipped_lines([s.to_dict() for s in self.skipped])
        if self.unreadable:
            out.append("UNREADABLE, nothing landed from these files:")
            for u in self.unreadable:
                out.append(f"    {escape_name(u.source_file)}: {escape_name(u.error)}")
        out += out_of_range_lines(self.out_of_range_months)
        return "\n".join(out)


def _ordered_reasons(d: dict[str, int]) -> list[tuple[str, int]]:
    return [(k, d[k]) for k in REASONS if d.get(k)]


# --------------------------------------------------------------------------------------------
# files


@dataclass
class _File:
    path: Path
    source_file: str
    fmt: str | None
    error: str | None = None
    skip: str | None = None  # a reason not to read it at all (reported in ``skipped``)
    follow: bool = False  # a path given explicitly may be a symlink (read as given)
    sha256: str = ""
    size: int = 0


EMPTY_FILE = "empty file (0 bytes): nothing to land"
EMPTY_GZIP = "empty file (the gzip stream decompresses to 0 bytes): nothing to land"
SYMLINK = "symlink (not followed)"
BAD_NAME = "the file name is not valid UTF-8: rename it"
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in ACCEPTED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix[1:]
    return None


def _byte_key(p: Path) -> bytes:
    return os.fsencode(p.as_posix())


def _files_under(directory: Path) -> list[tuple[Path, str | None]]:
    """The event files under ``directory`` (by byte order of the relative path), each with a
    reason to skip it or None. Nothing is followed or opened: entries are judged by ``lstat``.
    Symlinks (to files or directories, inside or outside) are skipped; so are FIFOs, sockets and
    devices named like event files. Real subdirectories are walked whatever their name."""
    root = os.path.realpath(directory)
    found: list[tuple[Path, str | None]] = []
    pending = [directory]
    while pending:
        d = pending.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            found.append((d, f"cannot list the directory ({e.strerror or e})"))
            continue
        for entry in entries:
            p = Path(entry.path)
            try:
                st = os.lstat(p)
            except OSError:
                continue  # gone since the listing
            if stat.S_ISLNK(st.st_mode):
                if _format_of(p) or os.path.isdir(p):
                    found.append((p, SYMLINK))
            elif stat.S_ISDIR(st.st_mode):
                pending.append(p)
            elif _format_of(p):
                found.append((p, _regular_file_problem(p, st, root)))
    return sorted(found, key=lambda e: _byte_key(e[0].relative_to(directory)))


def landable_files(directory: Path) -> list[Path]:
    """The files under ``directory`` that an ingest would read: regular event files of an
    accepted suffix (any case), really inside it, not empty. The landing sensor lists these, so
    it and `ingest` never disagree on what is an event file."""
    if not directory.is_dir():
        return []
    return [path for path, reason in _files_under(directory) if reason is None]


def _regular_file_problem(p: Path, st: os.stat_result, root: str) -> str | None:
    """Why a landing entry (judged by its ``lstat``) is not read, or None."""
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)})"
    real = os.path.realpath(p)
    if os.path.commonpath([real, root]) != root:
        return "outside the landing directory once resolved (not followed)"
    if st.st_size == 0:
        return EMPTY_FILE
    return None


def _source_name(path: Path, landing_dir: Path) -> str:
    try:
        return path.resolve().relative_to(landing_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _utf8_name(source: str) -> bool:
    try:
        source.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode keeps undecodable bytes as lone surrogates
        return False


def _listed(p: Path, source: str, skip: str | None) -> _File:
    f = _File(p, source, _format_of(p), skip=skip)
    if not _utf8_name(source):
        # a name that is not UTF-8 cannot be stored or sent as text: skipped, shown escaped
        f.source_file = escape_name(source)
        f.skip = skip or BAD_NAME
    return f


def _list_files(landing_dir: Path, paths: list[Path] | None) -> list[_File]:
    files: list[_File] = []
    if paths is None:
        if landing_dir.is_dir():
            for p, skip in _files_under(landing_dir):
                files.append(_listed(p, p.relative_to(landing_dir).as_posix(), skip))
        return files
    for given in paths:
        given = Path(given)
        try:
            st: os.stat_result | None = os.stat(given)  # a given path is read as given
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            for p, skip in _files_under(given):
                files.append(_listed(p, _source_name(p, landing_dir), skip))
            continue
        f = _File(given, _source_name(given, landing_dir), _format_of(given), follow=True)
        if not _utf8_name(f.source_file):
            f.source_file = escape_name(f.source_file)
            f.error = BAD_NAME
        elif st is None:
            f.error = "no such file; check the path"
        elif not stat.S_ISREG(st.st_mode):
            f.error = f"not a regular file ({_kind(st.st_mode)}): give a regular file"
        elif f.fmt is None:
            f.error = ("not an accepted event file: the name must end in .jsonl, .jsonl.gz, "
                       ".csv or .parquet")
        elif st.st_size == 0:
            f.skip = EMPTY_FILE
        files.append(f)
    return files


class _NotRegular(Exception):
    pass


def _hash(path: Path, *, follow: bool) -> tuple[str, int]:
    """SHA-256 and size. Opened without blocking (a FIFO swapped in since the listing does not
    hang the run) and, for landing entries, without following a symlink; then checked to be a
    regular file before a byte is read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise _NotRegular(SYMLINK) from None
        raise
    h = hashlib.sha256()
    size = 0
    with open(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotRegular(f"not a regular file ({_kind(mode)})")
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# --------------------------------------------------------------------------------------------
# SQL helpers


TRAILING_COMMA = r",\s*[}\]]"
JSON_STRING = r'"(?:[^"\\]|\\.)*"'  # a JSON string literal, escapes included


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _safe_path(path: Path, tmp: Path, idx: int, ext: str) -> str:
    """A path DuckDB reads literally (it expands *, ? and [ as globs): a symlink if needed."""
    s = str(path.resolve())
    if any(ch in s for ch in "*?[]{}'\\"):
        link = tmp / f"f{idx}.{ext}"
        link.symlink_to(path.resolve())
        return str(link)
    return s


def _field_kind_sql(e: str) -> str:
    """Kind of a required string field held as JSON text ``e`` (NULL when absent)."""
    return (f"case when {e} is null or json_type({e}) = 'NULL' then 'missing' "
            f"when json_type({e}) = 'VARCHAR' then "
            f"case when json_extract_string({e}, '$') = '' then 'missing' else 'string' end "
            f"else 'other' end")


def _stage_lines(con: duckdb.DuckDBPyConnection, text_path: str) -> None:
    """The file as lines (line number, text without \\r and BOM) in the temp table LINES."""
    con.execute(f"""
        create or replace temp table {LINES} as
        with t as materialized (
            select string_split(content, chr(10)) as l from read_text({_lit(text_path)})
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


def _stage_jsonl(con: duckdb.DuckDBPyConnection, file_idx: int, text_path: str) -> None:
    _stage_lines(con, text_path)
    j = "j"
    eid, cust, meter = f"{j}.event_id", f"{j}.customer_id", f"{j}.meter"
    val, ts, dims = f"{j}.value", f"{j}.timestamp", f"{j}.dimensions"
    known = ", ".join(_lit(f) for f in FIELDS)
    con.execute(f"""
        insert into {STAGE}
        with l0 as (
            select ln, line,
                   coalesce(case when json_valid(line) then json_type(line) = 'OBJECT' end,
                            false)
                   -- DuckDB's parser takes trailing commas, JSON does not: a comma before a
                   -- closing bracket outside strings (checked only on lines that have one)
                   and not coalesce(regexp_matches(line, {_lit(TRAILING_COMMA)})
                                    and regexp_matches(regexp_replace(line, {_lit(JSON_STRING)},
                                                                      '""', 'g'),
                                                       {_lit(TRAILING_COMMA)}), false) as obj
            from {LINES}
            where not regexp_full_match(line, '[ \\t]*')
        ), l1 as (
            select *,
                   case when obj then from_json(line, {_lit(JSON_SHAPE)}) end as j0,
                   case when obj then list_filter(json_keys(line), lambda k: k in ({known}))
                   end as known
            from l0
        ), p as (
            -- one of the fields named twice at the top level: ambiguous, so malformed
            select ln, line, is_obj, case when is_obj then j0 end as j
            from (select *, coalesce(len(known) = list_unique(known), false) as is_obj from l1)
        ), q as (
            select *,
                   json_type({val}) as vt, json_type({ts}) as tt,
                   case when json_type({val}) in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE')
                        then list_distinct(regexp_extract_all(line, {_lit(VALUE_TOKEN)}, 1))
                   end as vtok
            from p
        )
        select {file_idx}, ln, line, not is_obj,
               {_field_kind_sql(eid)},
               case when json_type({eid}) = 'VARCHAR' then json_extract_string({eid}, '$') end,
               {_field_kind_sql(cust)},
               case when json_type({cust}) = 'VARCHAR' then json_extract_string({cust}, '$') end,
               {_field_kind_sql(meter)},
               case when json_type({meter}) = 'VARCHAR' then json_extract_string({meter}, '$') end,
               case when vt is null or vt = 'NULL' then 'default'
                    when vt = 'VARCHAR' then
                        case when json_extract_string({val}, '$') = '' then 'default'
                             else 'text' end
                    when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE') then
                        case when len(vtok) = 1 then 'text' else 'invalid' end
                    else 'invalid' end,
               case when vt = 'VARCHAR' then json_extract_string({val}, '$')
                    when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE') and len(vtok) = 1
                        then vtok[1] end,
               case when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE')
                    then from_json(line, '{{"value":"DECIMAL(38,12)"}}').value end,
               coalesce(vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE'), false),
               case when tt is null or tt = 'NULL' then 'missing'
                    when tt = 'VARCHAR' then
                        case when json_extract_string({ts}, '$') = '' then 'missing'
                             else 'text' end
                    when tt in ('UBIGINT', 'BIGINT') then 'epoch'
                    else 'invalid' end,
               case when tt = 'VARCHAR' then json_extract_string({ts}, '$')
                    when tt in ('UBIGINT', 'BIGINT') then {ts}::varchar end,
               null,
               case when {dims} is null then 'none' else 'json' end,
               {dims}::varchar
        from q
    """)


def _stage_csv(con: duckdb.DuckDBPyConnection, file_idx: int, text_path: str) -> None:
    _stage_lines(con, text_path)
    # Records: a line ends a record when the quotes seen so far are balanced (RFC 4180 quotes
    # come in pairs), so quoted fields may span lines.
    spans = con.execute(f"""
        select count(*) from {LINES}
        where (strlen(line) - strlen(replace(line, '"', ''))) % 2 = 1
    """).fetchone()[0]
    if spans:
        grouped = f"""
        with q as (
            select ln, line,
                   sum(strlen(line) - strlen(replace(line, '"', ''))) over (order by ln) % 2 = 0
                       as closes
            from {LINES}
        ), r as (
            select *, coalesce(sum(closes::int) over (order by ln rows between unbounded
                                                        preceding and 1 preceding), 0) as rec_id
            from q
        ), g as (
            select rec_id, string_agg(line, chr(10) order by ln) as rec,
                   bool_or(closes) as complete
            from r group by rec_id
        )"""
    else:  # every line has balanced quotes: each line is one record
        grouped = f"""
        with g as (select ln as rec_id, line as rec, true as complete from {LINES})"""
    con.execute(f"""
        create or replace temp table {RECS} as
        {grouped}, nb as (
            select *, row_number() over (order by rec_id) as n
            from g where not regexp_full_match(rec, '[ \\t]*')
        ), wf as (
            select *, complete and (not contains(rec, '"')
                                    or regexp_full_match(rec, {_lit(CSV_RECORD)})) as well_formed
            from nb
        )
        select n - 1 as row_number, rec, complete, well_formed,
               case when not contains(rec, '"') then string_split(rec, ',')
                    when well_formed then
                   list_transform(
                       regexp_extract_all(',' || rec, {_lit(',(' + CSV_FIELD + ')')}, 1),
                       lambda f: case when starts_with(f, '"')
                                      then replace(f[2:-2], '""', '"') else f end)
               end as fields
        from wf
    """)
    head = con.execute(
        f"select well_formed, fields from {RECS} where row_number = 0"
    ).fetchone()
    if head is None:
        raise _Unreadable("the CSV file has no header row; the first line must name the fields "
                          "(event_id,customer_id,meter,value,timestamp,dimensions)")
    if not head[0]:
        raise _Unreadable("the CSV header row is not valid CSV (check its quotes)")
    names = [n.strip() for n in head[1]]
    pos: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in FIELDS:
            if n in pos:
                raise _Unreadable(f"the CSV header names the column {n!r} twice; keep one")
            pos[n] = i + 1  # DuckDB lists are 1-based
    width = len(names)

    def cell(name: str) -> str:
        return f"fields[{pos[name]}]" if name in pos else "null::varchar"

    def kind(name: str) -> str:
        c = cell(name)
        return f"case when coalesce({c}, '') = '' then 'missing' else 'string' end"

    v, t, d = cell("value"), cell("timestamp"), cell("dimensions")
    con.execute(f"""
        insert into {STAGE}
        with r as (
            select *, not coalesce(well_formed and len(fields) = {width}, false) as bad
            from {RECS} where row_number > 0
        )
        select {file_idx}, row_number, rec, bad,
               case when not bad then {kind('event_id')} end,
               case when not bad then {cell('event_id')} end,
               case when not bad then {kind('customer_id')} end,
               case when not bad then {cell('customer_id')} end,
               case when not bad then {kind('meter')} end,
               case when not bad then {cell('meter')} end,
               case when not bad then
                   case when coalesce({v}, '') = '' then 'default' else 'text' end end,
               case when not bad then {v} end,
               null, false,
               case when not bad then
                   case when coalesce({t}, '') = '' then 'missing' else 'text' end end,
               case when not bad then {t} end,
               null,
               case when not bad then
                   case when coalesce({d}, '') = '' then 'none' else 'json' end end,
               case when not bad then {d} end
        from r
    """)


def _stage_parquet(con: duckdb.DuckDBPyConnection, file_idx: int, path: str) -> None:
    src = f"read_parquet({_lit(path)}, file_row_number = true)"
    cols = con.execute(f"describe select * from {src}").fetchall()
    types = {c[0]: c[1].upper() for c in cols if c[0] != "file_row_number"}

    def col(name: str) -> str:
        return _ident(name)

    def str_field(name: str) -> tuple[str, str]:
        """(kind, text) of a required string field."""
        if name not in types:
            return "'missing'", "null::varchar"
        c = col(name)
        if types[name] == "VARCHAR":
            return (f"case when coalesce({c}, '') = '' then 'missing' else 'string' end",
                    f"{c}")
        return (f"case when {c} is null then 'missing' else 'other' end", "null::varchar")

    eid_k, eid_v = str_field("event_id")
    cust_k, cust_v = str_field("customer_id")
    meter_k, meter_v = str_field("meter")

    vtype = types.get("value")
    if vtype is None:
        val_k, val_v = "'default'", "null::varchar"
    else:
        c = col("value")
        if vtype == "VARCHAR":
            val_k = f"case when coalesce({c}, '') = '' then 'default' else 'text' end"
            val_v = c
        elif vtype in INTEGER_TYPES or vtype in FLOAT_TYPES or vtype.startswith("DECIMAL"):
            # integers and decimals are exact; floats at their shortest decimal text
            val_k = f"case when {c} is null then 'default' else 'text' end"
            val_v = f"{c}::varchar"
        else:
            val_k = f"case when {c} is null then 'default' else 'invalid' end"
            val_v = "null::varchar"

    ttype = types.get("timestamp")
    ts_inst = "null::timestamptz"
    if ttype is None:
        ts_k, ts_v = "'missing'", "null::varchar"
    else:
        c = col("timestamp")
        if ttype == "VARCHAR":
            ts_k = f"case when coalesce({c}, '') = '' then 'missing' else 'text' end"
            ts_v = c
        elif ttype == "TIMESTAMP WITH TIME ZONE":
            ts_k = f"case when {c} is null then 'missing' else 'instant' end"
            ts_v, ts_inst = "null::varchar", c
        elif ttype in INTEGER_TYPES:
            ts_k = f"case when {c} is null then 'missing' else 'epoch' end"
            ts_v = f"{c}::varchar"
        else:  # TIMESTAMP without zone (ambiguous), DATE, floats, ...
            ts_k = f"case when {c} is null then 'missing' else 'invalid' end"
            ts_v = "null::varchar"

    dtype = types.get("dimensions")
    if dtype is None:
        dims_k, dims_v = "'none'", "null::varchar"
    else:
        c = col("dimensions")
        if dtype == "VARCHAR":
            dims_k = f"case when coalesce({c}, '') = '' then 'none' else 'json' end"
            dims_v = c
        else:  # MAP / STRUCT / JSON / anything: its JSON rendering, validated as an object
            dims_k = f"case when {c} is null then 'none' else 'json' end"
            dims_v = f"to_json({c})::varchar"

    def raw_expr(name: str, typ: str) -> str:
        if typ == "TIMESTAMP WITH TIME ZONE":  # render the instant in UTC, whatever the session
            return f"strftime(timezone('UTC', {col(name)}), '%Y-%m-%dT%H:%M:%S.%fZ')"
        return col(name)

    if types:
        raw = "to_json(struct_pack(" + ", ".join(
            f"{_ident(n)} := {raw_expr(n, t)}" for n, t in types.items()) + "))::varchar"
    else:
        raw = "'{}'"
    con.execute(f"""
        insert into {STAGE}
        select {file_idx}, file_row_number + 1, {raw}, false,
               {eid_k}, {eid_v}, {cust_k}, {cust_v}, {meter_k}, {meter_v},
               {val_k}, {val_v}, null, false,
               {ts_k}, {ts_v}, {ts_inst},
               {dims_k}, {dims_v}
        from {src}
    """)


class _Unreadable(Exception):
    pass


class _Empty(Exception):
    """Nothing to land (a gzip stream that decompresses to nothing): reported as skipped."""


UTF8_SCAN_CHUNK = 1 << 20


def _first_invalid_utf8(path: Path) -> tuple[int, int, int] | None:
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


def _decompress(path: Path, tmp: Path, idx: int) -> Path:
    out = tmp / f"d{idx}.jsonl"
    try:
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except EOFError as e:
        raise _Unreadable(f"the gzip stream is truncated ({e})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise _Unreadable(f"not a readable gzip file ({e})") from None
    if out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        raise _Empty(EMPTY_GZIP)
    return out


def _stage_file(con: duckdb.DuckDBPyConnection, f: _File, idx: int, tmp: Path) -> None:
    text: Path | None = None
    try:
        if f.fmt == "parquet":
            _stage_parquet(con, idx, _safe_path(f.path, tmp, idx, "parquet"))
        elif f.fmt == "csv":
            text = f.path
            _stage_csv(con, idx, _safe_path(f.path, tmp, idx, "csv"))
        else:
            text = _decompress(f.path, tmp, idx) if f.fmt == "jsonl.gz" else f.path
            _stage_jsonl(con, idx, _safe_path(text, tmp, idx, "jsonl"))
    except duckdb.Error as e:
        raise _Unreadable(_read_error(f, e, text)) from None
    finally:
        con.execute(f"drop table if exists {LINES}")
        con.execute(f"drop table if exists {RECS}")
        if text is not None and text != f.path:
            text.unlink(missing_ok=True)


def _read_error(f: _File, e: duckdb.Error, text: Path | None = None) -> str:
    msg = str(e).strip()
    if "UTF-8" in msg or "utf-8" in msg.lower():
        where = _first_invalid_utf8(text) if text is not None else None
        if where is None:
            return f"{f.source_file} is not valid UTF-8 text; re-encode the file as UTF-8"
        line, offset, byte = where
        of = " of the decompressed content" if text != f.path else ""
        return (f"{f.source_file} is not valid UTF-8 text: the first invalid byte (0x{byte:02x}) "
                f"is on line {line}, byte offset {offset}{of} (counted from 0); re-encode the "
                f"file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)")
    first = msg.splitlines()[0] if msg else type(e).__name__
    kind = {"parquet": "Parquet", "csv": "CSV"}.get(f.fmt or "", "JSON Lines")
    return f"not a readable {kind} file ({first})"


# --------------------------------------------------------------------------------------------
# validation, duplicates, writing

# From the uniform stage rows to typed fields and one failure flag per rule.
CLASSIFY_SQL = f"""
create or replace temp table {CAND} as
with a as (
    select s.*,
        case when val_t = 'text'
             then regexp_extract(val_text, {_lit(VALUE_GROUPS)}, ['sg', 'ip', 'fp', 'ex']) end
            as vm0,
        case when ts_t = 'text' and regexp_full_match(ts_text, '[0-9]+') then 'epoch'
             else ts_t end as ts_k,
        case when ts_t = 'text'
             then regexp_extract(ts_text, {_lit(TS_PATTERN)},
                                 ['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'off']) end as tm0,
        case when dims_t = 'json' and json_valid(dims_json) then json_type(dims_json) end as dj
    from {STAGE} s
), a2 as (
    -- regexp_extract gives '' for every group when the text does not match; a match has a
    -- digit in the mantissa, and always a year
    select *,
        case when vm0.ip <> '' or vm0.fp <> '' then vm0 end as vm,
        case when tm0.y <> '' then tm0 end as tm
    from a
), b as (
    select *,
        vm.ip || coalesce(vm.fp, '') as v_digits,
        length(vm.ip) + case when coalesce(vm.ex, '') = '' then 0 else vm.ex::integer end
            as v_p0,
        case when ts_k = 'epoch' and regexp_full_match(ts_text, '[0-9]+')
                  and length(ltrim(ts_text, '0')) <= 15
             then coalesce(nullif(ltrim(ts_text, '0'), ''), '0')::bigint end as ms,
        tm.y::integer as ty, tm.mo::integer as tmo, tm.d::integer as td,
        tm.h::integer as th, tm.mi::integer as tmi, tm.s::integer as tsec,
        case when tm.off = 'Z' then 0 else substr(tm.off, 2, 2)::integer end as toffh,
        case when tm.off = 'Z' then 0 else right(tm.off, 2)::integer end as toffm,
        case when starts_with(tm.off, '-') then -1 else 1 end as toffsign,
        case when dj = 'OBJECT' then from_json(dims_json, '"MAP(VARCHAR, JSON)"') end as dm
    from a2
), c as (
    select *,
        rtrim(ltrim(v_digits, '0'), '0') as vd,
        v_p0 - (length(v_digits) - length(ltrim(v_digits, '0'))) as vp,
        ty between 1 and 9999 and tmo between 1 and 12 and th <= 23 and tmi <= 59 and tsec <= 59
            and toffh <= 23 and toffm <= 59
            and td between 1 and case when tmo = 2 then
                    case when (ty % 4 = 0 and ty % 100 <> 0) or ty % 400 = 0 then 29 else 28 end
                when tmo in (4, 6, 9, 11) then 30 else 31 end as t_ok
    from b
), d as (
    select *,
        vm is not null and (vd = '' or (vp <= 26 and length(vd) - vp <= 12)) as v_fits
    from c
), e as (
    select *,
        case when val_t = 'default' then 1::decimal(38, 12)
             when v_fits and vd = '' then 0::decimal(38, 12)
             when v_fits then (
                 case when vm.sg = '-' then '-' else '' end ||
                 case when vp <= 0 then '0.' || repeat('0', -vp) || vd
                      when vp >= length(vd) then vd || repeat('0', vp - length(vd))
                      else substr(vd, 1, vp) || '.' || substr(vd, vp + 1) end
             )::decimal(38, 12)
        end as v_dec,
        case when ts_k = 'instant' then ts_instant
             when ts_k = 'epoch' and ms <= {MAX_EPOCH_MS}
                 then timezone('UTC', make_timestamp(ms * 1000))
             when ts_k = 'text' and t_ok then timezone('UTC', make_timestamp(
                 (make_date(ty, tmo, td) - date '1970-01-01')::bigint * 86400000000
                 + (th * 3600 + tmi * 60 + tsec)::bigint * 1000000
                 + rpad(substr(coalesce(tm.f, ''), 1, 6), 6, '0')::bigint
                 - toffsign * (toffh * 60 + toffm)::bigint * 60000000))
        end as ev_at,
        case when dims_t = 'none' or dj = 'NULL' then '{{}}'
             when dm is not null and coalesce(list_bool_and(list_transform(map_values(dm),
                      lambda x: coalesce(json_type(x) = 'VARCHAR', false))), true)
                 then to_json(map_from_entries(list_sort(list_transform(map_entries(dm),
                      lambda x: {{'k': x.key, 'v': json_extract_string(x.value, '$')}}))))::varchar
        end as dims
    from d
)
select
    1 as phase, file_idx, row_number, null::bigint as q_seq, raw_row,
    case when eid_t = 'string' then eid end as event_id,
    case when cust_t = 'string' then cust end as customer_id,
    case when meter_t = 'string' then meter end as meter_id,
    case when not coalesce(val_needs_check, false) or v_dec = val_check then v_dec end as value,
    ev_at as event_at,
    dims as dimensions,
    malformed as f_malformed,
    not malformed and 'missing' in (eid_t, cust_t, meter_t, ts_t) as f_missing,
    not (eid_t = 'string' and length(eid) <= 256) as f_event_id,
    not coalesce(val_t = 'default' or (v_dec is not null
                 and (not coalesce(val_needs_check, false) or v_dec = val_check)), false)
        as f_value,
    ev_at is null as f_timestamp,
    dims is null as f_dimensions
from e
"""


def _outcome_sql(base_seq: int) -> str:
    """Reasons in contract order, then duplicates, then a landing_seq for every row written.

    ``ord`` is the run's landing order: re-checked rows by their original landing_seq, then files
    in order, then rows. It is computed, not sorted, and the duplicate step uses a hash aggregate
    and hash joins on narrow columns, so a large run needs one narrow sort (for landing_seq).
    """
    return f"""
create or replace temp table {OUT} as
with r as (
    select c.*,
        case when phase = 0 then q_seq::hugeint
             else ((file_idx + 1)::hugeint << 64) + row_number end as ord,
        m.aggregation, k.customer_id as known_customer
    from {CAND} c
    left join {LK_METER} m on m.meter_id = c.meter_id
    left join {LK_CUST} k on k.customer_id = c.customer_id
), p as (
    select r.*,
        case when f_malformed then 'malformed_row'
             when f_missing then 'missing_field'
             when f_event_id then 'invalid_event_id'
             when f_value then 'invalid_value'
             when value < 0 and aggregation is not null and aggregation <> 'sum'
                 then 'negative_value'
             when f_timestamp then 'invalid_timestamp'
             when f_dimensions then 'invalid_dimensions'
             when known_customer is null then 'unknown_customer'
             when aggregation is null then 'unknown_meter'
        end as pre_reason
    from r
), valid as (
    -- only rows that pass every rule take part: the first landed copy of an id wins
    select ord, event_id, customer_id, meter_id, value, event_at, dimensions
    from p where pre_reason is null
), firsts as (
    select event_id, min(ord) as first_ord from valid group by event_id
), ref as (
    -- the copy each id is compared with: the one landed before, else this run's first
    select f.event_id, f.first_ord, u.event_id is not null as has_existing,
        coalesce(u.customer_id, w.customer_id) as customer_id,
        coalesce(u.meter_id, w.meter_id) as meter_id,
        coalesce(u.value, w.value) as value,
        coalesce(u.event_at, w.event_at) as event_at,
        coalesce(u.dimensions, w.dimensions) as dimensions
    from firsts f
    join valid w on w.ord = f.first_ord
    left join raw.usage_events u on u.event_id = f.event_id
), o as (
    select v.ord,
        case when not x.has_existing and v.ord = x.first_ord then 'landed'
             when v.customer_id = x.customer_id and v.meter_id = x.meter_id
                  and v.value = x.value and v.event_at = x.event_at
                  and v.dimensions = x.dimensions then 'duplicate'
             else 'quarantined' end as outcome
    from valid v join ref x on x.event_id = v.event_id
), f as (
    select p.*,
        coalesce(o.outcome, 'quarantined') as outcome,
        case when o.outcome is null then p.pre_reason
             when o.outcome = 'quarantined' then 'conflicting_duplicate' end as reason
    from p left join o on o.ord = p.ord
), seqs as (
    -- a new landing_seq for each row written now (landed rows, quarantine rows of new files),
    -- dense and after everything landed before
    select ord, {base_seq} + row_number() over (order by ord) as landing_seq
    from f where outcome = 'landed' or (phase = 1 and outcome = 'quarantined')
)
select f.*, seqs.landing_seq
from f left join seqs on seqs.ord = f.ord
"""


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
    """Land event files (see the module docstring). ``con``: a read-write warehouse connection."""
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

    files = _list_files(landing_dir, paths)
    landed_before = dict(con.execute(
        "select file_sha256, source_file from raw.landed_files").fetchall())

    staged: list[_File] = []
    staged_hashes: dict[str, str] = {}
    try:
        con.execute(STAGE_DDL)
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
                    f.sha256, f.size = _hash(f.path, follow=f.follow)
                except _NotRegular as e:  # changed since it was listed
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
                    _stage_file(con, f, idx, tmp)
                except _Empty as e:
                    report.skipped.append(Skipped(f.source_file, str(e)))
                    say(f"{escape_name(f.source_file)}: {e}")
                    continue
                except _Unreadable as e:
                    con.execute(f"delete from {STAGE} where file_idx = {idx}")
                    report.unreadable.append(Unreadable(
                        f.source_file,
                        f"{e}. Nothing from this file was landed and it is not recorded as "
                        f"landed: fix or replace it, then run ingest again."))
                    say(f"{escape_name(f.source_file)}: unreadable: {escape_name(str(e))}")
                    continue
                staged.append(f)
                staged_hashes[f.sha256] = f.source_file

        _write(con, staged, lookup, run_id, now, report, say, clock)
    finally:
        for t in (STAGE, CAND, OUT, FILES, LK_CUST, LK_METER, LINES, RECS):
            try:
                con.execute(f"drop table if exists {t}")
            except duckdb.Error:
                pass
    return report


def billable_range(now: datetime) -> tuple[datetime, datetime]:
    """[first instant of PARTITION_START's month, first instant of the month after ``now``'s)
    in UTC: the events a bill can reach as of ``now`` (``bill`` refuses earlier and future
    periods)."""
    first = datetime.fromisoformat(PARTITION_START + "-01T00:00:00+00:00")
    current = now.astimezone(UTC).date().replace(day=1)
    nxt = next_period(current)
    return first, datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def _out_of_range_months(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, int]:
    """Rows landed by this run (from files or re-checked) dated outside ``billable_range``,
    counted per UTC month: one aggregate over the run's outcome table."""
    lo, hi = billable_range(now)
    return dict(con.execute(f"""
        select strftime(timezone('UTC', event_at), '%Y-%m') as month, count(*)::bigint
        from {OUT}
        where outcome = 'landed' and (event_at < $lo or event_at >= $hi)
        group by month order by month
    """, {"lo": lo, "hi": hi}).fetchall())


def _write(
    con: duckdb.DuckDBPyConnection,
    staged: list[_File],
    lookup: Lookup,
    run_id: str,
    now: datetime,
    report: IngestReport,
    say: Callable[[str], None],
    clock: float,
) -> None:
    con.execute(f"create or replace temp table {LK_CUST} as "
                f"select unnest(?::varchar[]) as customer_id", [sorted(lookup.customers)])
    con.execute(f"create or replace temp table {LK_METER} as "
                f"select unnest(?::varchar[]) as meter_id, unnest(?::varchar[]) as aggregation",
                [list(lookup.meters), list(lookup.meters.values())])
    con.execute(f"create or replace temp table {FILES} (file_idx integer, source_file varchar, "
                f"file_sha256 varchar, file_format varchar, size_bytes bigint)")
    if staged:
        con.executemany(f"insert into {FILES} values (?, ?, ?, ?, ?)",
                        [[i, f.source_file, f.sha256, f.fmt, f.size] for i, f in enumerate(staged)])

    say("validating")
    con.execute("begin transaction")
    try:
        con.execute(CLASSIFY_SQL)
        # re-check: quarantined unknown_customer / unknown_meter rows, in landing order
        con.execute(f"""
            insert into {CAND} by name
            select 0 as phase, null as file_idx, row_number, landing_seq as q_seq, raw_row,
                   event_id, customer_id, meter_id, value, event_at, dimensions,
                   false as f_malformed, false as f_missing, false as f_event_id,
                   false as f_value, false as f_timestamp, false as f_dimensions
            from raw.quarantined_events
            where resolved_at is null and reason in ('unknown_customer', 'unknown_meter')
        """)
        base_seq = con.execute("""
            select greatest((select coalesce(max(landing_seq), 0) from raw.usage_events),
                            (select coalesce(max(landing_seq), 0) from raw.quarantined_events))
        """).fetchone()[0]
        con.execute(_outcome_sql(int(base_seq)))
        recheck_changes = con.execute(f"""
            select count(*) from {OUT} o join raw.quarantined_events q on q.landing_seq = o.q_seq
            where o.phase = 0 and (o.outcome <> 'quarantined' or o.reason <> q.reason)
        """).fetchone()[0]

        params = {"run": run_id, "now": now}
        con.execute(f"""
            insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
                dimensions, source_file, row_number, file_sha256, ingest_run_id, landed_at,
                landing_seq, is_relanded)
            select o.event_id, o.customer_id, o.meter_id, o.value, o.event_at, o.dimensions,
                   coalesce(f.source_file, q.source_file), o.row_number,
                   coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz,
                   o.landing_seq, o.phase = 0
            from {OUT} o
            left join {FILES} f on f.file_idx = o.file_idx
            left join raw.quarantined_events q on o.phase = 0 and q.landing_seq = o.q_seq
            where o.outcome = 'landed'
            order by o.ord
        """, params)
        con.execute(f"""
            insert into raw.duplicate_events (source_file, row_number, event_id, file_sha256,
                ingest_run_id, landed_at, is_relanded)
            select coalesce(f.source_file, q.source_file), o.row_number, o.event_id,
                   coalesce(f.file_sha256, q.file_sha256), $run, $now::timestamptz, o.phase = 0
            from {OUT} o
            left join {FILES} f on f.file_idx = o.file_idx
            left join raw.quarantined_events q on o.phase = 0 and q.landing_seq = o.q_seq
            where o.outcome = 'duplicate'
            order by o.ord
        """, params)
        con.execute(f"""
            insert into raw.quarantined_events (source_file, row_number, raw_row, reason,
                landed_at, resolved_at, file_sha256, ingest_run_id, landing_seq, event_id,
                customer_id, meter_id, value, event_at, dimensions)
            select f.source_file, o.row_number, o.raw_row, o.reason, $now::timestamptz, null,
                   f.file_sha256, $run, o.landing_seq, o.event_id, o.customer_id, o.meter_id,
                   o.value, o.event_at, o.dimensions
            from {OUT} o join {FILES} f on f.file_idx = o.file_idx
            where o.phase = 1 and o.outcome = 'quarantined'
            order by o.ord
        """, params)
        con.execute(f"""
            update raw.quarantined_events q set resolved_at = $now::timestamptz
            from {OUT} o
            where o.phase = 0 and q.landing_seq = o.q_seq and o.outcome <> 'quarantined'
        """, {"now": now})
        con.execute(f"""
            update raw.quarantined_events q set reason = o.reason
            from {OUT} o
            where o.phase = 0 and q.landing_seq = o.q_seq and o.outcome = 'quarantined'
              and q.reason <> o.reason
        """)

        counts = con.execute(f"""
            select file_idx, outcome, reason, count(*) from {OUT}
            where phase = 1 group by all
        """).fetchall()
        per_file = [FileResult(f.source_file, f.sha256, f.fmt or "") for f in staged]
        for idx, outcome, reason, n in counts:
            fr = per_file[idx]
            fr.read += n
            if outcome == "landed":
                fr.landed += n
            elif outcome == "duplicate":
                fr.duplicates += n
            else:
                fr.quarantined += n
                fr.quarantined_by_reason[reason] = fr.quarantined_by_reason.get(reason, 0) + n
        for fr in per_file:
            fr.quarantined_by_reason = dict(_ordered_reasons(fr.quarantined_by_reason))
        report.files = per_file

        rel = Relanded()
        for outcome, reason, n in con.execute(f"""
            select outcome, reason, count(*) from {OUT} where phase = 0 group by all
        """).fetchall():
            rel.checked += n
            if outcome == "landed":
                rel.landed += n
            elif outcome == "duplicate":
                rel.duplicates += n
            else:
                rel.still_quarantined += n
                rel.by_reason[reason] = rel.by_reason.get(reason, 0) + n
        rel.by_reason = dict(_ordered_reasons(rel.by_reason))
        report.relanded = rel
        report.out_of_range_months = _out_of_range_months(con, now)

        if per_file:
            con.executemany("""
                insert into raw.landed_files (file_sha256, source_file, file_format, size_bytes,
                    ingest_run_id, landed_at, rows_read, rows_landed, rows_duplicate,
                    rows_quarantined)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [[f.sha256, f.source_file, f.fmt, f.size, run_id, now, r.read, r.landed,
                   r.duplicates, r.quarantined] for f, r in zip(staged, per_file, strict=True)])
        # a run that finds nothing new and changes nothing writes nothing (not even its run row)
        changed = bool(per_file or report.unreadable or recheck_changes)
        finished = now + timedelta(seconds=time.monotonic() - clock)
        if changed:
            con.execute("""
                insert into raw.ingest_runs (ingest_run_id, started_at, finished_at,
                    files_landed, files_skipped, files_unreadable, rows_relanded)
                values (?, ?, ?, ?, ?, ?, ?)
            """, [run_id, now, finished, len(per_file), len(report.already_landed),
                  len(report.unreadable), rel.landed])
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        except duckdb.Error:
            pass
        raise
    say(f"landed {report.totals()['landed']} rows from {len(staged)} files")
