"""The Dagster instance of a home and the writer's turn: run tags, pools, the instance's
configuration, and how a process waits for its turn to write the one DuckDB warehouse.

Below the domains (jobs and assets take their tag and pool from here) and above `lib/`."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestration.lib.settings import Settings

WRITER_TAG = "meterline/writer"  # every job carries it: runs that write the warehouse
# Every job writes the warehouse: the home's dagster.yaml lets one run with this tag be in
# progress at a time (`writer_turn` says how the CLI takes its turn).
WRITER = {WRITER_TAG: "warehouse"}
# Every step that opens the warehouse runs in this pool; the home's dagster.yaml gives each pool
# one slot, so there is never more than one writer on the DuckDB file (CLI, UI, sensors alike).
DUCKDB_POOL = "duckdb"

DAGSTER_YAML = f"""\
# Written by meterline. One writer on the DuckDB warehouse, at two levels:
# - runs: at most one run tagged {WRITER_TAG} is in progress. The run queue (sensor, schedule and
#   UI launches under `meterline ui`) applies this limit; the CLI waits for it itself.
# - steps: every step that opens the warehouse runs in the `duckdb` pool, one step at a time
#   across all runs, as a second guard.
concurrency:
  pools:
    default_limit: 1
  runs:
    tag_concurrency_limits:
      - key: {WRITER_TAG}
        limit: 1
telemetry:
  enabled: false
# The "Join the Dagster community" dialog would cover the first screen of every new home.
nux:
  enabled: false
# Dagster's SQLite event log (history/runs/, as by default), keeping its connections open.
event_log_storage:
  module: orchestration.instance
  class: MeterlineEventLogStorage
  config:
    base_dir: {{base_dir}}
"""


def dagster_yaml(cfg: Settings) -> str:
    """The home's dagster.yaml: DAGSTER_YAML with the home's absolute event log folder."""
    import json

    return DAGSTER_YAML.replace("{base_dir}",
                                json.dumps(str((cfg.dagster_home / "history" / "runs").resolve())))


def prepare_instance(cfg: Settings) -> None:
    """Point DAGSTER_HOME at the home's instance (absolute) and make sure it is configured."""
    cfg.dagster_home.mkdir(parents=True, exist_ok=True)
    config = cfg.dagster_home / "dagster.yaml"
    ours = dagster_yaml(cfg)
    if not config.exists() or (config.read_text().startswith("# Written by meterline.")
                               and config.read_text() != ours):
        config.write_text(ours)  # ours, or an older version of ours (or of a moved home)
    os.environ["DAGSTER_HOME"] = str(cfg.dagster_home)
    os.environ["METERLINE_HOME"] = str(cfg.home)
    os.environ["METERLINE_CATALOG_DIR"] = str(cfg.catalog_dir)
    os.environ.setdefault("DBT_USE_COLORS", "false")  # dbt's messages reach people as plain text


def reclaim_dead_runs(instance: Any) -> list[str]:
    """A run killed with SIGKILL keeps its pool slot and stays STARTED; the next run would wait
    forever. Runs started by this CLI carry their process id: fail those whose process is gone
    and free their slots."""
    from dagster import DagsterRunStatus, RunsFilter

    reclaimed = []
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED,
                                                  DagsterRunStatus.STARTING]))
    for run in runs:
        pid = run.tags.get("meterline/pid")
        if not pid or _alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"process {pid} is gone; slot reclaimed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reclaimed.append(run.run_id)
    return reclaimed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def active_writer_runs(instance: Any) -> list[Any]:
    """Runs tagged as writers that are in progress (queued runs are not: they wait for us)."""
    from dagster import DagsterRunStatus, RunsFilter

    return list(instance.get_runs(RunsFilter(
        statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                  DagsterRunStatus.CANCELING],
        tags={WRITER_TAG: "warehouse"})))


@contextlib.contextmanager
def writer_turn(cfg: Settings, instance: Any, *, poll_seconds: float = 0.5) -> Iterator[None]:
    """Wait for this process's turn to write: runs that write the warehouse are serialized.

    CLI processes queue on an exclusive lock file in the instance folder, then wait until no
    other writer run (one the run queue launched for a sensor, the schedule or the UI) is in
    progress. The queue in turn counts this run while it is in progress (the tag limit in
    dagster.yaml), so it does not start one beside it. Slots and runs of CLI processes killed
    with -9 are reclaimed first."""
    import fcntl
    import time

    lock_path = cfg.dagster_home / "writer.lock"
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write("waiting for another meterline command to finish writing ...\n")
            fcntl.flock(lock, fcntl.LOCK_EX)
        said = False
        while True:
            reclaim_dead_runs(instance)
            others = active_writer_runs(instance)
            if not others:
                break
            if not said:
                names = ", ".join(f"{r.job_name} {r.run_id[:8]}" for r in others)
                sys.stderr.write(f"waiting for the run in progress to finish ({names}) ...\n")
                said = True
            time.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes dbt writes into its messages
_LOCK_PID = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def describe_lock_holder(message: str) -> str | None:
    """DuckDB's "Could not set lock on file" error, as a sentence naming the process that holds
    the warehouse and what to do; None for any other error."""
    if "Could not set lock on file" not in message:
        return None
    match = _LOCK_PID.search(message)
    if not match:
        return ("another process holds the warehouse's lock: let it finish (or stop it), then "
                "run the command again")
    program, pid = match.group(1), int(match.group(2))
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace").strip()
    except OSError:
        command = program
    return (f"process {pid} ({command[:160]}) holds the warehouse's lock, and it is not a "
            f"Meterline run this command can wait for: let it finish, or stop it with "
            f"`kill {pid}`, then run the command again")


def check_warehouse_free(cfg: Settings, *, wait_s: float = 5.0) -> None:
    """Before a run starts writing: is the DuckDB file free? A process outside Meterline's runs
    (a notebook holding a read-write connection, a dbt started by hand) is named, after a
    short wait for one that is about to exit."""
    import time

    import duckdb

    from orchestration.lib.readers import WarehouseBusy

    if not cfg.warehouse_path.exists():
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            duckdb.connect(str(cfg.warehouse_path)).close()
            return
        except duckdb.IOException as exc:
            holder = describe_lock_holder(str(exc))
            if holder is None:
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(f"{cfg.warehouse_path}: {holder}") from None
            time.sleep(0.25)


def _event_log_storage_class() -> type:
    """The home's event log storage: Dagster's SQLite storage (one file per run and an index),
    keeping one engine per recent file instead of creating, connecting, checkpointing and
    disposing a SQLAlchemy engine for every event, and committing in WAL mode without an fsync
    per event (``synchronous=NORMAL``: a killed process loses nothing it committed; only a power
    cut can lose the last events, never corrupt the file). A bill writes ~500 events."""
    from collections import OrderedDict

    import sqlalchemy as db
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
        SQLITE_BUSY_TIMEOUT_SECONDS,
        SqliteEventLogStorage,
    )

    class MeterlineEventLogStorage(SqliteEventLogStorage):
        KEPT_ENGINES = 8  # the index and the runs being written or watched

        def __init__(self, base_dir: str, inst_data: Any = None):
            # before Dagster's own set-up, which already connects (index creation, reindexing)
            self._meterline_engines: OrderedDict[str, Any] = OrderedDict()
            super().__init__(base_dir, inst_data=inst_data)

        @classmethod
        def from_config_value(cls, inst_data, config_value):
            # Dagster's builds its own class, not cls
            return cls(inst_data=inst_data, **config_value)

        def _engine(self, shard: str) -> Any:
            engines = self._meterline_engines
            engine = engines.get(shard)
            if engine is None:
                engine = db.create_engine(self.conn_string_for_shard(shard),
                                          connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

                @db.event.listens_for(engine, "connect")
                def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                    dbapi_connection.execute("pragma synchronous = normal")

                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                engines[shard] = engine
                while len(engines) > self.KEPT_ENGINES:
                    engines.popitem(last=False)[1].dispose()
            engines.move_to_end(shard)
            return engine

        @contextlib.contextmanager
        def _connect(self, shard: str) -> Iterator[Any]:
            with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
                yield conn

        def dispose(self) -> None:
            while self._meterline_engines:
                self._meterline_engines.popitem()[1].dispose()
            super().dispose()

    return MeterlineEventLogStorage


def __getattr__(name: str) -> Any:
    # dagster.yaml names the class by module and attribute: built on first use, so importing this
    # module does not import Dagster
    if name == "MeterlineEventLogStorage":
        cls = _event_log_storage_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
