"""The reconciliation checks as Dagster asset checks, one per check of ``reconcile``.

They run in every billing and publishing run, after the dbt build of the month (the run's
partition; each result names it as ``billing_period`` in its metadata), in one step
(one warehouse connection and one set of recomputed temp tables for all seven). Each is attached
to the mart it proves; the blocking ones stop `billing/publish_invoices` in the same run when
they fail, and each result carries the figures it compared in its metadata.

Every result is also written to ``billing.reconciliation_results`` under the run's id: the
publish step reads it back and publishes only if every blocking check passed *in its own run*
(STACK.md: a failing check does not reliably stop a downstream asset, so publishing gates
itself). The table is the audit trail of what was proved before each publication."""


import json
from datetime import datetime

import dagster as dg
import duckdb

from orchestration.billing.reconcile import CHECK_NAMES, NON_BLOCKING, CheckResult, run_checks
from orchestration.lib import catalog as catalog_lib
from orchestration.lib import clock, periods
from orchestration.resources import DUCKDB_POOL, MeterlineResource

#: The mart each check proves (checks show on that asset in the UI).
CHECK_TARGETS: dict[str, list[str]] = {
    "landed_file_counts": ["staging", "stg_raw__usage_events"],
    "events_counted_once": ["marts", "fct_meter_usage"],
    "rated_quantity_matches_usage": ["intermediate", "int_usage_rated"],
    "line_amounts_match_decimal_pricer": ["marts", "fct_invoice_lines"],
    "invoice_totals_and_numbering": ["marts", "fct_invoices"],
    "unbilled_usage_reported": ["marts", "fct_unbilled_usage"],
    "table_expectations": ["marts", "fct_invoices"],
}
CHECK_DESCRIPTIONS = {
    "landed_file_counts": "Per landed file: rows read = landed + duplicates + quarantined, and "
    "each count equals the file's rows in the raw tables.",
    "events_counted_once": "Every landed event of the month is counted in exactly one "
    "fct_meter_usage row; per-meter totals recomputed from raw events agree.",
    "rated_quantity_matches_usage": "Every rated quantity equals its meter aggregate under the "
    "item's filter, recomputed from raw events.",
    "line_amounts_match_decimal_pricer": "Every line amount equals an independent re-pricing "
    "of the month by a decimal.Decimal pricer, to the minor unit.",
    "invoice_totals_and_numbering": "Invoice total = sum of its rounded lines; one invoice per "
    "customer and period; line numbers gap-free.",
    "unbilled_usage_reported": "Usage no product item bills, reported (not blocking).",
    "table_expectations": "great-expectations: keys, non-null, value sets, integer minor-unit "
    "ranges of invoices, lines and meter usage.",
}
assert set(CHECK_TARGETS) == set(CHECK_NAMES) == set(CHECK_DESCRIPTIONS)
BLOCKING_CHECKS = tuple(name for name in CHECK_NAMES if name not in NON_BLOCKING)


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


def unproved(con: duckdb.DuckDBPyConnection, run_id: str, period_start) -> list[str]:
    """The blocking checks that did not pass in run ``run_id`` (failed or never ran), one line
    each with the figures they compared. Empty means the period is proved."""
    rows = {name: (passed, summary, figures) for name, passed, summary, figures in con.execute(
        "select check_name, passed, summary, figures from billing.reconciliation_results "
        "where run_id = ? and billing_period_start = ?", [run_id, period_start]).fetchall()}
    problems = []
    for name in BLOCKING_CHECKS:
        if name not in rows:
            problems.append(f"{name}: did not run in this run ({run_id}); publishing needs "
                            f"every blocking check to pass in the same run")
        elif not rows[name][0]:
            problems.append(f"{name}: {rows[name][1]} {rows[name][2][:2000]}")
    return problems


def _monthly_check_specs() -> list[dg.AssetCheckSpec]:
    """One spec per check, partitioned by month like the marts they prove, so each evaluation
    records the month it proved (the UI's check history shows the partition; Dagster 1.13
    supports AssetCheckSpec(partitions_def=...) as a preview feature, whose warning is
    silenced here rather than printed by every command)."""
    import warnings

    from orchestration.billing.assets import monthly_partitions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=CHECK_TARGETS[name],
                                  blocking=name in BLOCKING_CHECKS,
                                  description=CHECK_DESCRIPTIONS[name],
                                  partitions_def=monthly_partitions)
                for name in CHECK_NAMES]


@dg.multi_asset_check(
    name="reconciliation",
    specs=_monthly_check_specs(),
    pool=DUCKDB_POOL,
    description="Re-derive the month from raw events and the catalog CSVs, independently of "
    "the dbt models, and compare (orchestration/billing/reconcile.py).",
)
def reconciliation(context: dg.AssetCheckExecutionContext, meterline: MeterlineResource):
    cfg = meterline.settings()
    period_start = periods.period_from_key(context.op_execution_context.partition_key)
    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    with meterline.writer() as con:
        results = run_checks(con, catalog, period_start)
        record(con, context.run.run_id, period_start, results, clock.now())
    meterline.refresh_snapshot()
    for result in results:
        context.log.info(f"check {result}")
        yield dg.AssetCheckResult(
            asset_key=CHECK_TARGETS[result.name],
            check_name=result.name,
            passed=result.passed,
            severity=(dg.AssetCheckSeverity.ERROR if result.blocking
                      else dg.AssetCheckSeverity.WARN),
            description=f"{periods.period_key(period_start)}: {result.summary}",
            metadata={"billing_period": periods.period_key(period_start),
                      "summary": result.summary,
                      "figures": dg.MetadataValue.json(result.figures)},
        )
