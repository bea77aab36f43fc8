"""The month closed by the Dagster schedule equals the month closed from the CLI, and a sensor
tick during a `bill` asks for an ingest run that waits its turn: writing runs are serialized
(CONTRACT.md section 7, issue 8 item 6). Real homes, real Dagster instances, real dbt."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.billing.project import ensure_manifest
from tests.conftest import meterline_bin, pinned_now, run_meterline
from tests.handmade import EXPECTED, make_home

ensure_manifest()

from orchestration import instance as meterline_instance  # noqa: E402
from orchestration.billing.schedules import monthly_close  # noqa: E402
from orchestration.cli import engine  # noqa: E402
from orchestration.definitions import defs  # noqa: E402
from orchestration.ingestion.sensors import landing_files  # noqa: E402
from orchestration.lib.settings import load as load_settings  # noqa: E402


def _published_state(home: Path) -> dict:
    """What was published, without the instants that differ by when it ran."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        invoices = con.execute(
            "select * exclude (issued_at) from billing.published_invoices order by 1").fetchall()
        lines = con.execute("select * from billing.published_invoice_lines order by 1, 2"
                            ).fetchall()
        periods = con.execute("select billing_period_start, invoice_count, catalog_fingerprint "
                              "from billing.published_periods").fetchall()
        proved = con.execute("select check_name, passed from billing.reconciliation_results "
                             "order by 1").fetchall()
    finally:
        con.close()
    documents = {}
    for path in sorted((home / "invoices" / "2026-10").glob("*.json")):
        doc = json.loads(path.read_text())
        doc.pop("issued_at", None)
        doc.pop("invoice_date", None)
        documents[path.name] = doc
    return {"invoices": invoices, "lines": lines, "periods": periods, "proved": proved,
            "documents": documents}


def test_the_schedule_publishes_what_the_cli_publishes(tmp_path, home_env):
    # October from the CLI
    cli_home, cli_cat, cli_cwd = make_home(tmp_path / "cli")
    assert run_meterline(["ingest"], home=cli_home, catalog=cli_cat, cwd=cli_cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=cli_home,
                         catalog=cli_cat, cwd=cli_cwd)
    assert done.returncode == 0, done.stderr[-3000:]

    # October from the schedule: its tick at 02:00 UTC on 2 November asks for the run, and the
    # run is executed as the daemon would, with the request's partition and tags.
    home, cat, cwd = make_home(tmp_path / "schedule")
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    instance = home_env(home, cat)
    with dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def(),
            scheduled_execution_time=datetime(2026, 11, 2, 2, 0, tzinfo=UTC)) as context:
        requests = list(monthly_close.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-10"]
    job = defs.resolve_job_def(monthly_close.job_name)
    assert job.name == "publish_job"
    result = job.execute_in_process(instance=instance, partition_key=requests[0].partition_key,
                                    tags={**requests[0].tags, "dagster/schedule_name":
                                          monthly_close.name},
                                    raise_on_error=False)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["meterline/writer"] == "warehouse"
    assert run.tags["dagster/partition"] == "2026-10"

    by_schedule, by_cli = _published_state(home), _published_state(cli_home)
    assert len(by_schedule["invoices"]) == len(EXPECTED)
    assert by_schedule["proved"] == by_cli["proved"] and all(p for _, p in by_cli["proved"])
    assert by_schedule == by_cli


def _bill_in_background(tmp_path: Path, home_env, period: str, **popen):
    """A hand-made home with its events landed, and `meterline bill --period` started on it."""
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    instance = home_env(home, cat)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env["METERLINE_NOW"] = pinned_now()
    env.update(METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(cat))
    bill = subprocess.Popen([meterline_bin(), "bill", "--period", period], env=env, cwd=cwd,
                            **popen)
    return home, cat, cwd, instance, bill


def test_a_sensor_tick_during_a_bill_waits_for_its_turn(tmp_path, home_env):
    home, cat, cwd, instance, bill = _bill_in_background(tmp_path, home_env, "2026-11",
                                                         stdout=subprocess.PIPE,
                                                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not meterline_instance.active_writer_runs(instance):  # the bill's run has started
            assert bill.poll() is None, bill.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the bill run did not start"
            time.sleep(0.1)
        (home / "landing" / "more.jsonl").write_text(json.dumps(
            {"event_id": "more-1", "customer_id": "hm_jpy", "meter": "calls", "value": 1,
             "timestamp": "2026-11-02T00:00:00Z"}) + "\n")
        with dg.build_sensor_context(instance=instance,
                                     repository_def=defs.get_repository_def()) as context:
            tick = landing_files.evaluate_tick(context)
        requests = list(tick.run_requests or [])
        (bill_run,) = meterline_instance.active_writer_runs(instance)
        assert bill_run.job_name == "billing_job", "the tick came after the bill"
        assert [r.tags.get("meterline/source") for r in requests] == ["sensor"]

        # the requested run takes its turn as the queue would: after the bill's run
        outcome = engine.run_job(load_settings(), landing_files.job_name,
                                 run_config=requests[0].run_config, tags=requests[0].tags)
        out, err = bill.communicate(timeout=600)
    finally:
        if bill.poll() is None:
            bill.kill()
    assert bill.returncode == 0, err[-3000:]
    assert outcome.success, outcome.failures
    billed = instance.get_run_record_by_id(bill_run.run_id)
    ingested = instance.get_run_record_by_id(outcome.run_id)
    assert ingested.start_time >= billed.end_time, "two writing runs overlapped"
    assert "Could not set lock" not in err
    report = outcome.metadata["raw/usage_events"]["report"]
    assert {f["source_file"]: f["landed"] for f in report["files"]} == {"more.jsonl": 1}
    # the run queue of the UI's daemon applies the same rule to the runs it launches
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "meterline/writer", "limit": 1} in limits


def test_a_bill_killed_with_sigkill_does_not_block_the_next_one(tmp_path, home_env):
    """kill -9 leaves the run STARTED and its `duckdb` slot claimed (STACK.md); the next CLI
    command marks it failed, frees the slot and runs, instead of waiting forever."""
    import signal

    home, cat, cwd, instance, bill = _bill_in_background(tmp_path, home_env, "2026-10",
                                                         stdout=subprocess.DEVNULL,
                                                         stderr=subprocess.DEVNULL,
                                                         start_new_session=True)
    deadline = time.monotonic() + 120
    while not instance.event_log_storage.get_concurrency_info("duckdb").active_slot_count:
        assert bill.poll() is None and time.monotonic() < deadline, "the bill never held the slot"
        time.sleep(0.1)
    (killed,) = meterline_instance.active_writer_runs(instance)
    os.killpg(bill.pid, signal.SIGKILL)  # the CLI and the dbt it started, as an OOM kill would
    bill.wait(timeout=30)
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED

    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd,
                         timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_info("duckdb").active_slot_count == 0
    assert meterline_instance.active_writer_runs(instance) == []
