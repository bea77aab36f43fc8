"""Run Meterline's jobs through Dagster on the home's own instance, so every run the CLI starts
shows in the Dagster UI (`dagster dev` with DAGSTER_HOME=$METERLINE_HOME/dagster)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from orchestration.lib import diskspace
from orchestration.lib.settings import Settings

WRITER_TAG = "meterline/writer"  # every job carries it: runs that write the warehouse

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
"""


def prepare_instance(cfg: Settings) -> None:
    """Point DAGSTER_HOME at the home's instance (absolute) and make sure it is configured."""
    cfg.dagster_home.mkdir(parents=True, exist_ok=True)
    config = cfg.dagster_home / "dagster.yaml"
    if not config.exists() or (config.read_text().startswith("# Written by meterline.")
                               and config.read_text() != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML)  # ours, or an older version of ours
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


class _DbtProgress(io.TextIOBase):
    """Stands in for stdout while a run executes: dagster-dbt echoes every dbt log line there,
    and the CLI keeps stdout for its own results. A person sees one progress line per tenth of
    the dbt nodes, and every error, failure or warning in full, on stderr."""

    _NODE = re.compile(r"^(\d+) of (\d+) (OK|PASS|ERROR|FAIL|WARN|SKIP)")

    def __init__(self, err: Any) -> None:
        self._err = err
        self._buffer = ""
        self._shown = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(re.sub(r"\x1b\[[0-9;]*m", "", line).strip())
        return len(text)

    def _line(self, line: str) -> None:
        match = self._NODE.match(line)
        if match:
            done, total, status = int(match.group(1)), int(match.group(2)), match.group(3)
            if status in ("ERROR", "FAIL", "WARN"):
                self._err.write(f"  dbt: {line}\n")
            elif done * 10 // total > self._shown or done == total:
                self._shown = done * 10 // total
                self._err.write(f"  dbt: {done}/{total} nodes built or tested\n")
        elif re.search(r"\b(Error|error|ERROR|Failure|FAIL)\b", line):
            self._err.write(f"  dbt: {line}\n")
        self._err.flush()


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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes dbt writes into its messages
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


@dataclass
class RunOutcome:
    success: bool
    run_id: str
    failures: list[str] = field(default_factory=list)  # step / check failures, one line each
    failed_checks: list[str] = field(default_factory=list)  # blocking checks that failed
    warnings: list[str] = field(default_factory=list)  # non-blocking checks that failed
    checks_run: int = 0  # asset checks evaluated (dbt tests and reconciliation)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset key -> metadata


def run_job(cfg: Settings, job_name: str, *, partition_key: str | None = None,
            run_config: dict | None = None, tags: dict[str, str] | None = None) -> RunOutcome:
    """Execute a job of the code location in this process on the home's instance."""
    from orchestration.billing.project import ensure_manifest

    prepare_instance(cfg)
    ensure_manifest()
    from dagster import DagsterInstance

    # The CLI bills every month from PARTITION_START on: METERLINE_FIRST_PERIOD narrows only the
    # UI's code location (orchestration/billing/assets.py first_partition_key).
    os.environ.pop("METERLINE_FIRST_PERIOD", None)
    from orchestration.definitions import defs

    instance = DagsterInstance.get()
    job = defs.resolve_job_def(job_name)
    config = dict(run_config or {})
    # The CLI prints its own summary (failures, failed checks with their figures) from the run's
    # events; Dagster's own console log, stack traces included, is for METERLINE_LOG_LEVEL=INFO.
    # Every event is kept in the instance either way (the UI's run view).
    level = os.environ.get("METERLINE_LOG_LEVEL", "CRITICAL").upper()
    config.setdefault("loggers", {"console": {"config": {"log_level": level}},
                                  "meterline_progress": {}})
    sink = _DbtProgress(sys.stderr)
    with writer_turn(cfg, instance), contextlib.redirect_stdout(sink):
        check_warehouse_free(cfg)
        result = job.execute_in_process(
            run_config=config,
            instance=instance,
            partition_key=partition_key,
            raise_on_error=False,
            tags={"meterline/pid": str(os.getpid()), "meterline/source": "cli", **(tags or {})},
        )
    outcome = RunOutcome(success=result.success, run_id=result.run_id)
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error and error.cls_name == "DagsterAssetCheckFailedError":
                continue  # the step of failed blocking checks: each is in failed_checks below
            diskspace.raise_if_disk_full(error)  # a full disk: cli.main prints one line
            message = error.message.strip() if error else "failed"
            user = getattr(event.step_failure_data, "user_failure_data", None)
            if user and user.description:
                message = user.description
            causes, cause = [], error
            while cause is not None:
                causes.append(cause.message)
                cause = cause.cause
            holder = next((h for h in map(describe_lock_holder, causes) if h), None)
            message = _ANSI.sub("", message)
            outcome.failures.append(f"{message}\n{holder}" if holder else message)
        elif event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            outcome.metadata[mat.asset_key.to_user_string()] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items()
            }
        elif event.is_asset_observation:  # e.g. an ingest that found nothing new
            obs = event.asset_observation_data.asset_observation
            outcome.metadata.setdefault(obs.asset_key.to_user_string(), {
                k: getattr(v, "value", v) for k, v in obs.metadata.items()})
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks_run += 1
        if evaluation.passed:
            continue
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        meta = {k: getattr(v, "value", getattr(v, "data", v))
                for k, v in (evaluation.metadata or {}).items()}
        if "summary" in meta:  # a reconciliation check: what it compared, in figures
            name += f": {meta['summary']} {json.dumps(meta.get('figures'), default=str)[:1500]}"
        if evaluation.severity.value == "WARN":
            outcome.warnings.append(name)
        else:
            outcome.failed_checks.append(name)
    return outcome
