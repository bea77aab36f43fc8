"""`meterline`: the command line (CONTRACT.md section 6). Thin: commands that change the
warehouse run Dagster jobs on the home's instance; the others only read.

Exit codes: 0 success; 1 a check or validation failed; 2 bad usage."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from orchestration.lib import periods, readers
from orchestration.lib import settings as settings_lib
from orchestration.lib.settings import Settings, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- ingest
def cmd_ingest(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.lib.runner import run_job

    cfg.require_home()
    cfg.require_catalog()
    for raw in args.paths:
        if not Path(raw).exists():
            raise UsageError(f"{raw}: no such file or directory")
    paths = list(args.paths)  # as given: the run executes in this process and directory
    if args.format == "table":
        _say(f"ingesting {'the given files' if paths else f'new files in {cfg.landing_dir}'} ...")
    outcome = run_job(cfg, "ingest_job", run_config={
        "ops": {"landed_events": {"config": {"paths": paths}}}})
    if not outcome.success:
        _say_failed_run("ingest failed", outcome)
        return EXIT_FAILED
    doc = outcome.metadata.get("raw/usage_events", {}).get("report")
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        from orchestration.ingestion.report import format_report

        print(format_report(doc))
        print(f"Dagster run: {outcome.run_id}")
    return EXIT_FAILED if doc and doc.get("unreadable") else EXIT_OK


# --------------------------------------------------------------------------- bill
def _validate_catalog_for(cfg: Settings, period_start: date):
    """Validate the whole catalog and the period's usage checks, listing every problem in one
    pass. If a run holds the warehouse and no snapshot exists yet, the usage checks are left to
    the billing run itself (it waits for the writer slot and validates again)."""
    from orchestration.lib import catalog as catalog_lib

    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    currencies = catalog_lib.read_currencies()
    problems = catalog_lib.validate(catalog, currencies)
    if cfg.warehouse_path.exists():
        try:
            with readers.reader(cfg) as con:
                problems += catalog_lib.period_problems(con, catalog, period_start, currencies)
        except readers.WarehouseBusy:
            pass
    return catalog, currencies, problems


def _published_state(cfg: Settings, period_start: date, parsed) -> tuple[bool, list[str]]:
    """(is the period published, catalog rows that priced it and changed since)."""
    from orchestration.billing import publish

    if not cfg.warehouse_path.exists():
        return False, []
    try:
        with readers.reader(cfg) as con:
            if not readers.table_exists(con, "billing", "published_periods") or \
                    not publish.is_published(con, period_start):
                return False, []
            return True, publish.changed_catalog_rows(con, parsed, period_start)
    except readers.WarehouseBusy:
        return False, []  # the publish step checks again inside the run


def _say_checks(outcome) -> None:
    """How many checks a successful run evaluated, and the non-blocking ones that failed."""
    _say(f"{outcome.checks_run} checks evaluated (dbt tests and reconciliation), "
         f"{outcome.checks_run - len(outcome.warnings)} passed")
    for warning in outcome.warnings:
        _say(f"warning (not blocking): {warning}")


def _say_failed_run(heading: str, outcome, *, publishing: bool = False) -> None:
    """Why a run failed: its step failures, then each failed check with its figures."""
    _say(f"{heading} (Dagster run {outcome.run_id}):")
    for failure in outcome.failures:
        _say("  " + failure.replace("\n", "\n  "))
    if outcome.failed_checks:
        _say(f"failed checks{' (nothing was published)' if publishing else ''}:")
        for check in outcome.failed_checks:
            _say(f"  - {check}")


def cmd_bill(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.billing import publish
    from orchestration.lib import catalog as catalog_lib
    from orchestration.lib.runner import run_job

    period_start = periods.parse_period(args.period)
    cfg.require_home()
    cfg.require_catalog()
    key = periods.period_key(period_start)
    catalog, currencies, problems = _validate_catalog_for(cfg, period_start)
    if problems:
        _say(f"the catalog in {cfg.catalog_dir} has {len(problems)} problem(s); nothing was "
             f"priced:")
        for problem in problems:
            _say(f"  - {problem}")
        return EXIT_FAILED
    published, changed = _published_state(cfg, period_start,
                                          catalog_lib.parse(catalog, currencies))
    if published:
        if changed and args.publish:
            _say(f"{key} was published, and catalog rows that priced it have changed since; "
                 f"nothing was written. Rates are history: restore these rows (close a rate "
                 f"with effective_to and add a new row instead):")
            for row in changed:
                _say(f"  - {row}")
            return EXIT_FAILED
        _say(f"{key} is published; nothing to do. Its published invoices:")
        return _print_invoices(cfg, period_start, None, "table")
    if args.publish:
        try:
            publish.check_grace(period_start, cfg.grace_hours, datetime.now(UTC))
        except publish.PublishRefused as refused:
            _say(str(refused))
            return EXIT_FAILED
    mtd = periods.is_month_to_date(period_start)
    _say(f"{'publishing' if args.publish else 'billing'} {key}"
         f"{' (month to date: a draft)' if mtd else ''}: validating the catalog, one dbt "
         f"build, every reconciliation check{', then publishing' if args.publish else ''} ...")
    started = datetime.now(UTC)
    outcome = run_job(cfg, "publish_job" if args.publish else "billing_job", partition_key=key)
    seconds = (datetime.now(UTC) - started).total_seconds()
    if not outcome.success:
        _say_failed_run(f"{'publishing' if args.publish else 'billing'} {key} failed", outcome,
                        publishing=args.publish)
        return EXIT_FAILED
    _say_checks(outcome)
    if args.publish:
        meta = outcome.metadata.get("billing/publish_invoices", {})
        _say(f"published {meta.get('invoice_count')} invoice(s) of {key} "
             f"({meta.get('invoice_numbers')}); documents in "
             f"{cfg.invoices_dir / key}; {seconds:.1f} s (Dagster run {outcome.run_id})")
    else:
        _say(f"built in {seconds:.1f} s (Dagster run {outcome.run_id})")
    return _print_invoices(cfg, period_start, None, "table")


# --------------------------------------------------------------------------- invoices
INVOICE_SQL = """
select invoice_id, customer_id, billing_period_start, billing_period_end, currency, subtotal,
       total, line_count, status, invoice_number, issued_at
from marts.fct_invoices
where billing_period_start = ? and (? is null or customer_id = ?)
order by customer_id
"""
LINE_SQL = """
select invoice_id, line_number, line_type, product_item_id, meter_id, description,
       usage_period_start, quantity, unit_price, tier, amount, currency
from marts.fct_invoice_lines
where billing_period_start = ? and (? is null or customer_id = ?)
order by invoice_id, line_number
"""


def _load_invoices(cfg: Settings, period_start: date, customer: str | None) -> list[dict]:
    from orchestration.lib.catalog import read_currencies

    minor = read_currencies()
    with readers.reader(cfg) as con:
        if not readers.table_exists(con, "marts", "fct_invoices"):
            return []
        cols = ["invoice_id", "customer_id", "billing_period_start", "billing_period_end",
                "currency", "subtotal", "total", "line_count", "status", "invoice_number",
                "issued_at"]
        invoices = [dict(zip(cols, row, strict=True)) for row in
                    con.execute(INVOICE_SQL, [period_start, customer, customer]).fetchall()]
        line_cols = ["invoice_id", "line_number", "line_type", "product_item_id", "meter_id",
                     "description", "usage_period_start", "quantity", "unit_price", "tier",
                     "amount", "currency"]
        lines = [dict(zip(line_cols, row, strict=True)) for row in
                 con.execute(LINE_SQL, [period_start, customer, customer]).fetchall()]
    by_invoice: dict[str, list[dict]] = {}
    for line in lines:
        by_invoice.setdefault(line["invoice_id"], []).append(line)
    for inv in invoices:
        unit = minor.get(inv["currency"], 2)
        inv["minor_unit"] = unit
        inv["lines"] = by_invoice.get(inv["invoice_id"], [])
    return invoices


def _money(value: Decimal | None, unit: int) -> str | None:
    return None if value is None else readers.format_money(value, unit)


def _qty(value: Decimal | None) -> str | None:
    return None if value is None else readers.format_quantity(value)


def _invoice_json(inv: dict) -> dict:
    unit = inv["minor_unit"]
    return {
        "invoice_id": inv["invoice_id"],
        "invoice_number": inv["invoice_number"],
        "customer_id": inv["customer_id"],
        "billing_period_start": inv["billing_period_start"].isoformat(),
        "billing_period_end": inv["billing_period_end"].isoformat(),
        "currency": inv["currency"],
        "status": inv["status"],
        "issued_at": inv["issued_at"].isoformat() if inv["issued_at"] else None,
        "subtotal": _money(inv["subtotal"], unit),
        "total": _money(inv["total"], unit),
        "line_count": inv["line_count"],
        "lines": [
            {
                "line_number": ln["line_number"],
                "line_type": ln["line_type"],
                "product_item_id": ln["product_item_id"],
                "meter_id": ln["meter_id"],
                "description": ln["description"],
                "usage_period_start": ln["usage_period_start"].isoformat(),
                "quantity": _qty(ln["quantity"]),
                "unit_price": _qty(ln["unit_price"]),
                "tier": ln["tier"],
                "amount": _money(ln["amount"], unit),
            }
            for ln in inv["lines"]
        ],
    }


def _render_table(invoices: list[dict], period_start: date) -> str:
    out = io.StringIO()
    if not invoices:
        return f"No invoices for {periods.period_key(period_start)}.\n"
    totals: dict[str, Decimal] = {}
    for inv in invoices:
        unit = inv["minor_unit"]
        number = f"  {inv['invoice_number']}" if inv["invoice_number"] else ""
        out.write(f"{inv['invoice_id']}{number}  {inv['status']}  customer {inv['customer_id']}  "
                  f"period {inv['billing_period_start']} to {inv['billing_period_end']} "
                  f"(exclusive)\n")
        rows = [("#", "type", "item", "tier", "quantity", "unit price", "amount")]
        for ln in inv["lines"]:
            rows.append((str(ln["line_number"]), ln["line_type"],
                         ln["product_item_id"] or "-", "" if ln["tier"] is None else str(ln["tier"]),
                         _qty(ln["quantity"]) or "", _qty(ln["unit_price"]) or "",
                         _money(ln["amount"], unit)))
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                cells = [c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True))]
                out.write("    " + "  ".join(cells).rstrip() + "\n")
        else:
            out.write("    (no lines)\n")
        out.write(f"    total {inv['currency']} {_money(inv['total'], unit)}\n\n")
        totals[inv["currency"]] = totals.get(inv["currency"], Decimal(0)) + inv["total"]
    summary = ", ".join(f"{cur} {readers.format_money(v, _unit_of(invoices, cur))}"
                        for cur, v in sorted(totals.items()))
    out.write(f"{len(invoices)} invoice(s) for {periods.period_key(period_start)}: {summary}\n")
    return out.getvalue()


def _unit_of(invoices: list[dict], currency: str) -> int:
    return next(inv["minor_unit"] for inv in invoices if inv["currency"] == currency)


def _render_csv(invoices: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["invoice_id", "invoice_number", "customer_id", "billing_period_start",
                     "billing_period_end", "status", "currency", "invoice_total", "line_number",
                     "line_type", "product_item_id", "meter_id", "description",
                     "usage_period_start", "quantity", "unit_price", "tier", "amount"])
    for inv in invoices:
        doc = _invoice_json(inv)
        head = [doc["invoice_id"], doc["invoice_number"] or "", doc["customer_id"],
                doc["billing_period_start"], doc["billing_period_end"], doc["status"],
                doc["currency"], doc["total"]]
        if not doc["lines"]:
            writer.writerow(head + [""] * 10)
        for ln in doc["lines"]:
            writer.writerow(head + [ln["line_number"], ln["line_type"],
                                    ln["product_item_id"] or "", ln["meter_id"] or "",
                                    ln["description"], ln["usage_period_start"],
                                    ln["quantity"] or "", ln["unit_price"] or "",
                                    "" if ln["tier"] is None else ln["tier"], ln["amount"]])
    return out.getvalue()


def _print_invoices(cfg: Settings, period_start: date, customer: str | None, fmt: str) -> int:
    invoices = _load_invoices(cfg, period_start, customer)
    if fmt == "json":
        print(json.dumps({"period": periods.period_key(period_start),
                          "invoices": [_invoice_json(inv) for inv in invoices]}, indent=2))
    elif fmt == "csv":
        sys.stdout.write(_render_csv(invoices))
    else:
        sys.stdout.write(_render_table(invoices, period_start))
    return EXIT_OK


def cmd_invoices(args: argparse.Namespace, cfg: Settings) -> int:
    period_start = periods.parse_period(args.period)
    cfg.require_home()
    cfg.require_catalog()
    return _print_invoices(cfg, period_start, args.customer, args.format)


# --------------------------------------------------------------------------- explain
EXPLAIN_EVENTS_SQL = """
select e.event_id, e.event_at, e.value, e.dimensions, e.landed_at
from marts.fct_billed_events b
join raw.usage_events e using (event_id)
where b.invoice_id = ? and b.product_item_id = ? and b.usage_period_start = ?
  and b.line_type = ?
order by {order}
"""

# The meter's aggregate over the events behind a usage line (section 3), before Q = max(., 0).
EXPLAIN_AGGREGATE_SQL = """
select case $aggregation
           when 'sum' then sum(e.value)
           when 'count' then count(*)
           when 'unique_count' then count(distinct json_extract_string(e.dimensions, $pointer))
           when 'max' then max(e.value)
           when 'latest' then first(e.value order by e.event_at desc, e.event_id desc)
       end
from marts.fct_billed_events b
join raw.usage_events e using (event_id)
where b.invoice_id = $invoice and b.product_item_id = $item
  and b.usage_period_start = $period and b.line_type = 'usage'
"""


def cmd_explain(args: argparse.Namespace, cfg: Settings) -> int:
    """The audit trail of an invoice's lines: meter, aggregation, aggregate, the rate and tiers
    that priced it, and the events behind it (the deciding event first for max and latest)."""
    from orchestration.lib.catalog import read_currencies

    cfg.require_home()
    cfg.require_catalog()
    minor = read_currencies()
    with readers.reader(cfg) as con:
        lines = con.execute(
            "select line_number, line_type, product_item_id, meter_id, description, quantity, "
            "unit_price, tier, amount, currency, rate_id, usage_period_start, usage_period_end "
            "from marts.fct_invoice_lines where invoice_id = ? and (? is null or line_number = ?) "
            "order by line_number", [args.invoice, args.line, args.line]).fetchall()
        if not lines:
            known = con.execute("select count(*) from marts.fct_invoices where invoice_id = ?",
                                [args.invoice]).fetchone()[0]
            if not known:
                raise UsageError(f"no invoice {args.invoice!r}: list them with "
                                 f"`meterline invoices --period YYYY-MM`")
            if args.line is not None:
                raise UsageError(f"invoice {args.invoice} has no line {args.line}")
            print(f"{args.invoice} has no lines.")
            return EXIT_OK
        for (number, line_type, item, meter, description, quantity, unit_price, tier, amount,
             currency, rate_id, period_start, period_end) in lines:
            print(f"{args.invoice} line {number}: {description}")
            print(f"  type {line_type}; amount {currency} "
                  f"{readers.format_money(amount, minor.get(currency, 2))}; "
                  f"usage period {period_start} to {period_end}")
            if item is None:
                print("  (no product item: a commitment top-up or true-up, computed from the "
                      "invoice's usage lines)")
                continue
            aggregation, unique_dimension = con.execute(
                "select aggregation, unique_dimension from catalog.meters where meter_id = ?",
                [meter]).fetchone() or (None, None)
            item_q = con.execute(
                "select sum(quantity) from marts.fct_invoice_lines where invoice_id = ? and "
                "product_item_id = ? and usage_period_start = ? and line_type = ?",
                [args.invoice, item, period_start, line_type]).fetchone()[0]
            print(f"  meter {meter}, aggregation {aggregation}"
                  f"{f' of {unique_dimension}' if unique_dimension else ''}; item {item}; "
                  f"this line's quantity {readers.format_quantity(quantity)}, the item's "
                  f"{'change in ' if line_type == 'adjustment' else ''}quantity "
                  f"{readers.format_quantity(item_q)}")
            if line_type == "usage":
                pointer = "/" + (unique_dimension or "").replace("~", "~0").replace("/", "~1")
                aggregate = con.execute(EXPLAIN_AGGREGATE_SQL, {
                    "aggregation": aggregation, "pointer": pointer, "invoice": args.invoice,
                    "item": item, "period": period_start}).fetchone()[0]
                print(f"  {aggregation} of the events behind it: "
                      f"{readers.format_quantity(aggregate) if aggregate is not None else 'none'}"
                      f"; billed quantity max(aggregate, 0) = {readers.format_quantity(item_q)}")
            if rate_id:
                rate = con.execute(
                    "select pricing_model, unit_price, package_size, free_units, effective_from, "
                    "effective_to, coalesce('customer ' || customer_id, 'list price') from catalog.rates "
                    "where rate_id = ?", [rate_id]).fetchone()
                if rate:
                    model, price, size, free, start, end, who = rate
                    print(f"  rate {rate_id} ({who}): {model}"
                          f"{f', unit price {readers.format_quantity(price)}' if price is not None else ''}"
                          f"{f', package size {readers.format_quantity(size)}' if size is not None else ''}"
                          f"{f', free units {readers.format_quantity(free)}' if free else ''}"
                          f", effective {start} to {end or 'open'}")
                for t, up_to, t_price, fee in con.execute(
                        "select tier, up_to, unit_price, flat_fee from catalog.rate_tiers "
                        "where rate_id = ? order by tier", [rate_id]).fetchall():
                    mark = "  <- this line" if tier == t else ""
                    print(f"    tier {t}: up to {readers.format_quantity(up_to) or 'no limit'}"
                          f" at {readers.format_quantity(t_price)}"
                          f"{f' + flat {readers.format_quantity(fee)}' if fee else ''}{mark}")
            order = {"max": "e.value desc, e.event_at, e.event_id",
                     "latest": "e.event_at desc, e.event_id desc"}.get(aggregation,
                                                                      "e.event_at, e.event_id")
            events = con.execute(EXPLAIN_EVENTS_SQL.format(order=order),
                                 [args.invoice, item, period_start, line_type]).fetchall()
            deciding = " (the deciding event first)" if aggregation in ("max", "latest") else ""
            print(f"  {len(events)} event(s) behind it; the first {min(10, len(events))} by "
                  f"(timestamp, event_id){deciding}:")
            shown = events[:10]
            if aggregation in ("max", "latest") and shown:
                shown = [shown[0]] + sorted(events[1:], key=lambda e: (e[1], e[0]))[:9]
            for event_id, at, value, dims, landed in shown:
                print(f"    {at.astimezone(UTC).isoformat()}  {event_id}  value "
                      f"{readers.format_quantity(value)}  {dims if dims != '{}' else ''}")
    return EXIT_OK


# --------------------------------------------------------------------------- catalog
def cmd_catalog(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.lib import catalog as catalog_lib

    cfg.require_home()
    cfg.require_catalog()
    period_start = periods.parse_period(args.period) if args.period else None
    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    currencies = catalog_lib.read_currencies()
    problems = catalog_lib.validate(catalog, currencies)
    if period_start is not None:
        if cfg.warehouse_path.exists():
            with readers.reader(cfg) as con:
                problems += catalog_lib.period_problems(con, catalog, period_start, currencies)
    if problems:
        print(f"The catalog in {cfg.catalog_dir} has {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_FAILED
    on = period_start or datetime.now(UTC).date()
    print(f"Catalog {cfg.catalog_dir}: valid.")
    print(catalog_lib.summary(catalog, on))
    return EXIT_OK


# --------------------------------------------------------------------------- demo
DEMO_MARKER = ".meterline-demo"
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "seeds"


def cmd_demo(args: argparse.Namespace, cfg: Settings) -> int:
    """Make a sample home (or reuse one it made), generate events for the demo price book
    (two full months and this month up to today 00:00 UTC), ingest them, bill and publish the
    last full month and print its invoices. Re-running the same day changes nothing: the generated files
    are identical, so ingest skips them, and billing is idempotent."""
    from orchestration.lib import catalog as catalog_lib
    from orchestration.lib import demo
    from orchestration.lib.runner import run_job

    home = cfg.home
    if home.exists() and any(home.iterdir()) and not (home / DEMO_MARKER).exists():
        raise UsageError(f"{home} is not empty and was not made by `meterline demo`: "
                         f"point METERLINE_HOME at a new directory")
    (home / "landing").mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("made by meterline demo\n")
    cfg = Settings(home=home, catalog_dir=DEMO_CATALOG, grace_hours=cfg.grace_hours)
    today = datetime.now(UTC).date()
    current = today.replace(day=1)
    last_full = periods.previous_period(current)
    months = [periods.previous_period(last_full), last_full, current]
    _say(f"demo home {home}, demo price book {DEMO_CATALOG}")
    catalog = catalog_lib.load_catalog(DEMO_CATALOG)
    with tempfile.TemporaryDirectory(prefix="meterline-demo-") as scratch:
        files = demo.generate_events(Path(scratch), catalog, months, until=today)
        # landed files are never modified: a file already in landing/ is left as it is
        new = [f for f in files if not (cfg.landing_dir / f.name).exists()]
        for path in new:
            shutil.copyfile(path, cfg.landing_dir / path.name)
    _say(f"generated {len(files)} event files for {', '.join(map(periods.period_key, months))}"
         f" ({len(new)} new in landing/)")
    started = datetime.now(UTC)
    outcome = run_job(cfg, "ingest_job", run_config={
        "ops": {"landed_events": {"config": {"paths": []}}}})
    if not outcome.success:
        _say_failed_run("demo ingest failed", outcome)
        return EXIT_FAILED
    from orchestration.ingestion.report import format_report

    _say(format_report(outcome.metadata["raw/usage_events"]["report"]))
    key = periods.period_key(last_full)
    can_publish = datetime.now(UTC) >= periods.grace_ends_at(last_full, cfg.grace_hours)
    _say(f"{'billing and publishing' if can_publish else 'billing (its grace period runs, so a draft)'}"
         f" {key} ...")
    outcome = run_job(cfg, "publish_job" if can_publish else "billing_job", partition_key=key)
    if not outcome.success:
        _say_failed_run(f"demo billing of {key} failed", outcome, publishing=can_publish)
        return EXIT_FAILED
    _say_checks(outcome)
    if can_publish:
        _say(f"published; documents in {cfg.invoices_dir / key}")
    _say(f"done in {(datetime.now(UTC) - started).total_seconds():.1f} s")
    return _print_invoices(cfg, last_full, None, "table")


# --------------------------------------------------------------------------- ui
def cmd_ui(args: argparse.Namespace, cfg: Settings) -> int:
    """Start the Dagster UI on the home's own instance (where the CLI's runs are recorded)."""
    import os
    import signal

    from orchestration.billing.project import ensure_manifest
    from orchestration.lib.runner import prepare_instance

    cfg.require_home()
    cfg.require_catalog()
    prepare_instance(cfg)
    ensure_manifest()
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster) if dagster.exists() else "dagster", "dev",
               "-m", "orchestration.definitions", "--host", args.host, "--port", str(args.port)]
    _say(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={cfg.dagster_home}); "
         f"Ctrl-C stops it")
    # A process started in the background inherits SIGINT/SIGTERM as ignored, and dagster dev
    # then never stops: give it the default handlers back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.chdir(Path(__file__).resolve().parents[1])
    os.execvp(command[0], command)
    return EXIT_OK  # not reached


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterline",
        description="Meterline: exact metered invoices from raw usage events "
        "(home: $METERLINE_HOME, default ./data; catalog: $METERLINE_CATALOG_DIR, default ./seeds).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="land event files (default: everything new in landing/)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("bill", help="validate the catalog and build a month's draft invoices")
    p.add_argument("--period", required=True, metavar="YYYY-MM")
    p.add_argument("--publish", action="store_true", help="publish the month (section 7)")
    p.set_defaults(func=cmd_bill)

    p = sub.add_parser("invoices", help="show a month's invoices")
    p.add_argument("--period", required=True, metavar="YYYY-MM")
    p.add_argument("--customer", metavar="ID")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_invoices)

    p = sub.add_parser("explain", help="the audit trail of an invoice's lines")
    p.add_argument("--invoice", required=True, metavar="ID")
    p.add_argument("--line", type=int, metavar="N")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("catalog", help="validate the catalog and summarise it")
    p.add_argument("--period", metavar="YYYY-MM")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("demo", help="make a sample home, ingest, bill and print invoices")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="start the Dagster UI on the home's instance")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster marks backfill_policy as beta on every import; a person running a command has no
    # use for it (the pins in pyproject.toml are exact).
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = settings_lib.load()
        return args.func(args, cfg)
    except readers.WarehouseBusy as exc:  # not bad usage: the command can run again later
        print(f"meterline: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except UsageError as exc:
        print(f"meterline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("meterline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `meterline explain ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
