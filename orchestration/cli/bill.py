"""`meterline bill`: validate the catalog, build a month, run every check, and publish it when
asked and every blocking check passed; a published month is never built again."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import date

from orchestration.cli.invoices import print_invoices
from orchestration.cli.output import EXIT_FAILED, say, say_checks, say_failed_run
from orchestration.lib import clock, periods, readers
from orchestration.lib.settings import Settings


def _validate_catalog_for(cfg: Settings, period_start: date):
    """Validate the whole catalog and the period's usage checks, listing every problem in one
    pass. If a run holds the warehouse (the readers' snapshot holds no events), the usage checks
    are left to the billing run itself (it waits for the writer slot and validates again)."""
    from orchestration.catalog.periods import period_problems
    from orchestration.catalog.read import load_catalog, read_currencies
    from orchestration.catalog.rules import validate

    catalog = load_catalog(cfg.catalog_dir)
    currencies = read_currencies()
    problems = validate(catalog, currencies)
    if cfg.warehouse_path.exists():
        try:
            with readers.reader(cfg) as con:
                problems += period_problems(con, catalog, period_start, currencies)
        except readers.WarehouseBusy:  # busy: no snapshot yet, or one (it holds no events)
            pass
    return catalog, currencies, problems


@dataclass
class _LedgerState:
    published: bool = False  # the period is in billing.published_periods
    changed: list[str] = field(default_factory=list)  # catalog rows that priced it, changed
    tampered: list = field(default_factory=list)  # ledger.verify findings that stop publishing
    unfinished: list[str] = field(default_factory=list)  # what a killed publish left undone


def _ledger_state(cfg: Settings, period_start: date, parsed) -> _LedgerState:
    """What the published ledger says about a period before a bill or publish runs."""
    from orchestration.billing import ledger, publish

    state = _LedgerState()
    if not cfg.warehouse_path.exists():
        return state
    try:
        with readers.reader(cfg) as con:
            if not readers.table_exists(con, "billing", "published_periods"):
                return state
            verification = ledger.verify(con, cfg.invoices_dir)
            state.tampered = verification.tampered
            pending = ledger.pending_documents(con, cfg.invoices_dir)
            for month, texts in sorted(pending.items()):
                state.unfinished.append(f"{len(texts)} document(s) of {periods.period_key(month)} "
                                        f"not written yet")
            if not publish.is_published(con, period_start):
                return state
            state.published = True
            state.changed = publish.changed_catalog_rows(con, parsed, period_start)
    except readers.WarehouseBusy:
        pass  # the publish step checks again inside the run
    return state


def cmd_bill(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.billing import publish
    from orchestration.catalog.model import parse
    from orchestration.cli.engine import run_job

    period_start = periods.parse_period(args.period)
    cfg.require_home()
    cfg.require_catalog()
    key = periods.period_key(period_start)
    catalog, currencies, problems = _validate_catalog_for(cfg, period_start)
    if problems:
        say(f"the catalog in {cfg.catalog_dir} has {len(problems)} problem(s); nothing was "
             f"priced:")
        for problem in problems:
            say(f"  - {problem}")
        return EXIT_FAILED
    state = _ledger_state(cfg, period_start, parse(catalog, currencies))
    published, changed = state.published, state.changed
    if state.tampered and (args.publish or published):
        say(f"the published ledger fails verification; nothing was written. "
             f"{len(state.tampered)} finding(s), the first: {state.tampered[0]}")
        for finding in state.tampered[1:20]:
            say(f"  - {finding}")
        say("`meterline verify` lists them all. Restore the published rows or documents from "
             "a backup: publishing never builds on a ledger that was changed behind its back.")
        return EXIT_FAILED
    if state.tampered:  # a draft only: it builds, but publishing will refuse
        say(f"warning: the published ledger fails verification ({state.tampered[0]}; "
             f"`meterline verify` lists every finding): late usage restated in this draft may "
             f"build on altered amounts, and publishing is refused until it is restored")
    if published and state.unfinished:
        say(f"{key} is published, but its publication was interrupted "
             f"({'; '.join(state.unfinished)}): completing it (no invoice changes) ...")
        outcome = run_job(cfg, "publish_job", partition_key=key)
        if not outcome.success:
            say_failed_run(f"completing the publication of {key} failed", outcome,
                            publishing=True)
            return EXIT_FAILED
        say(f"completed; documents in {cfg.invoices_dir / key}")
        return print_invoices(cfg, period_start, None, args.format,
                               {"action": "completed", "run_id": outcome.run_id})
    if published:
        if changed and args.publish:
            say(f"{key} was published, and catalog rows that priced it have changed since; "
                 f"nothing was written. Rates are history: restore these rows (close a rate "
                 f"with effective_to and add a new row instead):")
            for row in changed:
                say(f"  - {row}")
            return EXIT_FAILED
        say(f"{key} is published; nothing to do. Its published invoices:")
        return print_invoices(cfg, period_start, None, args.format, {"action": "nothing_to_do"})
    if args.publish:
        try:
            publish.check_grace(period_start, cfg.grace_hours, clock.now())
        except publish.PublishRefused as refused:
            say(str(refused))
            return EXIT_FAILED
    mtd = periods.is_month_to_date(period_start)
    say(f"{'publishing' if args.publish else 'billing'} {key}"
         f"{' (month to date: a draft)' if mtd else ''}: validating the catalog, one dbt "
         f"build, every reconciliation check{', then publishing' if args.publish else ''} ...")
    started = clock.now()
    outcome = run_job(cfg, "publish_job" if args.publish else "billing_job", partition_key=key)
    seconds = (clock.now() - started).total_seconds()
    if not outcome.success:
        say_failed_run(f"{'publishing' if args.publish else 'billing'} {key} failed", outcome,
                        publishing=args.publish)
        return EXIT_FAILED
    say_checks(outcome)
    if args.publish:
        meta = outcome.metadata.get("billing/publish_invoices", {})
        say(f"published {meta.get('invoice_count')} invoice(s) of {key} "
             f"({meta.get('invoice_numbers')}); documents in "
             f"{cfg.invoices_dir / key}; {seconds:.1f} s (Dagster run {outcome.run_id})")
    else:
        say(f"built in {seconds:.1f} s (Dagster run {outcome.run_id})")
    return print_invoices(cfg, period_start, None, args.format, {
        "action": "published" if args.publish else "billed", "run_id": outcome.run_id,
        "checks_evaluated": outcome.checks_run, "warnings": outcome.warnings})
