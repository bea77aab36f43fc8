"""Where a page reads: one short read-only connection per request, and how fresh it is.

The readers' snapshot (``$METERLINE_HOME/snapshot/warehouse.duckdb``, orchestration/lib/
snapshot.py) is replaced by an atomic rename at the end of every write, never held by a writer,
and small: a page reads it while `ingest` or `bill` runs. Opening a DuckDB database costs about
14 ms of CPU (duckdb 2.0.1), more than a page's queries, so the server keeps ONE database per
snapshot FILE (``_Snapshots``): a request stats the path and, while the file there is the one
already open, reads it on a new cursor (under a millisecond); a file replaced since is opened
once by the first request that finds it, and the database of the old one is closed when its
last request ends. What a request reads is therefore always the file at the path when it
began, never an older one. Each such database is locked when opened: the file attached read
only, external access off, configuration locked, so the pages' SQL reads that file and nothing
else, ever. Without a snapshot (a home from before it existed), the live warehouse is opened
per request with a short retry; a writer holding it, or no data at all, is ``NoData`` (the
page answers 503). No connection to the warehouse outlives its request: it would block the
writer."""

from __future__ import annotations

import contextlib
import os
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
        con.execute("set global TimeZone = 'UTC'")  # every cursor of it too
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


def _file_identity(path: Path) -> tuple[int, int, int, int] | None:
    """Which file is at ``path`` now (a replacement is a new inode and a new mtime)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class _Open:
    """One snapshot file's database and the requests reading it."""

    def __init__(self, identity, con: duckdb.DuckDBPyConnection, freshness: Freshness):
        self.identity, self.con, self.freshness, self.readers = identity, con, freshness, 0


class _Snapshots:
    """The server's open snapshot databases, one per file, keyed by the path and its file."""

    def __init__(self):
        self._lock = threading.Lock()
        self._current: dict[str, _Open] = {}

    @contextlib.contextmanager
    def cursor(self, cfg: Settings) -> Iterator[tuple[duckdb.DuckDBPyConnection, Freshness]]:
        path = cfg.snapshot_path
        key = str(path)
        # the file at the path now; the database opened below holds it or one that replaced it
        # since (never an older one), so keying it by this identity serves no request an older
        # file than the one at the path when that request began
        identity = _file_identity(path)
        if identity is None:
            raise FileNotFoundError(path)
        with self._lock:
            entry = self._current.get(key)
            if entry is not None and entry.identity == identity:
                entry.readers += 1
            else:
                entry = None
        if entry is None:
            con = _open(cfg, path)  # outside the lock: about 14 ms
            try:
                opened = _Open(identity, con, _snapshot_freshness(con))
            except BaseException:
                con.close()
                raise
            stale = None
            with self._lock:
                entry = self._current.get(key)
                if entry is not None and entry.identity == identity:  # another request won
                    stale = opened
                else:
                    if entry is not None and entry.readers == 0:
                        stale = entry
                    self._current[key] = entry = opened
                entry.readers += 1
            if stale is not None:
                stale.con.close()
        cur = entry.con.cursor()
        try:
            cur.execute("use data")
            yield cur, entry.freshness
        finally:
            cur.close()
            with self._lock:
                entry.readers -= 1
                retire = entry.readers == 0 and self._current.get(key) is not entry
            if retire:
                entry.con.close()


_SNAPSHOTS = _Snapshots()


def _connect(cfg: Settings) -> tuple[duckdb.DuckDBPyConnection, Freshness]:
    """The live warehouse, when there is no readers' snapshot."""
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
    with contextlib.ExitStack() as stack:
        opened = None
        if cfg.snapshot_path.exists():
            with contextlib.suppress(FileNotFoundError, duckdb.IOException):  # removed just now
                opened = stack.enter_context(_SNAPSHOTS.cursor(cfg))
        if opened is None:
            con, freshness = _connect(cfg)
            stack.callback(con.close)
            opened = con, freshness
        yield opened
