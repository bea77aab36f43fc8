"""The reconciliation checks, described once: ``CHECKS`` is the table that ``run_checks``, the
Dagster asset check specs (orchestration/billing/checks.py), blocking and the UI's descriptions
are all built from."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from orchestration.billing.reconciliation import amounts, expectations, files, rated, usage
from orchestration.billing.reconciliation.result import (
    CheckResult,
    Findings,
    check_result,
    could_not_run,
)
from orchestration.billing.reconciliation.run import Run
from orchestration.catalog.model import Parsed, parse
from orchestration.catalog.read import Catalog, read_currencies


@dataclass(frozen=True)
class Check:
    """One reconciliation check: its name, the asset key it proves (it shows on that asset in
    the UI), whether a failure stops publishing, what it proves, and the function that runs it."""

    name: str
    asset: tuple[str, ...]
    blocking: bool
    description: str
    run: Callable[[Run], Findings]


CHECKS: tuple[Check, ...] = (
    Check("landed_file_counts", ("staging", "stg_raw__usage_events"), True,
          "Per landed file: rows read = landed + duplicates + quarantined, and each count "
          "equals the file's rows in the raw tables.",
          files.landed_file_counts),
    Check("events_counted_once", ("marts", "fct_meter_usage"), True,
          "Every landed event of the month is counted in exactly one fct_meter_usage row; "
          "per-meter totals recomputed from raw events agree.",
          usage.events_counted_once),
    Check("rated_quantity_matches_usage", ("intermediate", "int_usage_rated"), True,
          "Every rated quantity equals its meter aggregate under the item's filter, "
          "recomputed from raw events.",
          rated.rated_quantity_matches_usage),
    Check("line_amounts_match_decimal_pricer", ("marts", "fct_invoice_lines"), True,
          "Every line amount equals an independent re-pricing of the month by a "
          "decimal.Decimal pricer, to the minor unit.",
          amounts.line_amounts_match_decimal_pricer),
    Check("unbilled_usage_reported", ("marts", "fct_unbilled_usage"), False,
          "Usage no product item bills, reported (not blocking).",
          usage.unbilled_usage_reported),
    Check("table_expectations", ("marts", "fct_invoices"), True,
          "great-expectations: invoice totals and line amounts in integer minor units of a "
          "known currency, within a sane range (what no dbt test states).",
          expectations.table_expectations),
)


def run_checks(con: duckdb.DuckDBPyConnection,
               catalog: Catalog | Parsed,
               period_start: date, *, checks: Iterable[str] | None = None,
               currencies: Mapping[str, int] | None = None,
               run_instant: datetime | None = None) -> list[CheckResult]:
    """Every reconciliation check of ``period_start`` (the first day of a month), in
    ``CHECKS`` order, or only ``checks``. ``catalog`` is the price book as read
    (``catalog.load_catalog``) or already typed (``catalog.parse``). ``run_instant`` is the
    run's one instant (``clock.run_instant``; default now), which a month not yet over accrues
    its level meters up to, as the dbt build of the same run did. Uses temp tables named
    ``_recon_*`` on ``con`` (read-only connections work) and drops them before returning.
    ``figures['seconds']`` of each result is its runtime."""
    if period_start.day != 1:
        raise ValueError(f"period_start {period_start} is not the first day of a month")
    by_name = {check.name: check for check in CHECKS}
    selected = list(by_name if checks is None else checks)
    unknown = [name for name in selected if name not in by_name]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(by_name)}")
    currencies = read_currencies() if currencies is None else currencies
    parsed = catalog if isinstance(catalog, Parsed) else parse(catalog, currencies)
    run = Run(con, parsed, currencies, period_start, run_instant)
    results: list[CheckResult] = []
    try:
        try:
            run.setup()
        except Exception as exc:  # every check fails closed, saying why
            return [could_not_run(name, by_name[name].blocking, f"setup failed: {exc}")
                    for name in selected]
        for name in selected:
            check = by_name[name]
            clock = time.perf_counter()
            try:
                result = check_result(name, check.blocking, check.run(run))
            except Exception as exc:  # a check that cannot run fails closed
                result = could_not_run(name, check.blocking, f"{type(exc).__name__}: {exc}")
            result.figures.setdefault("seconds_total", round(time.perf_counter() - clock, 3))
            results.append(result)
    finally:
        run.teardown()
    return results
