"""`meterline explain`: the audit trail of an invoice's lines."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC
from decimal import Decimal

from orchestration.catalog.model import LEVEL_AGGREGATIONS
from orchestration.cli import explain_level
from orchestration.cli.output import EXIT_OK
from orchestration.lib import readers, snapshot
from orchestration.lib.readers import format_money as fmt_money
from orchestration.lib.readers import format_quantity as fmt_q
from orchestration.lib.readers import quantity_or_none as qty
from orchestration.lib.settings import Settings, UsageError

# The events behind a line, as the bill that built it recorded them (marts.fct_invoice_line_events:
# at most 10, in the order shown, with the line's event count and the meter's aggregate over all
# its events, before Q = max(., 0)): nothing here reads per-event tables, so explain costs the
# same at any volume and answers from the readers' snapshot while a run writes. A level meter's
# line is the exception: its level section (carried level, steps, integral) reads the one
# customer's landed events of that meter (sql/explain_level.sql), so it needs the warehouse.
INVOICE_NUMBER_RE = re.compile(r"MLN-\d{6,}", re.IGNORECASE)
EXPLAIN_EVENTS_SQL = """
select event_id, event_at, value, dimensions, landed_at, event_count, aggregate_value
from marts.fct_invoice_line_events
where invoice_id = ? and product_item_id = ? and usage_period_start = ? and line_type = ?
order by shown_rank
"""
def _invoice(con, invoice_id: str) -> tuple:
    """(customer, billing period start, status, usage accrued to, published at) of an invoice."""
    has_accrued = con.execute(
        "select count(*) from information_schema.columns where table_schema = 'marts' and "
        "table_name = 'fct_invoices' and column_name = 'usage_accrued_to'").fetchone()[0]
    # a warehouse billed before usage_accrued_to existed: null, i.e. the period's end
    customer, start, status, accrued_to = con.execute(
        "select customer_id, billing_period_start, status, "
        f"{'usage_accrued_to' if has_accrued else 'null'} from marts.fct_invoices "
        "where invoice_id = ?", [invoice_id]).fetchone()
    return customer, start, status, accrued_to, explain_level.published_at(con, start)


def _invoice_id(con, given: str) -> str:
    """The invoice id of ``given``: an invoice id, or the number printed on a published
    document (``MLN-000001``), which names the same invoice."""
    if INVOICE_NUMBER_RE.fullmatch(given) and readers.table_exists(
            con, "billing", "published_invoices"):
        found = con.execute("select invoice_id from billing.published_invoices "
                            "where invoice_number = ?", [given.upper()]).fetchone()
        if found is None:
            raise UsageError(f"no published invoice numbered {given!r}: list them with "
                             f"`meterline invoices --period YYYY-MM`")
        return found[0]
    return given


def cmd_explain(args: argparse.Namespace, cfg: Settings) -> int:
    """The audit trail of an invoice's lines: meter, aggregation, aggregate, the rate and tiers
    that priced it, and the events behind it (the deciding event first for max and latest);
    for a level meter's line, the level carried in, its steps, the integral and the quantity."""
    from orchestration.catalog.read import read_currencies

    cfg.require_home()
    cfg.require_catalog()
    minor = read_currencies()
    as_json = args.format == "json"
    say = (lambda *_a, **_k: None) if as_json else print
    entries: list[dict] = []  # --format json: one object per line, the same facts
    with readers.reader(cfg) as con:
        args.invoice = _invoice_id(con, args.invoice)
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
        if not readers.table_exists(con, "marts", "fct_invoice_line_events"):
            raise UsageError(f"the events behind {args.invoice}'s lines are not recorded yet "
                             f"(a warehouse billed by an older Meterline): run `meterline bill "
                             f"--period YYYY-MM` for its period once, then explain again")
        invoice = None  # read once, for the first level meter's line
        events_served = (not snapshot.is_snapshot(con)
                         and readers.table_exists(con, "raw", "usage_events"))
        levels: dict[tuple, dict] = {}  # an item's tier lines share one level
        for (number, line_type, item, meter, description, quantity, unit_price, tier, amount,
             currency, rate_id, period_start, period_end) in lines:
            entry: dict = {
                "line_number": number, "line_type": line_type, "description": description,
                "product_item_id": item, "meter_id": meter,
                "amount": fmt_money(amount, minor.get(currency, 2)),
                "currency": currency, "quantity": qty(quantity),
                "unit_price": qty(unit_price), "tier": tier, "rate_id": rate_id,
                "usage_period_start": period_start.isoformat(),
                "usage_period_end": period_end.isoformat()}
            entries.append(entry)
            say(f"{args.invoice} line {number}: {description}")
            say(f"  type {line_type}; amount {currency} "
                  f"{fmt_money(amount, minor.get(currency, 2))}; "
                  f"usage period {period_start} to {period_end}")
            if item is None:
                say("  (no product item: a commitment top-up or true-up, computed from the "
                      "invoice's usage lines)")
                continue
            meter_row = con.execute(
                "select m.aggregation, m.unique_dimension, m.time_unit, "
                "(select dimension_filter from catalog.product_items where product_item_id = ?) "
                "from catalog.meters as m where m.meter_id = ?",
                [item, meter]).fetchone() or (None, None, None, None)
            aggregation, unique_dimension = meter_row[:2]
            is_level = aggregation in LEVEL_AGGREGATIONS
            item_q = con.execute(
                "select sum(quantity) from marts.fct_invoice_lines where invoice_id = ? and "
                "product_item_id = ? and usage_period_start = ? and line_type = ?",
                [args.invoice, item, period_start, line_type]).fetchone()[0]
            entry.update(aggregation=aggregation, unique_dimension=unique_dimension,
                         item_quantity=qty(item_q))
            say(f"  meter {meter}, aggregation {aggregation}"
                  f"{f' of {unique_dimension}' if unique_dimension else ''}; item {item}; "
                  f"this line's quantity {fmt_q(quantity)}, the item's "
                  f"{'change in ' if line_type == 'adjustment' else ''}quantity "
                  f"{fmt_q(item_q)}")
            level = None
            if is_level:
                key = (item, period_start, line_type)
                if key not in levels:
                    invoice = invoice or _invoice(con, args.invoice)
                    levels[key] = explain_level.line_level(con, invoice, entry, item_q, meter_row,
                                               events_served)
                level = levels[key]
            shown = con.execute(EXPLAIN_EVENTS_SQL, [args.invoice, item, period_start,
                                                     line_type]).fetchall()
            event_count = shown[0][5] if shown else 0
            if line_type == "usage":
                aggregate = shown[0][6] if shown else None
                if is_level and aggregate is None and "quantity" in level:
                    aggregate = Decimal(level["quantity"])
                entry["aggregate"] = qty(aggregate)
                what = "the level (worked out below)" if is_level else "the events behind it"
                say(f"  {aggregation} of {what}: "
                      f"{fmt_q(aggregate) if aggregate is not None else 'none'}"
                      f"; billed quantity max(aggregate, 0) = {fmt_q(item_q)}")
            if rate_id:
                rate = con.execute(
                    "select pricing_model, unit_price, package_size, free_units, effective_from, "
                    "effective_to, coalesce('customer ' || customer_id, 'list price') "
                    "from catalog.rates where rate_id = ?", [rate_id]).fetchone()
                if rate:
                    model, price, size, free, start, end, who = rate
                    entry["rate"] = {"pricing_model": model, "unit_price": qty(price),
                                     "package_size": qty(size), "free_units": qty(free),
                                     "effective_from": start.isoformat(),
                                     "effective_to": end.isoformat() if end else None,
                                     "applies_to": who, "tiers": []}
                    say(f"  rate {rate_id} ({who}): {model}"
                          f"{f', unit price {fmt_q(price)}' if price is not None else ''}"
                          f"{f', package size {fmt_q(size)}' if size is not None else ''}"
                          f"{f', free units {fmt_q(free)}' if free else ''}"
                          f", effective {start} to {end or 'open'}")
                for t, up_to, t_price, fee in con.execute(
                        "select tier, up_to, unit_price, flat_fee from catalog.rate_tiers "
                        "where rate_id = ? order by tier", [rate_id]).fetchall():
                    if rate:
                        entry["rate"]["tiers"].append({
                            "tier": t, "up_to": qty(up_to), "unit_price": qty(t_price),
                            "flat_fee": qty(fee), "this_line": tier == t})
                    mark = "  <- this line" if tier == t else ""
                    say(f"    tier {t}: up to {fmt_q(up_to) or 'no limit'}"
                          f" at {fmt_q(t_price)}"
                          f"{f' + flat {fmt_q(fee)}' if fee else ''}{mark}")
            deciding = " (the deciding event first)" if aggregation in ("max", "latest") else ""
            own = (" of the period (its own; earlier ones make the carried level)"
                   if is_level else "")
            entry["event_count"] = event_count
            say(f"  {event_count} event(s){own} behind it; the first {len(shown)} by "
                  f"(timestamp, event_id){deciding}:")
            entry["events_shown"] = [
                {"event_id": event_id, "event_at": at.astimezone(UTC).isoformat(),
                 "value": qty(value), "dimensions": json.loads(dims) if dims else {},
                 "landed_at": landed.astimezone(UTC).isoformat() if landed else None}
                for event_id, at, value, dims, landed, _count, _aggregate in shown]
            for event_id, at, value, dims, _landed, _count, _aggregate in shown:
                say(f"    {at.astimezone(UTC).isoformat()}  {event_id}  value "
                      f"{fmt_q(value)}  {dims if dims != '{}' else ''}")
            if level is not None:
                entry["level"] = level
                if line_type == "adjustment":
                    say(f"  this adjustment restates {period_start:%Y-%m} for item {item}: its "
                        f"level again, with the events landed when this invoice was built")
                explain_level.say_level(say, level)
                explain_level.say_outcome(say, entry, level)
    if as_json:
        print(json.dumps({"invoice_id": args.invoice, "lines": entries}, indent=2))
    return EXIT_OK
