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
