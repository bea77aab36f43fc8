"""Where a page reads: one short read-only connection per request, and how fresh it is.

The readers' snapshot (``$METERLINE_HOME/snapshot/warehouse.duckdb``, orchestration/lib/
snapshot.py) is replaced by an atomic rename at the end of every write, never held by a writer,
and small: a page reads it while `ingest` or `bill` runs, and a new connection sees the newest
one. The file is attached to a fresh in-memory database for each request (DuckDB caches one
database per path and process: a plain ``connect`` could keep serving a snapshot already
replaced while another request still holds it). Without a snapshot (a home from before it
existed), the live warehouse is read with a short retry; a writer holding it, or no data at all,
is ``NoData`` (the page answers 503). No connection outlives its request: a reader on the
warehouse would block the writer."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from orchestration.lib.settings import Settings

RETRIES, WAIT_S = 3, 0.2


class NoData(Exception):
    """Nothing to read yet, or only a busy warehouse: the page answers 503 with this text."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Freshness:
    as_of: datetime | None
    source: str  # "snapshot" or "warehouse"

    @property
    def as_of_text(self) -> str:
        if self.as_of is None:
            return "unknown"
        return self.as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def what(self) -> str:
        if self.source == "snapshot":
            return "the last completed write, as the readers' snapshot holds it"
        return ("the last recorded ingest, check or publish, read from the live warehouse: no "
                "readers' snapshot exists yet")

    def to_dict(self) -> dict:
        return {"as_of": None if self.as_of is None else self.as_of.astimezone(UTC).isoformat(),
                "source": self.source, "what": self.what}


def _open(cfg: Settings, path: Path) -> duckdb.DuckDBPyConnection:
    config = cfg.duckdb_config(path)
    con = duckdb.connect(":memory:", config={"threads": config["threads"],
                                             "memory_limit": config["memory_limit"]})
    try:
        con.execute("set TimeZone = 'UTC'")
        quoted = str(path).replace("'", "''")  # ATTACH takes no parameters
        con.execute(f"attach '{quoted}' as data (read_only)")
        con.execute("use data")
        # the pages' SQL reads the attached file and nothing else, ever
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(con.execute(
        "select count(*) from duckdb_tables() where database_name = 'data' "
        "and schema_name = ? and table_name = ?", [schema, name]).fetchone()[0])


def _snapshot_freshness(con: duckdb.DuckDBPyConnection) -> Freshness:
    built_at = con.execute("select max(built_at) from main.snapshot_about").fetchone()[0]
    return Freshness(built_at, "snapshot")


def _warehouse_freshness(con: duckdb.DuckDBPyConnection) -> Freshness:
    stamps = []
    for schema, table, column in (("raw", "ingest_runs", "finished_at"),
                                  ("billing", "reconciliation_results", "checked_at"),
                                  ("billing", "published_periods", "published_at")):
        if _has_table(con, schema, table):
            stamps.append(con.execute(
                f'select max("{column}") from "{schema}"."{table}"').fetchone()[0])
    stamps = [s for s in stamps if s is not None]
    return Freshness(max(stamps) if stamps else None, "warehouse")


def _connect(cfg: Settings) -> tuple[duckdb.DuckDBPyConnection, Freshness]:
    if cfg.snapshot_path.exists():
        with contextlib.suppress(FileNotFoundError, duckdb.IOException):
            con = _open(cfg, cfg.snapshot_path)
            try:
                return con, _snapshot_freshness(con)
            except BaseException:
                con.close()
                raise
    if not cfg.warehouse_path.exists():
        raise NoData("No data yet: this home has no warehouse.",
                     "Land events with `meterline ingest`, then bill a month with "
                     "`meterline bill --period YYYY-MM`.")
    for attempt in range(RETRIES):
        try:
            con = _open(cfg, cfg.warehouse_path)
        except duckdb.IOException:
            if attempt + 1 < RETRIES:
                time.sleep(WAIT_S)
            continue
        try:
            return con, _warehouse_freshness(con)
        except BaseException:
            con.close()
            raise
    raise NoData("A run is writing the warehouse and no readers' snapshot exists yet.",
                 "Reload this page when `meterline ingest` or `meterline bill` ends.")


@contextlib.contextmanager
def reading(cfg: Settings) -> Iterator[tuple[duckdb.DuckDBPyConnection, Freshness]]:
    """A read-only connection for one request and the freshness of what it reads."""
    con, freshness = _connect(cfg)
    try:
        yield con, freshness
    finally:
        con.close()


# --------------------------------------------------------------------------- the API's reads
# Opening a DuckDB database costs about 12 ms of CPU (duckdb 2.0.1), more than the API's
# queries: under load (20 clients on 2 cores, beside a `bill`) that alone is most of a
# request. ``reading_shared`` attaches the snapshot to ONE in-memory database of the process
# instead, on a new cursor (its own connection) under a name of its own, and detaches it when
# the request ends (under a millisecond). Each request still attaches the file it finds at that
# moment: a snapshot replaced since is seen by the next request, and one still attached by an
# earlier request stays that request's. Unlike ``reading``, external access cannot be switched
# off for it (a later ATTACH needs it): only fixed, parameterized SQL (api_queries.py) may run
# on it.
_shared_lock = threading.Lock()
_shared_dbs: dict[tuple[str, str], duckdb.DuckDBPyConnection] = {}
_attach_ids = itertools.count(1)


def _shared_cursor(cfg: Settings) -> duckdb.DuckDBPyConnection:
    config = cfg.duckdb_config(cfg.snapshot_path)
    key = (config["threads"], config["memory_limit"])
    with _shared_lock:
        db = _shared_dbs.get(key)
        if db is None:
            db = _shared_dbs[key] = duckdb.connect(":memory:", config={
                "threads": config["threads"], "memory_limit": config["memory_limit"]})
        return db.cursor()


@contextlib.contextmanager
def reading_shared(cfg: Settings) -> Iterator[tuple[duckdb.DuckDBPyConnection, Freshness]]:
    """``reading`` for the API's fixed queries: the same snapshot, without opening a database
    per request (the live warehouse, when there is no snapshot, is read as ``reading`` does)."""
    cursor, alias = None, f"snapshot_{next(_attach_ids)}"
    if cfg.snapshot_path.exists():
        cursor = _shared_cursor(cfg)
        try:
            cursor.execute("set TimeZone = 'UTC'")
            quoted = str(cfg.snapshot_path).replace("'", "''")  # ATTACH takes no parameters
            cursor.execute(f"attach '{quoted}' as {alias} (read_only)")
        except (FileNotFoundError, duckdb.IOException):  # replaced or removed just now
            cursor.close()
            cursor = None
        except BaseException:
            cursor.close()
            raise
    if cursor is None:
        with reading(cfg) as opened:
            yield opened
        return
    try:
        cursor.execute(f"use {alias}")
        freshness = _snapshot_freshness(cursor)
        yield cursor, freshness
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("use memory")
            cursor.execute(f"detach {alias}")
        cursor.close()
