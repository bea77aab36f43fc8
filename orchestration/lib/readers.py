"""Read-only access for `invoices`, `explain`, `catalog --period` and notebooks.

DuckDB lets no other process open the file while a writer holds it, not even read-only. Readers
therefore open the live warehouse when it is free and otherwise the snapshot that every writing
step publishes by an atomic rename when it ends (`$METERLINE_HOME/snapshot/warehouse.duckdb`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from decimal import Context, Decimal
from pathlib import Path

import duckdb

from orchestration.lib import warehouse
from orchestration.lib.settings import Settings, UsageError


class WarehouseBusy(UsageError):
    """A run holds the warehouse and no snapshot exists yet."""


def writer_turn_held(cfg: Settings) -> bool:
    """A `meterline` command holds the writer's turn (orchestration/instance.py writer_turn),
    read from the kernel's table of file locks (Linux's /proc/locks), never by taking the lock.
    Between two steps of a run the warehouse is free for a moment, and a reader opening it then
    would make the run's next step fail; so while a turn is held, readers read the snapshot.
    Without /proc/locks this says False and only the warehouse's own lock is looked at."""
    try:
        st = (cfg.dagster_home / "writer.lock").stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(key in line.split() for line in table.splitlines() if "FLOCK" in line)


@contextlib.contextmanager
def reader(cfg: Settings, *, retries: int = 3, wait_s: float = 0.2,
           notice=lambda msg: print(msg, file=sys.stderr)) -> Iterator[duckdb.DuckDBPyConnection]:
    if not cfg.warehouse_path.exists():
        raise UsageError(
            f"no warehouse at {cfg.warehouse_path}: run `meterline ingest` and "
            f"`meterline bill --period YYYY-MM` first"
        )
    con = None
    # a run between two steps leaves the file free for a moment: read the snapshot meanwhile
    if cfg.snapshot_path.exists() and writer_turn_held(cfg):
        retries = 0
    for attempt in range(retries):
        try:
            con = warehouse.connect(cfg.warehouse_path, read_only=True)
            break
        except duckdb.IOException:
            if attempt + 1 < retries:
                time.sleep(wait_s)
    if con is None:
        if not cfg.snapshot_path.exists():
            raise WarehouseBusy(
                "the warehouse is busy (a run is writing) and no snapshot exists yet: "
                "try again when the run ends"
            )
        con = warehouse.connect(cfg.snapshot_path, read_only=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                              time.gmtime(cfg.snapshot_path.stat().st_mtime))
        notice(f"note: a run is writing the warehouse; reading the snapshot of {stamp}")
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()[0])


# DECIMAL(38, 12) has 38 digits, Decimal's default context 28: normalizing or quantizing under
# the default would round a large quantity (or raise for a large amount) when it is displayed.
_EXACT = Context(prec=80)


def format_money(amount: Decimal | None, minor_unit: int) -> str:
    """Exact text of an amount at its currency's minor unit (amounts are already rounded)."""
    if amount is None:
        return ""
    quantum = Decimal(1).scaleb(-minor_unit)
    return str(Decimal(amount).quantize(quantum, context=_EXACT))


def format_quantity(value: Decimal | None) -> str:
    """Exact text of a quantity, trailing zeros dropped (``12.500000000000`` -> ``12.5``)."""
    if value is None:
        return ""
    return format(_EXACT.normalize(Decimal(value)), "f")


def money_or_none(amount: Decimal | None, minor_unit: int) -> str | None:
    """``format_money`` for JSON: None stays null."""
    return None if amount is None else format_money(amount, minor_unit)


def quantity_or_none(value: Decimal | None) -> str | None:
    """``format_quantity`` for JSON: None stays null."""
    return None if value is None else format_quantity(value)
