"""Run Meterline's jobs through Dagster in this process, on the home's own instance, so every
run the CLI starts shows in the Dagster UI (`dagster dev`, DAGSTER_HOME=$METERLINE_HOME/dagster).
The one module that loads the code location (`orchestration.definitions`) for the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from orchestration.instance import (
    ANSI,
    check_warehouse_free,
    describe_lock_holder,
    prepare_instance,
    writer_turn,
)
from orchestration.lib import clock, diskspace
from orchestration.lib.settings import Settings


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
            tags={"meterline/pid": str(os.getpid()), "meterline/source": "cli",
                  **clock.run_instant_tag(), **(tags or {})},
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
            message = ANSI.sub("", message)
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
