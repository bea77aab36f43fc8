"""The small commands: `ingest`, `verify`, `catalog` and `ui`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestration.cli.output import EXIT_FAILED, EXIT_OK, say, say_failed_run
from orchestration.lib import clock, periods, readers
from orchestration.lib.settings import Settings, UsageError


def cmd_ingest(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.cli.engine import run_job

    cfg.require_home()
    cfg.require_catalog()
    for raw in args.paths:
        if not Path(raw).exists():
            raise UsageError(f"{raw}: no such file or directory")
    paths = list(args.paths)  # as given: the run executes in this process and directory
    if args.format == "table":
        say(f"ingesting {'the given files' if paths else f'new files in {cfg.landing_dir}'} ...")
    outcome = run_job(cfg, "ingest_job", run_config={
        "ops": {"landed_events": {"config": {"paths": paths}}}})
    if not outcome.success:
        say_failed_run("ingest failed", outcome)
        return EXIT_FAILED
    doc = outcome.metadata.get("raw/usage_events", {}).get("report")
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        from orchestration.ingestion.report import format_report

        print(format_report(doc))
        print(f"Dagster run: {outcome.run_id}")
    sys.stdout.flush()
    if _landed_something(doc):
        refresh_open_months(cfg, doc.get("ingest_run_id"))
    return EXIT_FAILED if doc and doc.get("unreadable") else EXIT_OK


def _landed_something(doc: dict | None) -> bool:
    if not doc:
        return False
    return bool(doc["totals"]["landed"] or doc.get("relanded", {}).get("landed"))


def refresh_open_months(cfg: Settings, ingest_run_id: str | None = None) -> list[str]:
    """After an ingest that landed events: rebuild the open months' drafts (month_to_date_job:
    the billing models without their tests and checks) so the explorers show month-to-date usage
    and estimates without a `bill`. Only the open months from the earliest month of the events
    that ingest run landed on: an event changes its own month's draft and, through a level it
    carries or an adjustment, later months', never an earlier one. A failure is reported and
    changes nothing landed; the month keeps its last draft until the next ingest or bill. The
    keys refreshed."""
    from orchestration.cli.engine import run_job

    if not cfg.ingest_refresh:
        return []
    published: set = set()
    earliest = None
    try:
        with readers.reader(cfg, notice=lambda _msg: None) as con:
            if readers.table_exists(con, "billing", "published_periods"):
                published = {row[0] for row in con.execute(
                    "select billing_period_start from billing.published_periods").fetchall()}
            if ingest_run_id and readers.table_exists(con, "raw", "usage_events"):
                first = con.execute("select min(event_at) from raw.usage_events "
                                    "where ingest_run_id = ?", [ingest_run_id]).fetchone()[0]
                earliest = first and first.date().replace(day=1)
    except readers.WarehouseBusy:
        pass
    refreshed = []
    for month in periods.open_months(clock.today(), published):
        if earliest is not None and month < earliest:
            continue
        key = periods.period_key(month)
        say(f"refreshing {key}'s month-to-date draft for the explorers "
            f"(METERLINE_INGEST_REFRESH=off skips it) ...")
        started = clock.now()
        outcome = run_job(cfg, "month_to_date_job", partition_key=key)
        if not outcome.success:
            first = (outcome.failures or ["failed"])[0].splitlines()[0]
            say(f"warning: {key}'s draft was not refreshed ({first}); the events landed, and "
                f"`meterline bill --period {key}` says why in full")
            continue
        refreshed.append(key)
        say(f"  {key} refreshed in {(clock.now() - started).total_seconds():.1f} s "
            f"(Dagster run {outcome.run_id})")
    return refreshed


def cmd_verify(args: argparse.Namespace, cfg: Settings) -> int:
    """Check the published ledger against its seals and the documents on disk (read only)."""
    from orchestration.billing import ledger

    cfg.require_home()
    with readers.reader(cfg) as con:
        result = ledger.verify(con, cfg.invoices_dir)
    if args.format == "json":
        print(json.dumps({"ok": result.ok, "invoices": result.invoices, "seals": result.seals,
                          "head": result.head,
                          "findings": [{"subject": f.subject, "field": f.field,
                                        "message": f.message, "pending": f.pending}
                                       for f in result.findings]}, indent=2))
    elif result.ok:
        print(f"The published ledger verifies: {result.invoices} invoice(s) and their "
              f"documents, {result.seals} seal(s); head {result.head}")
    else:
        first = result.findings[0]
        print(f"The published ledger does NOT verify: {len(result.findings)} finding(s). "
              f"The first: {first}")
        for finding in result.findings[1:]:
            print(f"  - {finding}")
        if result.tampered:
            print("Published rows or documents were changed behind Meterline's back: restore "
                  "them from a backup. Publishing refuses to build on this ledger.")
        else:
            print("Only documents of an interrupted publish are missing: `meterline bill "
                  "--period YYYY-MM --publish` writes them.")
    return EXIT_OK if result.ok else EXIT_FAILED


# --------------------------------------------------------------------------- catalog
def cmd_catalog(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.catalog.periods import period_problems
    from orchestration.catalog.read import load_catalog, read_currencies
    from orchestration.catalog.rules import validate
    from orchestration.catalog.summary import summary

    cfg.require_home()
    cfg.require_catalog()
    period_start = periods.parse_period(args.period) if args.period else None
    catalog = load_catalog(cfg.catalog_dir)
    currencies = read_currencies()
    problems = validate(catalog, currencies)
    if period_start is not None and cfg.warehouse_path.exists():
        with readers.reader(cfg) as con:
            problems += period_problems(con, catalog, period_start, currencies)
    on = period_start or clock.today()
    if args.format == "json":
        print(json.dumps({
            "catalog_dir": str(cfg.catalog_dir), "valid": not problems,
            "problems": [str(problem) for problem in problems],
            "rows": {name: len(getattr(catalog, name)) for name in (
                "customers", "meters", "product_items", "rates", "rate_tiers", "commitments")},
            "summary": None if problems else summary(catalog, on).splitlines(),
            "on": on.isoformat()}, indent=2))
        return EXIT_FAILED if problems else EXIT_OK
    if problems:
        print(f"The catalog in {cfg.catalog_dir} has {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_FAILED
    print(f"Catalog {cfg.catalog_dir}: valid.")
    print(summary(catalog, on))
    return EXIT_OK


def cmd_ui(args: argparse.Namespace, cfg: Settings) -> int:
    """Start the Dagster UI on the home's own instance (where the CLI's runs are recorded)."""
    import os
    import signal

    from orchestration.billing.project import ensure_manifest
    from orchestration.instance import prepare_instance

    cfg.require_home()
    cfg.require_catalog()
    prepare_instance(cfg)
    ensure_manifest()
    from orchestration.billing.partitions import (
        FIRST_PERIOD_ENV,
        first_landed_period,
        first_partition_key,
    )

    # The UI's partitions start at the first month with landed events, or METERLINE_FIRST_PERIOD
    # if set. Decided now: Dagster builds the partitions definition when the code location loads.
    if not os.environ.get(FIRST_PERIOD_ENV):
        os.environ[FIRST_PERIOD_ENV] = first_landed_period(cfg) or periods.period_key(clock.today())
    first = first_partition_key()  # a malformed METERLINE_FIRST_PERIOD stops here (exit 2)
    say(f"partitions from {first} ({FIRST_PERIOD_ENV}); `meterline bill` takes any month "
         f"from {periods.PARTITION_START}")
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster) if dagster.exists() else "dagster", "dev",
               "-m", "orchestration.definitions", "--host", args.host, "--port", str(args.port)]
    say(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={cfg.dagster_home}); "
         f"Ctrl-C stops it")
    # A process started in the background inherits SIGINT/SIGTERM as ignored, and dagster dev
    # then never stops: give it the default handlers back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.chdir(Path(__file__).resolve().parents[2])
    os.execvp(command[0], command)
    return EXIT_OK  # not reached
