"""``table_expectations``: the great-expectations runner, for the one claim over the marts that
no dbt test states: every invoice total and line amount of the period is an integer number of
minor units of a known currency, within a sane range.

Every other claim over the marts (keys, non-null, value sets, totals, line numbers, whole minor
units) is a dbt test (``_marts__models.yml``, ``dbt_project/tests``), its one owner."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from orchestration.billing.reconciliation.result import Findings
from orchestration.billing.reconciliation.run import Run

#: The sane range of one line or invoice amount, in minor units (10^13 USD is 10^15 cents).
MAX_MINOR_UNITS = 10**15


@contextlib.contextmanager
def _pyspark_hidden() -> Iterator[None]:
    """great-expectations imports pyspark wherever it is installed (the `spark` extra, for
    METERLINE_ENGINE=spark): seconds of every bill, pyspark.sql.connect's `sys.exit(0)` in a
    process whose __main__ has no __file__, and nothing gained, since the checks read pandas
    and Spark runs in dbt's own process. Hidden while great-expectations is imported (it then
    records pyspark as not installed); importable again afterwards."""
    hide = "pyspark" not in sys.modules
    if hide:
        sys.modules["pyspark"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if hide and "pyspark" in sys.modules and sys.modules["pyspark"] is None:
            del sys.modules["pyspark"]


def _import_great_expectations() -> None:
    with _pyspark_hidden():
        import great_expectations
        import great_expectations.expectations  # noqa: F401


def preload() -> threading.Thread:
    """Import great-expectations (about 3 s) in a background thread, so that the checks find it
    loaded: the billing step starts it once `dbt build` runs, in a child process, while this one
    mostly waits. Python's import locks make a concurrent import wait for this one.

    ``sqlalchemy.orm`` is imported here, in the calling thread, first: great-expectations
    imports it, and meanwhile this thread stores Dagster's events with SQLAlchemy, whose
    inspection registry holds ``sqlalchemy.orm``'s inspectors as soon as part of it is imported.
    A half-imported ``sqlalchemy.orm.exc`` then failed the step in a run under load
    (``AttributeError: partially initialized module 'sqlalchemy.orm.exc' has no attribute
    'UnmappedClassError'``). About 0.2 s."""
    import sqlalchemy.orm  # noqa: F401

    thread = threading.Thread(target=_import_great_expectations, name="preload-gx", daemon=True)
    thread.start()
    return thread


def _minor_units(amount: str, name: str) -> str:
    """``<name>_minor``: the amount in integer minor units (NULL for a currency without a minor
    unit in the ISO 4217 seed, or beyond BIGINT)."""
    return f"try_cast({amount} * c.scale_factor as bigint) as {name}_minor"


def _in_range(gxe: Any, column: str) -> list:
    return [gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=-MAX_MINOR_UNITS,
                                              max_value=MAX_MINOR_UNITS)]


def table_expectations(run: Run) -> Findings:
    """great-expectations 1.x, pandas route: one ephemeral context, one pandas data source,
    a dataframe asset per table, whole-dataframe batches. Only keys and INTEGER minor units
    reach pandas (amount * 10^minor_unit cast to BIGINT in SQL)."""
    clock = time.perf_counter()
    with _pyspark_hidden():
        import great_expectations as gx  # imported on use (preload): about 3 s
        import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    imported = time.perf_counter()

    params = {"period": run.start}
    invoices = run.con.execute(f"""
        select i.invoice_id, {_minor_units("i.total", "total")}
        from marts.fct_invoices as i
        left join temp._recon_currencies as c on c.currency = i.currency
        where i.billing_period_start = $period
    """, params).df()
    lines = run.con.execute(f"""
        select l.invoice_id, l.line_number, {_minor_units("l.amount", "amount")}
        from marts.fct_invoice_lines as l
        left join temp._recon_currencies as c on c.currency = l.currency
        where l.billing_period_start = $period
    """, params).df()
    suites: dict[str, tuple[Any, list]] = {
        "fct_invoices": (invoices, _in_range(gxe, "total_minor")),
        "fct_invoice_lines": (lines, _in_range(gxe, "amount_minor")),
    }

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    source = context.data_sources.add_pandas("meterline_reconciliation")
    failures: list[dict] = []
    evaluated = 0
    for table, (frame, expectations) in suites.items():
        asset = source.add_dataframe_asset(table)
        batch = asset.add_batch_definition_whole_dataframe(f"{table}_{run.start:%Y_%m}") \
            .get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"{table}_{run.start:%Y_%m}")
        for expectation in expectations:
            suite.add_expectation(expectation)
        outcome = batch.validate(suite)
        for result in outcome.results:
            evaluated += 1
            if result.success:
                continue
            config = result.expectation_config
            kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
            details = result.result or {}
            failures.append({
                "table": table, "expectation": config.type, "kwargs": kwargs,
                "observed_value": details.get("observed_value"),
                "unexpected_count": details.get("unexpected_count"),
                "partial_unexpected_list": (details.get("partial_unexpected_list") or [])[:10],
                "exception": (result.exception_info or {}).get("exception_message")
                if isinstance(result.exception_info, dict)
                and result.exception_info.get("raised_exception") else None,
            })
    done = time.perf_counter()
    figures = {"expectations": evaluated,
               "rows": {"fct_invoices": len(invoices), "fct_invoice_lines": len(lines)},
               "seconds": {"import": round(imported - clock, 2),
                           "validate": round(done - imported, 2)}}
    first = failures[0] if failures else {}
    return Findings(
        failures,
        f"{evaluated} expectation(s) met: invoice totals and line amounts in integer minor "
        "units within the sane range",
        f"{len(failures)} expectation(s) failed, first: {first.get('table')}."
        f"{first.get('expectation')} {first.get('kwargs')} "
        f"(unexpected {first.get('partial_unexpected_list') or first.get('observed_value')})",
        figures)
