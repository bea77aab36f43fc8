"""The reconciliation checks as Dagster asset checks, one per row of
``reconciliation.registry.CHECKS``, and the publish gate over them and the dbt tests.

They run in every billing and publishing run, after the dbt build of the month (the run's
partition; each result names it as ``billing_period`` in its metadata), in one step
(one warehouse connection and one set of recomputed temp tables for all of them). Each is
attached to the asset it proves; the blocking ones stop `billing/publish_invoices` in the same
run when they fail, and each result carries the figures it compared in its metadata.

Every result is also written to ``billing.reconciliation_results`` under the run's id: the
publish step reads it back and publishes only if every blocking check passed *in its own run*
(STACK.md: a failing check does not reliably stop a downstream asset, so publishing gates
itself). The table is the audit trail of what was proved before each publication. The dbt tests
at severity error (blocking asset checks of dbt origin) gate the same way, read from the run's
asset check evaluations in the Dagster instance."""


import json
import warnings
from datetime import datetime

import dagster as dg
import duckdb

from orchestration.billing.partitions import monthly_partitions
from orchestration.billing.reconciliation.registry import CHECKS, run_checks
from orchestration.billing.reconciliation.result import CheckResult
from orchestration.catalog.read import load_catalog
from orchestration.instance import DUCKDB_POOL
from orchestration.lib import clock, periods
from orchestration.resources import MeterlineResource


def record(con: duckdb.DuckDBPyConnection, run_id: str, period_start, results: list[CheckResult],
           now: datetime) -> None:
    """Keep the results of one run (a re-executed step replaces its own rows)."""
    con.execute("begin transaction")
    con.execute("delete from billing.reconciliation_results where run_id = ? "
                "and billing_period_start = ?", [run_id, period_start])
    con.executemany(
        "insert into billing.reconciliation_results values (?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, period_start, r.name, r.passed, r.blocking, r.summary,
          json.dumps(r.figures, default=str), now) for r in results])
    con.execute("commit")


def _dbt_unproved(instance: dg.DagsterInstance, run_id: str,
                  dbt_checks: list[dg.AssetCheckKey]) -> list[str]:
    """The blocking dbt tests that did not pass in run ``run_id``: one line per failed test,
    one line naming those that did not run."""
    evaluations = {}
    for entry in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = entry.event_log_entry.dagster_event.asset_check_evaluation_data
        evaluations[evaluation.asset_check_key] = evaluation
    problems, missing = [], []
    for key in dbt_checks:
        evaluation = evaluations.get(key)
        if evaluation is None:
            missing.append(key.to_user_string())
        elif not evaluation.passed:
            rows = evaluation.metadata.get("dagster_dbt/failed_row_count")
            problems.append(f"{key.to_user_string()}: dbt test failed"
                            + (f" ({rows.value} failing row(s))" if rows is not None else ""))
    if missing:
        problems.append(f"{len(missing)} blocking dbt test(s) did not run in this run ({run_id}): "
                        f"{', '.join(missing)}; publishing needs every blocking check to pass in "
                        f"the same run")
    return problems


def unproved(con: duckdb.DuckDBPyConnection, instance: dg.DagsterInstance, run_id: str,
             period_start, dbt_checks: list[dg.AssetCheckKey]) -> list[str]:
    """The blocking checks that did not pass in run ``run_id`` (failed or never ran), one line
    each: the reconciliation checks with the figures they compared (from
    billing.reconciliation_results), then the blocking dbt tests (from the run's asset check
    evaluations in ``instance``). Empty means the period is proved."""
    rows = {name: (passed, summary, figures) for name, passed, summary, figures in con.execute(
        "select check_name, passed, summary, figures from billing.reconciliation_results "
        "where run_id = ? and billing_period_start = ?", [run_id, period_start]).fetchall()}
    problems = []
    for check in CHECKS:
        if not check.blocking:
            continue
        if check.name not in rows:
            problems.append(f"{check.name}: did not run in this run ({run_id}); publishing "
                            f"needs every blocking check to pass in the same run")
        elif not rows[check.name][0]:
            problems.append(f"{check.name}: {rows[check.name][1]} {rows[check.name][2][:2000]}")
    return problems + _dbt_unproved(instance, run_id, dbt_checks)


def _monthly_check_specs() -> list[dg.AssetCheckSpec]:
    """One spec per check, partitioned by month like the marts they prove, so each evaluation
    records the month it proved (the UI's check history shows the partition; Dagster 1.13
    supports AssetCheckSpec(partitions_def=...) as a preview feature, whose warning is
    silenced here rather than printed by every command)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(check.name, asset=check.asset, blocking=check.blocking,
                                  description=check.description,
                                  partitions_def=monthly_partitions)
                for check in CHECKS]


@dg.multi_asset_check(
    name="reconciliation",
    specs=_monthly_check_specs(),
    pool=DUCKDB_POOL,
    description="Re-derive the month from raw events and the catalog CSVs, independently of "
    "the dbt models, and compare (orchestration/billing/reconciliation/).",
)
def reconciliation(context: dg.AssetCheckExecutionContext, meterline: MeterlineResource):
    cfg = meterline.settings()
    period_start = periods.period_from_key(context.op_execution_context.partition_key)
    catalog = load_catalog(cfg.catalog_dir)
    with meterline.writer() as con:
        results = run_checks(con, catalog, period_start,
                             run_instant=clock.run_instant(context.op_execution_context))
        record(con, context.run.run_id, period_start, results, clock.now())
    meterline.refresh_snapshot()
    for check, result in zip(CHECKS, results, strict=True):
        context.log.info(f"check {result}")
        yield dg.AssetCheckResult(
            asset_key=check.asset,
            check_name=result.name,
            passed=result.passed,
            severity=(dg.AssetCheckSeverity.ERROR if result.blocking
                      else dg.AssetCheckSeverity.WARN),
            description=f"{periods.period_key(period_start)}: {result.summary}",
            metadata={"billing_period": periods.period_key(period_start),
                      "summary": result.summary,
                      "figures": dg.MetadataValue.json(result.figures)},
        )
