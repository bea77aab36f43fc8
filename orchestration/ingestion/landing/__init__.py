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
   as text (``read_text``, split into lines; JSON Lines in pieces of about 64 MiB cut at line
   ends, ``.jsonl.gz`` decompressed as it is read: ``text.pieces``)
   and parsed by DuckDB's JSON functions and regular expressions; Parquet through
   ``read_parquet(..., file_row_number = true)`` with per-column-type expressions; a *typed*
   Parquet file (VARCHAR ids, an exact DECIMAL or 64-bit integer value, TIMESTAMPTZ, MAP
   dimensions) is not copied at all: staging reads it once into the batch's narrow KEYS table
   (every rule checked on its typed columns), and the write reads it again
   (``stage_parquet.TypedSource``). A file that
   cannot be read (truncated gzip, corrupt Parquet, invalid UTF-8, a CSV without a header) is
   reported in ``unreadable`` and lands nothing; it is not recorded in ``raw.landed_files``, so
   the next run retries it.
3. In batches of whole files, in landing order: once about ``LAND_BATCH_ROWS`` (4M) rows are
   staged, they are landed before the next file is read, so the run's temp tables hold one
   batch, not every file (a 100M-event run would otherwise spill tens of GB). Each batch is one
   transaction: the unresolved quarantine rows with reason ``unknown_customer`` /
   ``unknown_meter`` join the first batch (first in landing order, by their ``landing_seq``),
   every row is checked by one CASE in contract order into KEYS (position, ``event_id``, first
   failed rule), duplicates are decided (the first landed copy of an ``event_id`` wins: existing
   ``raw.usage_events`` first, earlier batches of this run included, then this run's order) on
   the few rows that need it: an id landed before or carried by several valid rows, or a row
   breaking a rule (about 1%; they alone are read whole, into WIDE, and their outcomes go to
   EXC). Every other row lands: ``raw.usage_events`` gets every row of the batch not in EXC,
   with ``landing_seq`` = the run's base + its position (no sort, no join back to a wide copy).
   All tables are written, with the batch's
   ``raw.landed_files`` rows and the run's ``raw.ingest_runs`` row as it stands. Any error rolls
   the batch back; the batches before it stay landed and recorded (a file lands whole or not at
   all), and the next run lands the rest. Batches give, row for row, what one batch of all the
   files gives (tests/test_landing_batches.py). Each batch counts, in one aggregate over KEYS,
   the rows it landed (from files or re-checked) dated before ``PARTITION_START``
   (2020-01) or after the month of ``now``: ``out_of_range_months``
   (``{"1969-12": 3, "9999-01": 1}``, UTC months).
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
  ``-0`` is 0 (not negative). ``negative_value`` applies to count, unique_count, max and latest
  meters only: sum meters take negative corrections, level meters (time_weighted_sum,
  running_total) signed changes.
* Timestamps: ``T``/``Z`` upper case only; years 0001-9999; seconds 00-59 (no leap second);
  offsets up to 23:59. Epoch milliseconds must be at least 10^12 (2001-09-09T01:46:40Z: below it
  they are almost surely epoch seconds; the file's report gets a note saying so, computed from
  its quarantined rows, ``FileResult.notes``) and at most 9999-12-31T23:59:59.999Z; a JSON number
  with a fraction or exponent is ``invalid_timestamp``. Parquet: TIMESTAMP WITH TIME
  ZONE is an instant; integer columns are epoch ms; TIMESTAMP / TIMESTAMP_NS / DATE and any other
  type are ``invalid_timestamp``.
* Dimensions: a JSON object whose values are all strings; duplicate keys are
  ``invalid_dimensions``. Parquet MAP(VARCHAR, VARCHAR) (a NULL map value is invalid), STRUCT of
  strings, or a JSON string. Stored as canonical JSON with keys in byte order (``{}`` when none).
* ``raw.ingest_runs`` gets one row per call that changed something (landed a file, found an
  unreadable one, or changed a quarantined row on re-check). A call with nothing new writes
  nothing at all, so repeating ``ingest`` is a no-op on every table.
* Files given in ``paths`` that do not exist, or have another extension, are reported unreadable.

Where each step lives: ``files`` (the accepted suffixes, listing, hashing), ``stage`` with
``stage_jsonl``, ``stage_csv``, ``stage_parquet`` and ``text`` (step 2), ``classify``,
``outcomes`` and ``write`` (step 3, ``write.ingest`` drives the call), ``model`` (the lookup
and the report), ``sqltext`` (the temp tables); SQL longer than ~20 lines is in ``sql/``.
"""

from orchestration.ingestion.landing.files import landable_files
from orchestration.ingestion.landing.model import REASONS, IngestError, IngestReport, Lookup
from orchestration.ingestion.landing.write import ingest

__all__ = [
    "REASONS",
    "IngestError",
    "IngestReport",
    "Lookup",
    "ingest",
    "landable_files",
]
