"""The code location loads, with the jobs, partitions and asset checks the CLI and UI rely on."""

from __future__ import annotations

import dagster as dg

from orchestration.billing.project import ensure_manifest

ensure_manifest()

from orchestration.definitions import defs  # noqa: E402


def test_definitions_load_with_jobs_and_executor():
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert {"ingest_job", "billing_job"} <= names
    billing = defs.resolve_job_def("billing_job")
    assert billing.partitions_def is not None
    assert billing.partitions_def.get_partition_key_range_for_time_window  # monthly, time-based
    assert billing.executor_def.name == dg.in_process_executor.name


def test_billing_assets_and_dbt_tests_as_checks():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for expected in ("raw/usage_events", "catalog/rates", "marts/fct_meter_usage",
                     "marts/fct_invoice_lines", "marts/fct_invoices", "marts/fct_unbilled_usage"):
        assert expected in keys, expected
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert any(asset == "marts/fct_invoices" for asset, _ in checks), "dbt tests become checks"
    # singular reconciliation tests are attached to the mart they prove (dbt meta `ref`)
    assert ("marts/fct_invoices", "assert_invoice_total_equals_sum_of_lines") in checks
    assert ("marts/fct_invoice_lines", "assert_line_numbers_gap_free") in checks
    assert len(checks) >= 20


def test_every_duckdb_step_is_in_the_single_writer_pool():
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable and assets_def.op.pool is not None:
            assert assets_def.op.pool == "duckdb"
    pools = {a.op.pool for a in defs.resolve_asset_graph().assets_defs if a.is_executable}
    assert pools == {"duckdb"}


def test_reconciliation_checks_are_blocking_checks_of_the_marts_they_prove():
    from orchestration.billing.checks import CHECK_TARGETS, reconciliation
    from orchestration.billing.reconcile import CHECK_NAMES, NON_BLOCKING

    graph = defs.resolve_asset_graph()
    for name in CHECK_NAMES:
        key = dg.AssetCheckKey(dg.AssetKey(CHECK_TARGETS[name]), name)
        spec = graph.get_check_spec(key)
        assert spec.blocking is (name not in NON_BLOCKING), name
        assert spec.description, name
    assert set(NON_BLOCKING) == {"unbilled_usage_reported"}
    assert reconciliation.op.pool == "duckdb"  # it opens the warehouse: one writer at a time
    # every job that builds a month runs them, in the same run as the build and the publication
    for job_name in ("billing_job", "publish_job"):
        job_checks = {k.name for k in defs.resolve_job_def(job_name).asset_layer.asset_graph
                      .asset_check_keys}
        assert set(CHECK_NAMES) <= job_checks, job_name
    # the publish step depends on every asset a blocking check proves, so a failure stops it
    publish = graph.get(dg.AssetKey(["billing", "publish_invoices"]))
    proved = {dg.AssetKey(CHECK_TARGETS[n]) for n in CHECK_NAMES if n not in NON_BLOCKING}
    assert proved <= set(publish.parent_keys)
    # every singular dbt test explains itself in the UI
    singular = [k for k in graph.asset_check_keys if k.name.startswith("assert_")]
    assert len(singular) == 9
    assert all(graph.get_check_spec(k).description for k in singular)


def test_ui_facing_definitions():
    """Reconciliation checks are partitioned by month (the UI shows the month each evaluation
    proved); the ingest assets may be skipped (no 0-row materialization); publishing guards
    itself against runs of more than one month."""
    from orchestration.billing.assets import monthly_partitions, publish_invoices
    from orchestration.billing.checks import reconciliation
    from orchestration.ingestion.assets import landed_events

    assert reconciliation.partitions_def is monthly_partitions
    assert all(spec.partitions_def is monthly_partitions for spec in reconciliation.check_specs)
    assert all(spec.skippable for spec in landed_events.specs)
    assert publish_invoices.backfill_policy == dg.BackfillPolicy.multi_run(1)
    assert monthly_partitions.get_first_partition_key() == "2020-01"  # no METERLINE_FIRST_PERIOD
