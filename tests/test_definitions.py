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


def test_month_to_date_job_builds_the_billing_models_without_checks_after_each_ingest():
    """An ingest's refresh of the open months (issue 16) builds the same models as billing_job,
    the explorers' marts among them, and runs none of the checks (a draft is proved when it is
    billed or published); a sensor follows the ingests the CLI did not start."""
    refresh = defs.resolve_job_def("month_to_date_job")
    billing = defs.resolve_job_def("billing_job")
    built = refresh.asset_layer.asset_graph.get_all_asset_keys()
    assert refresh.partitions_def == billing.partitions_def
    for mart in ("fct_usage_daily", "fct_revenue_monthly", "dim_customers", "dim_product_items",
                 "fct_invoice_lines"):
        assert dg.AssetKey(["marts", mart]) in built, mart
    assert not refresh.asset_layer.asset_graph.asset_check_keys  # no dbt test, no check
    assert len(billing.asset_layer.asset_graph.asset_check_keys) >= 20
    sensor = defs.resolve_sensor_def("month_to_date_refresh")
    assert sensor.job_name == "month_to_date_job"


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
    from orchestration.billing.checks import reconciliation
    from orchestration.billing.reconciliation.registry import CHECKS

    graph = defs.resolve_asset_graph()
    names = [check.name for check in CHECKS]
    assert len(set(names)) == len(names)
    for check in CHECKS:  # each row of the one table is the spec the UI shows
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(check.asset), check.name))
        assert spec.blocking is check.blocking, check.name
        assert spec.description == check.description, check.name
    assert {check.name for check in CHECKS if not check.blocking} == {"unbilled_usage_reported"}
    assert reconciliation.op.pool == "duckdb"  # it opens the warehouse: one writer at a time
    # every job that builds a month runs them, in the same run as the build and the publication
    for job_name in ("billing_job", "publish_job"):
        job_checks = {k.name for k in defs.resolve_job_def(job_name).asset_layer.asset_graph
                      .asset_check_keys}
        assert set(names) <= job_checks, job_name
    # the publish step depends on every asset a blocking check proves, so a failure stops it
    publish = graph.get(dg.AssetKey(["billing", "publish_invoices"]))
    proved = {dg.AssetKey(check.asset) for check in CHECKS if check.blocking}
    assert proved <= set(publish.parent_keys)
    # every singular dbt test explains itself in the UI
    singular = [k for k in graph.asset_check_keys if k.name.startswith("assert_")]
    assert len(singular) == 14
    assert all(graph.get_check_spec(k).description for k in singular)


def test_the_publish_gate_needs_every_blocking_dbt_test_of_what_it_publishes():
    """dbt tests own the claims over the marts; the publish step requires each blocking one on
    the assets it publishes from to have passed in its own run, as publish_job runs them."""
    from orchestration.billing.assets import blocking_dbt_checks
    from orchestration.billing.reconciliation.registry import CHECKS

    graph = defs.resolve_asset_graph()
    publish = graph.get(dg.AssetKey(["billing", "publish_invoices"]))
    required = blocking_dbt_checks()
    assert {key.asset_key for key in required} == set(publish.parent_keys)
    reconciliation = {dg.AssetCheckKey(dg.AssetKey(c.asset), c.name) for c in CHECKS}
    on_parents = {key for key in graph.asset_check_keys if key.asset_key in publish.parent_keys}
    assert set(required) == on_parents - reconciliation  # every dbt test on them
    assert all(graph.get_check_spec(key).blocking for key in required)
    assert {("marts/fct_invoices", "assert_invoice_total_equals_sum_of_lines"),
            ("marts/fct_invoices", "assert_one_invoice_per_customer_and_period"),
            ("marts/fct_invoices", "assert_invoice_ids_name_customer_and_period"),
            ("marts/fct_invoice_lines", "assert_line_numbers_gap_free"),
            ("marts/fct_invoice_lines", "assert_line_numbers_follow_contract_order"),
            ("marts/fct_invoice_lines", "assert_lines_agree_with_their_invoice"),
            ("marts/fct_invoices", "unique_fct_invoices_invoice_id")} <= {
        (key.asset_key.to_user_string(), key.name) for key in required}
    publish_checks = defs.resolve_job_def("publish_job").asset_layer.asset_graph.asset_check_keys
    assert set(required) <= set(publish_checks)


def test_ui_facing_definitions():
    """Reconciliation checks are partitioned by month (the UI shows the month each evaluation
    proved); the ingest assets may be skipped (no 0-row materialization); publishing guards
    itself against runs of more than one month."""
    from orchestration.billing.assets import publish_invoices
    from orchestration.billing.checks import reconciliation
    from orchestration.billing.partitions import monthly_partitions
    from orchestration.ingestion.assets import landed_events

    assert reconciliation.partitions_def is monthly_partitions
    assert all(spec.partitions_def is monthly_partitions for spec in reconciliation.check_specs)
    assert all(spec.skippable for spec in landed_events.specs)
    assert publish_invoices.backfill_policy == dg.BackfillPolicy.multi_run(1)
    assert monthly_partitions.get_first_partition_key() == "2020-01"  # no METERLINE_FIRST_PERIOD
