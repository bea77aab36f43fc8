"""The readers' snapshot: a small DuckDB file of what readers need, published atomically.

DuckDB lets no other process open the warehouse while a writer holds it, so every writing step
ends by publishing ``$METERLINE_HOME/snapshot/warehouse.duckdb`` for `invoices`, `explain`,
`verify`, the sensor and notebooks (orchestration/lib/readers.py). It is not a copy of the
warehouse: it holds the tables readers read, under the same schema and table names, and no
per-event table, so publishing it costs the same at 1,000 or 100 million events:

- ``catalog.*``, ``reference.*`` and ``billing.*`` (the price book, currencies, the published
  ledger with its seals and the reconciliation results), as tables;
- ``marts.*`` but ``fct_billed_events`` (one row per event): invoices, lines, meter and unbilled
  usage and the events each line shows (``fct_invoice_line_events``), views written as tables;
- ``raw.landed_files``, ``raw.ingest_runs`` and the unresolved rows of ``raw.quarantined_events``
  (what is still to fix: a share of the bad rows, not of the events);
- ``main.snapshot_about``: one row, when and from which warehouse state it was built.

A reader tells the snapshot by that table (``is_snapshot``); what needs the events themselves
(`catalog --period`'s usage checks) waits for the warehouse instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path

import duckdb

from orchestration.lib import clock, diskspace, readers
from orchestration.lib import settings as settings_lib

#: Schemas served whole (tables, and views written as tables).
SERVED_SCHEMAS = ("catalog", "reference", "billing", "marts")
#: Tables of other schemas that are served, with the rows served (None: all).
SERVED_TABLES = {("raw", "landed_files"): None, ("raw", "ingest_runs"): None,
                 # what is still to fix: a share of the bad rows, not of the events
                 ("raw", "quarantined_events"): "resolved_at is null"}
#: Per-event relations of the served schemas that are not.
NOT_SERVED = (("marts", "fct_billed_events"),)
ABOUT = "snapshot_about"

# DuckDB's file header (the main header and its two database headers) changes on every
# checkpoint, and a writer's close checkpoints: with the size, times and inode it tells whether
# the file changed since the snapshot was built, without reading the rest.
_HEADER_BYTES = 3 * 4096


def _signature(path: Path) -> dict:
    """What identifies the warehouse file's content cheaply (no full read)."""
    st = path.stat()
    with path.open("rb") as fh:
        header = hashlib.sha256(fh.read(_HEADER_BYTES)).hexdigest()
    wal = Path(f"{path}.wal")
    wal_st = wal.stat() if wal.exists() else None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino, "device": st.st_dev, "header_sha256": header,
            "wal": None if wal_st is None else [wal_st.st_size, wal_st.st_mtime_ns]}


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".source.json")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_current(source: Path | str, target: Path | str) -> bool:
    """The snapshot ``target`` was built from ``source`` as it is now."""
    source, target = Path(source), Path(target)
    try:
        stamp = json.loads(_stamp_path(target).read_text())
        return (target.stat().st_size == stamp.get("snapshot_size")
                and stamp.get("source") == _signature(source))
    except (OSError, ValueError, AttributeError):
        return False


def is_snapshot(con: duckdb.DuckDBPyConnection) -> bool:
    """``con`` reads the snapshot, not the warehouse."""
    return readers.table_exists(con, "main", ABOUT)


def served_relations(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str]]:
    """(schema, name) of every table or view of ``database`` the snapshot serves."""
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = $db "
        "union all select schema_name, view_name from duckdb_views() "
        "where database_name = $db and not internal", {"db": database}).fetchall()
    return sorted((schema, name) for schema, name in rows
                  if (schema in SERVED_SCHEMAS or (schema, name) in SERVED_TABLES)
                  and (schema, name) not in NOT_SERVED)


def _build(source: Path, tmp: Path, signature: dict) -> None:
    """Write the snapshot's tables into the new file ``tmp`` from ``source``, read-only."""
    con = duckdb.connect(str(tmp), config=settings_lib.duckdb_config(tmp))
    try:
        con.execute("set TimeZone = 'UTC'")
        quoted = str(source).replace("'", "''")  # ATTACH takes no parameters
        con.execute(f"attach '{quoted}' as w (read_only)")
        for schema, name in served_relations(con, "w"):
            con.execute(f'create schema if not exists "{schema}"')
            rows = SERVED_TABLES.get((schema, name))
            con.execute(f'create table "{schema}"."{name}" as select * from w."{schema}"."{name}"'
                        + (f" where {rows}" if rows else ""))
        # the one clock (METERLINE_NOW pins it), as every instant Meterline records
        con.execute(f"create table main.{ABOUT} as select $built_at::timestamptz as built_at, "
                    f"$signature::json as source",
                    {"signature": json.dumps(signature), "built_at": clock.now()})
        con.execute("detach w")
        con.execute("checkpoint")
    finally:
        con.close()
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, duckdb.Error) and "no space left on device" in str(exc).lower()


def publish(source: Path | str, target: Path | str) -> bool:
    """Build the readers' snapshot of the warehouse ``source`` and rename it over ``target``;
    True when it built one, False when the snapshot was already current.

    - A warehouse unchanged since the last snapshot (its signature is recorded beside the
      snapshot, ``<target>.source.json``) is not read again: a command that wrote nothing costs
      nothing. The snapshot's mtime is set to now (readers show it as "the snapshot of <time>").
    - Before building, the free space must hold a snapshot the size of the last one plus
      ``diskspace.HEADROOM_BYTES``, else ``diskspace.DiskFull`` (nothing written); a build that
      runs out of space anyway raises DiskFull too.
    - On any error the new file is removed and the previous snapshot stays as it was.
    Call it with no connection open on ``source`` (DuckDB checkpoints on close)."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    stamp_path = _stamp_path(target)
    for leftover in (tmp, Path(f"{tmp}.wal")):  # left by a process killed while building
        _remove(leftover)
    if is_current(source, target):
        with contextlib.suppress(OSError):
            os.utime(target)
        return False
    signature = _signature(source)
    estimate = target.stat().st_size if target.exists() else 0
    diskspace.require_free(target.parent, estimate)
    try:
        _build(source, tmp, signature)
        _remove(stamp_path)  # no stamp describes a snapshot it was not built for
        os.replace(tmp, target)
    except BaseException as exc:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            _remove(leftover)
        if not isinstance(exc, diskspace.DiskFull) and _is_disk_full(exc):
            raise diskspace.DiskFull(target.parent, estimate + diskspace.HEADROOM_BYTES,
                                     diskspace.free_bytes(target.parent)) from exc
        raise
    # The stamp is a few hundred bytes; without it the next call builds again (never wrong).
    stamp_tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    try:
        stamp_tmp.write_text(json.dumps({"source": signature,
                                         "snapshot_size": target.stat().st_size}))
        os.replace(stamp_tmp, stamp_path)
    except OSError:
        _remove(stamp_tmp)
    return True
