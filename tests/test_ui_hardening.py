"""What a hostile user found in the Dagster UI, each reproduced on real homes, real Dagster
instances, the code location served by a real code server (as `meterline ui` serves it), the
UI's own GraphQL mutations and queries, the backfill and run-queue daemons' own iterations and
real dbt. No mocks."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.billing.project import ensure_manifest
from tests.conftest import REPO, run_meterline
from tests.handmade import make_home

ensure_manifest()

from orchestration import instance as meterline_instance  # noqa: E402
from orchestration.billing import partitions as billing_partitions  # noqa: E402
from orchestration.billing.reconciliation.registry import CHECKS  # noqa: E402
from orchestration.definitions import defs  # noqa: E402
from orchestration.ingestion.sensors import landing_files  # noqa: E402
from orchestration.lib.settings import load as load_settings  # noqa: E402

PUBLISH = dg.AssetKey(["billing", "publish_invoices"])
USAGE = dg.AssetKey(["raw", "usage_events"])
REFUSAL = "publish one month at a time: meterline bill --period YYYY-MM --publish"
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


@contextlib.contextmanager
def _ui(instance):
    """The code location in a code server process of its own, as `dagster dev` loads it (with
    this process's environment), and a workspace for GraphQL and the daemons' iterations."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget("orchestration.definitions", None, str(REPO), "meterline")
    with create_test_daemon_workspace_context(target, instance) as workspace:
        entries = workspace.create_request_context().get_code_location_entries()
        assert all(e.load_error is None for e in entries.values()), entries
        yield workspace


def _graphql(workspace, query: str, variables: dict | None = None) -> dict:
    from dagster_graphql.test.utils import execute_dagster_graphql

    result = execute_dagster_graphql(workspace.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return result.data


def _step_failures(instance, run_id: str) -> list[str]:
    out = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event and event.is_step_failure:
            data = event.step_failure_data
            out.append(data.user_failure_data.description if data.user_failure_data
                       else data.error.message)
    return out


def _published(home: Path) -> tuple[list, list]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return (con.execute("select * from billing.published_periods").fetchall(),
                con.execute("select invoice_id from billing.published_invoices").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory):
    """A hand-made home whose October the CLI ingested and published."""
    home, cat, cwd = make_home(tmp_path_factory.mktemp("cli"))
    ingested = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, cat, cwd


# 1 ---------------------------------------------------------------------------------------
def test_a_multi_month_publish_from_the_ui_publishes_nothing(tmp_path, home_env):
    """The launch dialog's multi-partition launch is a backfill; with BackfillPolicy.multi_run(1)
    the backfill daemon makes one single-partition run per month, each tagged dagster/backfill.
    Every one is refused by its publish step, so no month is published."""
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    instance = home_env(home, cat)
    with _ui(instance) as workspace:
        repo = next(iter(workspace.create_request_context().get_code_location("meterline")
                         .get_repositories()))
        # publish_job's launch dialog, two months past their grace period
        launched = _graphql(workspace, LAUNCH_BACKFILL, {"p": {
            "selector": {"partitionSetName": "publish_job_partition_set", "repositorySelector": {
                "repositoryLocationName": "meterline", "repositoryName": repo}},
            "partitionNames": ["2026-09", "2026-10"]}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        list(execute_backfill_iteration(workspace, logging.getLogger("test")))
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["2026-09", "2026-10"]
        assert not any("dagster/asset_partition_range_start" in r.tags for r in runs)

        queue = QueuedRunCoordinatorDaemon(interval_seconds=1)  # the daemon of `meterline ui`
        deadline = time.monotonic() + 600
        while not all(instance.get_run_by_id(r.run_id).is_finished for r in runs):
            assert time.monotonic() < deadline, "the backfill's runs did not finish"
            list(queue.run_iteration(workspace))
            time.sleep(1)
        for run in runs:
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            failures = _step_failures(instance, run.run_id)
            assert any(REFUSAL in f and "2 months (2026-09 to 2026-10)" in f
                       for f in failures), failures
        assert _published(home) == ([], [])
        assert not list((home / "invoices").glob("*/*"))
        assert instance.get_materialized_partitions(PUBLISH) == set()

        # the asset graph's Materialize dialog, "All": a pure asset backfill
        everything = _graphql(workspace, LAUNCH_BACKFILL, {"p": {
            "assetSelection": [{"path": PUBLISH.path}], "allPartitions": True}}
        )["launchPartitionBackfill"]
        one = _graphql(workspace, LAUNCH_BACKFILL, {"p": {
            "selector": {"partitionSetName": "publish_job_partition_set", "repositorySelector": {
                "repositoryLocationName": "meterline", "repositoryName": repo}},
            "partitionNames": ["2026-10"]}})["launchPartitionBackfill"]
    publish_job = defs.resolve_job_def("publish_job")

    def publish_step(**kwargs):
        result = publish_job.execute_in_process(instance=instance, asset_selection=[PUBLISH],
                                                raise_on_error=False, **kwargs)
        assert not result.success
        return " ".join(_step_failures(instance, result.run_id))

    # one run of the "All" backfill, as the daemon would launch it
    refused = publish_step(partition_key="2026-10",
                           tags={"dagster/backfill": everything["backfillId"]})
    last = publish_job.partitions_def.get_last_partition_key()
    assert REFUSAL in refused and f"months (2020-01 to {last})" in refused, refused
    # a single run over a range of months
    refused = publish_step(tags={"dagster/asset_partition_range_start": "2026-09",
                                 "dagster/asset_partition_range_end": "2026-10"})
    assert REFUSAL in refused and "2026-09 to 2026-10" in refused, refused
    # a backfill of one month is one month at a time: the guard lets it through (this step-only
    # run is then refused because no reconciliation check ran in it)
    passed = publish_step(partition_key="2026-10", tags={"dagster/backfill": one["backfillId"]})
    assert REFUSAL not in passed, passed
    assert _published(home) == ([], [])


# 2 ---------------------------------------------------------------------------------------
def _first_key(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = ("from orchestration.billing.project import ensure_manifest; ensure_manifest()\n"
            "from orchestration.definitions import defs\n"
            "print(defs.resolve_job_def('publish_job').partitions_def.get_first_partition_key())")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_first_partition_is_set_when_the_definitions_load():
    assert _first_key({}).stdout.split() == ["2020-01"]
    narrowed = _first_key({"METERLINE_FIRST_PERIOD": "2026-10"})
    assert narrowed.stdout.split() == ["2026-10"], narrowed.stderr[-2000:]
    for bad in ("2019-12", "2026-13", "oct"):
        broken = _first_key({"METERLINE_FIRST_PERIOD": bad})
        assert broken.returncode != 0
        assert f"METERLINE_FIRST_PERIOD='{bad}' is not a month from 2020-01 on" in broken.stderr


def test_the_cli_bills_months_before_the_uis_first_partition(cli_home):
    home, cat, cwd = cli_home
    done = run_meterline(["bill", "--period", "2026-11"], home=home, catalog=cat, cwd=cwd,
                         env={"METERLINE_FIRST_PERIOD": "2026-12"})
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_ui_starts_at_the_first_month_with_landed_events(cli_home, tmp_path):
    home, cat, _ = cli_home
    cfg = load_settings({"METERLINE_HOME": str(home), "METERLINE_CATALOG_DIR": str(cat)})
    assert billing_partitions.first_landed_period(cfg) == "2026-10"
    # a run holds the warehouse: the snapshot answers
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
        " time.sleep(60)"), str(cfg.warehouse_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert billing_partitions.first_landed_period(cfg) == "2026-10"
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "empty").mkdir()
    empty = load_settings({"METERLINE_HOME": str(tmp_path / "empty")})
    assert billing_partitions.first_landed_period(empty) is None


# 3 ---------------------------------------------------------------------------------------
PARTITION_STATUS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { partitionStats { numMaterialized numPartitions numFailed }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
  } } }"""


def test_a_month_published_from_the_cli_is_not_missing_in_the_ui(cli_home, home_env,
                                                                  monkeypatch):
    from dagster._core.storage.partition_status_cache import (
        get_and_update_asset_status_cache_value,
    )

    home, cat, _ = cli_home
    instance = home_env(home, cat)
    assert instance.get_materialized_partitions(PUBLISH) == {"2026-10"}
    assert "2026-10" in instance.get_materialized_partitions(
        dg.AssetKey(["marts", "fct_invoices"]))
    ui_partitions = dg.MonthlyPartitionsDefinition(start_date="2026-09", fmt="%Y-%m",
                                                   end_offset=1)
    status = get_and_update_asset_status_cache_value(instance, PUBLISH, ui_partitions)
    materialized = status.deserialize_materialized_partition_subsets(ui_partitions)
    assert list(materialized.get_partition_keys()) == ["2026-10"]
    # what the UI shows, from a code location whose partitions start at 2026-09
    monkeypatch.setenv("METERLINE_FIRST_PERIOD", "2026-09")
    with _ui(instance) as workspace:
        node = _graphql(workspace, PARTITION_STATUS, {"key": {"path": PUBLISH.path}}
                        )["assetNodeOrError"]
    assert node["partitionStats"]["numMaterialized"] == 1
    assert node["assetPartitionStatuses"]["ranges"] == [
        {"startKey": "2026-10", "endKey": "2026-10", "status": "MATERIALIZED"}]
    assert node["partitionStats"]["numPartitions"] == len(ui_partitions.get_partition_keys())


# 4 ---------------------------------------------------------------------------------------
def test_the_sensor_asks_for_nothing_when_every_file_has_landed(cli_home, tmp_path, home_env):
    home = tmp_path / "home"
    shutil.copytree(cli_home[0], home)  # the CLI ingested its landing/; its snapshot says so
    instance = home_env(home, cli_home[1])

    def tick(cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            return landing_files(context), context.cursor

    skipped, cursor = tick()  # a fresh UI start: no cursor yet
    assert isinstance(skipped, dg.SkipReason) and "has landed already" in skipped.skip_message
    shutil.copyfile(home / "landing" / "october.jsonl", home / "landing" / "copy.jsonl")
    skipped, cursor = tick(cursor)  # a copy of landed content: ingest would skip it too
    assert isinstance(skipped, dg.SkipReason) and "has landed already" in skipped.skip_message
    text = (home / "landing" / "copy.jsonl").read_text()
    (home / "landing" / "copy.jsonl").write_text(text.replace("u-c1", "u-x1"))  # same size
    asked, cursor = tick(cursor)
    assert isinstance(asked, dg.RunRequest)
    (home / "landing" / "copy.jsonl").unlink()
    (home / "landing" / "new.jsonl").write_text('{"event_id": "n1"}\n')
    asked, _ = tick(cursor)
    assert isinstance(asked, dg.RunRequest)


def test_an_ingest_that_finds_nothing_new_records_no_materialization(cli_home, home_env):
    home, cat, cwd = cli_home
    instance = home_env(home, cat)
    before = instance.get_latest_materialization_event(USAGE)
    assert before.asset_materialization.metadata["rows_landed"].value > 0
    # the run a sensor tick would launch, with nothing new in landing/
    request = dg.RunRequest(run_config={"ops": {"landed_events": {"config": {"paths": []}}}})
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, run_config=request.run_config)
    assert result.success
    assert instance.get_latest_materialization_event(USAGE).run_id == before.run_id
    assert result.asset_materializations_for_node("landed_events") == []
    observed = [e.asset_observation_data.asset_observation for e in result.all_events
                if e.is_asset_observation]
    assert [o.asset_key for o in observed] == [USAGE]
    assert observed[0].metadata["rows_read"].value == 0
    assert observed[0].metadata["nothing_new"].value is True
    # and the CLI still reports it
    again = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "october.jsonl" in again.stdout  # listed as skipped, content landed before
    assert instance.get_latest_materialization_event(USAGE).run_id == before.run_id


# 5 ---------------------------------------------------------------------------------------
def test_reconciliation_checks_say_which_month_they_proved(cli_home, home_env):
    home, cat, _ = cli_home
    instance = home_env(home, cat)
    for check in CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)
        assert defs.resolve_asset_graph().get_check_spec(key).partitions_def is not None
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        assert "2026-10" in {record.partition for record in history}, check.name
        for record in history:  # the UI's check history names the month each run proved
            evaluation = record.event.dagster_event.asset_check_evaluation_data
            assert record.partition == evaluation.partition
            assert evaluation.metadata["billing_period"].value == record.partition
            assert evaluation.description.startswith(f"{record.partition}: ")


# 6 ---------------------------------------------------------------------------------------
def test_a_new_home_shows_no_community_dialog(tmp_path, home_env):
    from dagster._core.nux import get_has_seen_nux

    home, cat, _ = make_home(tmp_path)
    instance = home_env(home, cat)
    assert not get_has_seen_nux()  # a fresh instance: the dialog would show
    assert instance.nux_enabled is False  # what the UI's shouldShowNux asks first
    # a dagster.yaml written by an older meterline is brought up to date
    config = home / "dagster" / "dagster.yaml"
    config.write_text(meterline_instance.DAGSTER_YAML.split("# The \"Join")[0])
    assert dg.DagsterInstance.get().nux_enabled is True
    meterline_instance.prepare_instance(load_settings())
    assert dg.DagsterInstance.get().nux_enabled is False


def test_the_event_log_is_dagsters_sqlite_files_with_kept_connections(tmp_path, home_env):
    """The home's event log storage (dagster.yaml) keeps Dagster's files (history/runs/, a file
    per run and the index) but one engine per recent file, committing without an fsync per
    event; a real run's events are stored and read back, and a moved home's dagster.yaml follows
    it."""
    from dagster import DagsterEventType

    home, cat, _ = make_home(tmp_path)
    instance = home_env(home, cat)
    storage = instance.event_log_storage
    assert type(storage).__name__ == "MeterlineEventLogStorage"
    runs_dir = (home / "dagster" / "history" / "runs").resolve()
    assert Path(storage._base_dir) == runs_dir

    @dg.asset
    def probe() -> int:
        return 1

    result = dg.materialize([probe], instance=instance)
    assert result.success
    types = [r.dagster_event_type for r in instance.all_logs(result.run_id)]
    assert DagsterEventType.RUN_SUCCESS in types and DagsterEventType.ASSET_MATERIALIZATION in types
    assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
    assert (runs_dir / f"{result.run_id}.db").exists() and (runs_dir / "index.db").exists()
    kept = storage._meterline_engines
    assert result.run_id in kept and "index" in kept and len(kept) <= storage.KEPT_ENGINES
    with storage.run_connection(result.run_id) as conn:
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
    for _ in range(storage.KEPT_ENGINES + 2):  # a long-lived process keeps a bounded number
        assert dg.materialize([probe], instance=instance).success
    assert len(storage._meterline_engines) == storage.KEPT_ENGINES

    moved = tmp_path / "moved"
    shutil.copytree(home, moved)
    home_env(moved, cat)
    text = (moved / "dagster" / "dagster.yaml").read_text()
    assert str((moved / "dagster" / "history" / "runs").resolve()) in text
    assert str(runs_dir) not in text
