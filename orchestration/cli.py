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
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from orchestration.lib import clock, periods, readers
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
            if readers.table_exists(con, "marts", "fct_invoices") and \
                    publish.marts_show_drafts(con, period_start):
                state.unfinished.append("the invoice marts still show drafts")
    except readers.WarehouseBusy:
        pass  # the publish step checks again inside the run
    return state


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
    state = _ledger_state(cfg, period_start, catalog_lib.parse(catalog, currencies))
    published, changed = state.published, state.changed
    if state.tampered and (args.publish or published):
        _say(f"the published ledger fails verification; nothing was written. "
             f"{len(state.tampered)} finding(s), the first: {state.tampered[0]}")
        for finding in state.tampered[1:20]:
            _say(f"  - {finding}")
        _say("`meterline verify` lists them all. Restore the published rows or documents from "
             "a backup: publishing never builds on a ledger that was changed behind its back.")
        return EXIT_FAILED
    if state.tampered:  # a draft only: it builds, but publishing will refuse
        _say(f"warning: the published ledger fails verification ({state.tampered[0]}; "
             f"`meterline verify` lists every finding): late usage restated in this draft may "
             f"build on altered amounts, and publishing is refused until it is restored")
    if published and state.unfinished:
        _say(f"{key} is published, but its publication was interrupted "
             f"({'; '.join(state.unfinished)}): completing it (no invoice changes) ...")
        outcome = run_job(cfg, "publish_job", partition_key=key)
        if not outcome.success:
            _say_failed_run(f"completing the publication of {key} failed", outcome,
                            publishing=True)
            return EXIT_FAILED
        _say(f"completed; documents in {cfg.invoices_dir / key}")
        return _print_invoices(cfg, period_start, None, args.format,
                               {"action": "completed", "run_id": outcome.run_id})
    if published:
        if changed and args.publish:
            _say(f"{key} was published, and catalog rows that priced it have changed since; "
                 f"nothing was written. Rates are history: restore these rows (close a rate "
                 f"with effective_to and add a new row instead):")
            for row in changed:
                _say(f"  - {row}")
            return EXIT_FAILED
        _say(f"{key} is published; nothing to do. Its published invoices:")
        return _print_invoices(cfg, period_start, None, args.format, {"action": "nothing_to_do"})
    if args.publish:
        try:
            publish.check_grace(period_start, cfg.grace_hours, clock.now())
        except publish.PublishRefused as refused:
            _say(str(refused))
            return EXIT_FAILED
    mtd = periods.is_month_to_date(period_start)
    _say(f"{'publishing' if args.publish else 'billing'} {key}"
         f"{' (month to date: a draft)' if mtd else ''}: validating the catalog, one dbt "
         f"build, every reconciliation check{', then publishing' if args.publish else ''} ...")
    started = clock.now()
    outcome = run_job(cfg, "publish_job" if args.publish else "billing_job", partition_key=key)
    seconds = (clock.now() - started).total_seconds()
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
    return _print_invoices(cfg, period_start, None, args.format, {
        "action": "published" if args.publish else "billed", "run_id": outcome.run_id,
        "checks_evaluated": outcome.checks_run, "warnings": outcome.warnings})


# --------------------------------------------------------------------------- invoices
INVOICE_SQL = """
select invoice_id, customer_id, billing_period_start, billing_period_end, currency, subtotal,
       total, line_count, status, invoice_number, issued_at
from {table}
where billing_period_start = ? and (? is null or customer_id = ?)
order by customer_id
"""
LINE_SQL = """
select invoice_id, line_number, line_type, product_item_id, meter_id, description,
       usage_period_start, quantity, unit_price, tier, amount, currency
from {table}
where billing_period_start = ? and (? is null or customer_id = ?)
order by invoice_id, line_number
"""


def _load_invoices(cfg: Settings, period_start: date, customer: str | None) -> list[dict]:
    from orchestration.lib.catalog import read_currencies

    minor = read_currencies()
    with readers.reader(cfg) as con:
        published = readers.table_exists(con, "billing", "published_periods") and con.execute(
            "select count(*) from billing.published_periods where billing_period_start = ?",
            [period_start]).fetchone()[0]
        # A published period is read from the ledger itself: the marts may lag behind it for a
        # moment (a publish killed before it refreshed them), a published month never does.
        invoices_table, lines_table = (
            ("billing.published_invoices", "billing.published_invoice_lines") if published
            else ("marts.fct_invoices", "marts.fct_invoice_lines"))
        if not readers.table_exists(con, *invoices_table.split(".")):
            return []
        cols = ["invoice_id", "customer_id", "billing_period_start", "billing_period_end",
                "currency", "subtotal", "total", "line_count", "status", "invoice_number",
                "issued_at"]
        invoices = [dict(zip(cols, row, strict=True)) for row in
                    con.execute(INVOICE_SQL.format(table=invoices_table),
                                [period_start, customer, customer]).fetchall()]
        line_cols = ["invoice_id", "line_number", "line_type", "product_item_id", "meter_id",
                     "description", "usage_period_start", "quantity", "unit_price", "tier",
                     "amount", "currency"]
        lines = [dict(zip(line_cols, row, strict=True)) for row in
                 con.execute(LINE_SQL.format(table=lines_table),
                             [period_start, customer, customer]).fetchall()]
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


def _print_invoices(cfg: Settings, period_start: date, customer: str | None, fmt: str,
                    extra: dict | None = None) -> int:
    invoices = _load_invoices(cfg, period_start, customer)
    if fmt == "json":
        print(json.dumps({"period": periods.period_key(period_start), **(extra or {}),
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
    as_json = args.format == "json"
    say = (lambda *_a, **_k: None) if as_json else print
    entries: list[dict] = []  # --format json: one object per line, the same facts
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
            say(f"{args.invoice} has no lines.")
            if as_json:
                print(json.dumps({"invoice_id": args.invoice, "lines": []}, indent=2))
            return EXIT_OK
        for (number, line_type, item, meter, description, quantity, unit_price, tier, amount,
             currency, rate_id, period_start, period_end) in lines:
            entry: dict = {
                "line_number": number, "line_type": line_type, "description": description,
                "product_item_id": item, "meter_id": meter,
                "amount": readers.format_money(amount, minor.get(currency, 2)),
                "currency": currency, "quantity": _qty(quantity),
                "unit_price": _qty(unit_price), "tier": tier, "rate_id": rate_id,
                "usage_period_start": period_start.isoformat(),
                "usage_period_end": period_end.isoformat()}
            entries.append(entry)
            say(f"{args.invoice} line {number}: {description}")
            say(f"  type {line_type}; amount {currency} "
                  f"{readers.format_money(amount, minor.get(currency, 2))}; "
                  f"usage period {period_start} to {period_end}")
            if item is None:
                say("  (no product item: a commitment top-up or true-up, computed from the "
                      "invoice's usage lines)")
                continue
            aggregation, unique_dimension = con.execute(
                "select aggregation, unique_dimension from catalog.meters where meter_id = ?",
                [meter]).fetchone() or (None, None)
            item_q = con.execute(
                "select sum(quantity) from marts.fct_invoice_lines where invoice_id = ? and "
                "product_item_id = ? and usage_period_start = ? and line_type = ?",
                [args.invoice, item, period_start, line_type]).fetchone()[0]
            entry.update(aggregation=aggregation, unique_dimension=unique_dimension,
                         item_quantity=_qty(item_q))
            say(f"  meter {meter}, aggregation {aggregation}"
                  f"{f' of {unique_dimension}' if unique_dimension else ''}; item {item}; "
                  f"this line's quantity {readers.format_quantity(quantity)}, the item's "
                  f"{'change in ' if line_type == 'adjustment' else ''}quantity "
                  f"{readers.format_quantity(item_q)}")
            if line_type == "usage":
                pointer = "/" + (unique_dimension or "").replace("~", "~0").replace("/", "~1")
                aggregate = con.execute(EXPLAIN_AGGREGATE_SQL, {
                    "aggregation": aggregation, "pointer": pointer, "invoice": args.invoice,
                    "item": item, "period": period_start}).fetchone()[0]
                entry["aggregate"] = _qty(aggregate)
                say(f"  {aggregation} of the events behind it: "
                      f"{readers.format_quantity(aggregate) if aggregate is not None else 'none'}"
                      f"; billed quantity max(aggregate, 0) = {readers.format_quantity(item_q)}")
            if rate_id:
                rate = con.execute(
                    "select pricing_model, unit_price, package_size, free_units, effective_from, "
                    "effective_to, coalesce('customer ' || customer_id, 'list price') from catalog.rates "
                    "where rate_id = ?", [rate_id]).fetchone()
                if rate:
                    model, price, size, free, start, end, who = rate
                    entry["rate"] = {"pricing_model": model, "unit_price": _qty(price),
                                     "package_size": _qty(size), "free_units": _qty(free),
                                     "effective_from": start.isoformat(),
                                     "effective_to": end.isoformat() if end else None,
                                     "applies_to": who, "tiers": []}
                    say(f"  rate {rate_id} ({who}): {model}"
                          f"{f', unit price {readers.format_quantity(price)}' if price is not None else ''}"
                          f"{f', package size {readers.format_quantity(size)}' if size is not None else ''}"
                          f"{f', free units {readers.format_quantity(free)}' if free else ''}"
                          f", effective {start} to {end or 'open'}")
                for t, up_to, t_price, fee in con.execute(
                        "select tier, up_to, unit_price, flat_fee from catalog.rate_tiers "
                        "where rate_id = ? order by tier", [rate_id]).fetchall():
                    if rate:
                        entry["rate"]["tiers"].append({
                            "tier": t, "up_to": _qty(up_to), "unit_price": _qty(t_price),
                            "flat_fee": _qty(fee), "this_line": tier == t})
                    mark = "  <- this line" if tier == t else ""
                    say(f"    tier {t}: up to {readers.format_quantity(up_to) or 'no limit'}"
                          f" at {readers.format_quantity(t_price)}"
                          f"{f' + flat {readers.format_quantity(fee)}' if fee else ''}{mark}")
            order = {"max": "e.value desc, e.event_at, e.event_id",
                     "latest": "e.event_at desc, e.event_id desc"}.get(aggregation,
                                                                      "e.event_at, e.event_id")
            events = con.execute(EXPLAIN_EVENTS_SQL.format(order=order),
                                 [args.invoice, item, period_start, line_type]).fetchall()
            deciding = " (the deciding event first)" if aggregation in ("max", "latest") else ""
            entry["event_count"] = len(events)
            say(f"  {len(events)} event(s) behind it; the first {min(10, len(events))} by "
                  f"(timestamp, event_id){deciding}:")
            shown = events[:10]
            if aggregation in ("max", "latest") and shown:
                shown = [shown[0]] + sorted(events[1:], key=lambda e: (e[1], e[0]))[:9]
            entry["events_shown"] = [
                {"event_id": event_id, "event_at": at.astimezone(UTC).isoformat(),
                 "value": _qty(value), "dimensions": json.loads(dims) if dims else {},
                 "landed_at": landed.astimezone(UTC).isoformat() if landed else None}
                for event_id, at, value, dims, landed in shown]
            for event_id, at, value, dims, landed in shown:
                say(f"    {at.astimezone(UTC).isoformat()}  {event_id}  value "
                      f"{readers.format_quantity(value)}  {dims if dims != '{}' else ''}")
    if as_json:
        print(json.dumps({"invoice_id": args.invoice, "lines": entries}, indent=2))
    return EXIT_OK


# --------------------------------------------------------------------------- verify
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
    on = period_start or clock.today()
    if args.format == "json":
        print(json.dumps({
            "catalog_dir": str(cfg.catalog_dir), "valid": not problems,
            "problems": [str(problem) for problem in problems],
            "rows": {name: len(getattr(catalog, name)) for name in (
                "customers", "meters", "product_items", "rates", "rate_tiers", "commitments")},
            "summary": None if problems else catalog_lib.summary(catalog, on).splitlines(),
            "on": on.isoformat()}, indent=2))
        return EXIT_FAILED if problems else EXIT_OK
    if problems:
        print(f"The catalog in {cfg.catalog_dir} has {len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_FAILED
    print(f"Catalog {cfg.catalog_dir}: valid.")
    print(catalog_lib.summary(catalog, on))
    return EXIT_OK


# --------------------------------------------------------------------------- demo
DEMO_MARKER = ".meterline-demo"
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "seeds"


def demo_months(now: datetime, grace_hours: int) -> tuple[date, list[date], list[date]]:
    """The demo's calendar at ``now``: (the month it publishes, the months after it that it
    drafts, every month it generates events for). It publishes the latest month whose grace
    period is over, drafts the months after it that have started before today 00:00 UTC, and
    generates one more month of history before the published one. On any day of the month."""
    current = now.date().replace(day=1)
    published = periods.previous_period(current)
    while now < periods.grace_ends_at(published, grace_hours):
        published = periods.previous_period(published)
    drafts, month = [], periods.next_period(published)
    while month <= current and datetime(month.year, month.month, 1, tzinfo=UTC) < \
            datetime(now.year, now.month, now.day, tzinfo=UTC):
        drafts.append(month)
        month = periods.next_period(month)
    return published, drafts, [periods.previous_period(published), published, *drafts]


def cmd_demo(args: argparse.Namespace, cfg: Settings) -> int:
    """Make a sample home (or reuse one it made), generate events for the demo price book (up to
    today 00:00 UTC), ingest them, publish the latest month whose grace period is over, draft the
    months after it, and print the published invoices. Re-running the same day changes nothing:
    the generated files are identical, so ingest skips them, and billing is idempotent."""
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
    now = clock.now()
    today = now.date()
    published, drafts, months = demo_months(now, cfg.grace_hours)
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
    started = clock.now()
    outcome = run_job(cfg, "ingest_job", run_config={
        "ops": {"landed_events": {"config": {"paths": []}}}})
    if not outcome.success:
        _say_failed_run("demo ingest failed", outcome)
        return EXIT_FAILED
    from orchestration.ingestion.report import format_report

    _say(format_report(outcome.metadata["raw/usage_events"]["report"]))
    key = periods.period_key(published)
    _say(f"publishing {key} (its grace period is over) ...")
    outcome = run_job(cfg, "publish_job", partition_key=key)
    if not outcome.success:
        _say_failed_run(f"demo publishing of {key} failed", outcome, publishing=True)
        return EXIT_FAILED
    _say_checks(outcome)
    _say(f"published; documents in {cfg.invoices_dir / key}")
    for month in drafts:
        mkey = periods.period_key(month)
        mtd = periods.is_month_to_date(month, now=clock.now())
        opens = periods.grace_ends_at(month, cfg.grace_hours).isoformat(timespec="minutes")
        why = "month to date" if mtd else f"its grace period runs until {opens}"
        _say(f"billing {mkey} as a draft ({why}) ...")
        outcome = run_job(cfg, "billing_job", partition_key=mkey)
        if not outcome.success:
            _say_failed_run(f"demo billing of {mkey} failed", outcome)
            return EXIT_FAILED
        _say(f"drafted {mkey}: `meterline invoices --period {mkey}` shows it; publish it with "
             f"`meterline bill --period {mkey} --publish` once its grace period is over")
    _say(f"done in {(clock.now() - started).total_seconds():.1f} s")
    return _print_invoices(cfg, published, None, "table")


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
    from orchestration.billing.assets import (FIRST_PERIOD_ENV, first_landed_period,
                                              first_partition_key)

    # The UI's partitions start at the first month with landed events, or METERLINE_FIRST_PERIOD
    # if set. Decided now: Dagster builds the partitions definition when the code location loads.
    if not os.environ.get(FIRST_PERIOD_ENV):
        os.environ[FIRST_PERIOD_ENV] = first_landed_period(cfg) or periods.period_key(clock.today())
    first = first_partition_key()  # a malformed METERLINE_FIRST_PERIOD stops here (exit 2)
    _say(f"partitions from {first} ({FIRST_PERIOD_ENV}); `meterline bill` takes any month "
         f"from {periods.PARTITION_START}")
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
_ENVIRONMENT = """\
environment:
  METERLINE_HOME         the home: landing/, warehouse.duckdb, invoices/, dagster/ (default ./data)
  METERLINE_CATALOG_DIR  the price book CSVs (default ./seeds)
  METERLINE_GRACE_HOURS  hours after a month ends before it may be published (default 24)
  METERLINE_NOW          pin the clock to an instant, e.g. 2026-12-01T05:00:00Z (tests, replays)

exit codes: 0 success; 1 a check or validation failed (the message says which); 2 bad usage.
docs: docs/contract.md (the rules), docs/operations.md (running it)."""

COMMANDS: dict[str, tuple[str, str]] = {  # name -> (what it does, an example)
    "ingest": ("land event files (default: everything new in landing/): counts per file, "
               "quarantine by reason, skipped and unreadable files",
               "meterline ingest\n  meterline ingest landing/usage_2026-10.jsonl.gz --format json"),
    "bill": ("validate the catalog, build a month's meter usage, rated usage and draft invoices, "
             "run every reconciliation check; with --publish, publish the month when they all "
             "passed (numbered invoices and their documents)",
             "meterline bill --period 2026-10\n  meterline bill --period 2026-10 --publish"),
    "invoices": ("show a month's invoices (published ones from the ledger itself)",
                 "meterline invoices --period 2026-10 --customer acme_corp --format json"),
    "explain": ("the audit trail of an invoice's lines: meter, aggregation, quantity, the rate "
                "and tiers, the events behind it",
                "meterline explain --invoice INV-202610-acme_corp --line 2"),
    "verify": ("check the published ledger (rows, seals, documents) and name the first invoice "
               "and field that no longer matches; read only",
               "meterline verify\n  meterline verify --format json"),
    "catalog": ("validate the price book (every problem listed) and summarise it",
                "meterline catalog --period 2026-10"),
    "demo": ("make a sample home, generate events, ingest them, publish the latest month whose "
             "grace period is over, draft the months after it, print the invoices",
             "METERLINE_HOME=/tmp/meterline-demo meterline demo"),
    "ui": ("start the Dagster UI on the home's instance (runs, assets, checks, schedule, sensor)",
           "meterline ui --port 3000"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meterline")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterline",
        description="Meterline: exact metered invoices from raw usage events.",
        epilog=_ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meterline {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func) -> argparse.ArgumentParser:
        what, example = COMMANDS[name]
        p = sub.add_parser(name, help=what,
                           description=textwrap.fill(what[0].upper() + what[1:] + ".", 88),
                           epilog=f"example:\n  {example}\n\n{_ENVIRONMENT}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    def period(p: argparse.ArgumentParser, *, required: bool, what: str) -> None:
        p.add_argument("--period", required=required, metavar="YYYY-MM",
                       help=f"{what} (a UTC calendar month, e.g. 2026-10)")

    def output(p: argparse.ArgumentParser, choices=("table", "json")) -> None:
        p.add_argument("--format", choices=list(choices), default="table",
                       help="table for people (default); json for programs, money as exact "
                       "strings" + ("; csv, one row per line" if "csv" in choices else ""))

    p = command("ingest", cmd_ingest)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders to land (default: everything new in "
                   "$METERLINE_HOME/landing/)")
    output(p)

    p = command("bill", cmd_bill)
    period(p, required=True, what="the month to bill")
    p.add_argument("--publish", action="store_true",
                   help="publish the month once every check passed: refused inside its grace "
                   "period; publishing a published month again does nothing")
    output(p)

    p = command("invoices", cmd_invoices)
    period(p, required=True, what="the month to show")
    p.add_argument("--customer", metavar="ID", help="only this customer's invoice")
    output(p, ("table", "json", "csv"))

    p = command("explain", cmd_explain)
    p.add_argument("--invoice", required=True, metavar="ID",
                   help="the invoice id (INV-YYYYMM-<customer>), as `invoices` shows it")
    p.add_argument("--line", type=int, metavar="N", help="only this line (default: every line)")
    output(p)

    p = command("verify", cmd_verify)
    output(p)

    p = command("catalog", cmd_catalog)
    period(p, required=False, what="also check the catalog against this month's landed usage")
    output(p)

    command("demo", cmd_demo)

    p = command("ui", cmd_ui)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster marks backfill_policy as beta on every import; a person running a command has no
    # use for it (the pins in pyproject.toml are exact).
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = None
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
    except Exception as exc:  # a full disk (DiskFull, ENOSPC, SQLite, DuckDB): one line
        from orchestration.lib import diskspace

        home = cfg.home if cfg is not None else Path.cwd()
        message = diskspace.disk_full_message(
            exc, home, diskspace.file_size(home / "warehouse.duckdb"))
        if message is None:
            raise
        print(f"meterline: {message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
