"""`meterline invoices`: a month's invoices as a table, JSON or CSV (published months from the
ledger itself, drafts from the marts)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import date
from decimal import Decimal

from orchestration.cli.output import EXIT_OK
from orchestration.lib import periods, readers
from orchestration.lib.settings import Settings, UsageError

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
    from orchestration.catalog.read import read_currencies

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
        "subtotal": readers.money_or_none(inv["subtotal"], unit),
        "total": readers.money_or_none(inv["total"], unit),
        "line_count": inv["line_count"],
        "lines": [
            {
                "line_number": ln["line_number"],
                "line_type": ln["line_type"],
                "product_item_id": ln["product_item_id"],
                "meter_id": ln["meter_id"],
                "description": ln["description"],
                "usage_period_start": ln["usage_period_start"].isoformat(),
                "quantity": readers.quantity_or_none(ln["quantity"]),
                "unit_price": readers.quantity_or_none(ln["unit_price"]),
                "tier": ln["tier"],
                "amount": readers.money_or_none(ln["amount"], unit),
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
                         ln["product_item_id"] or "-",
                         "" if ln["tier"] is None else str(ln["tier"]),
                         readers.format_quantity(ln["quantity"]),
                         readers.format_quantity(ln["unit_price"]),
                         readers.format_money(ln["amount"], unit)))
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                cells = [c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True))]
                out.write("    " + "  ".join(cells).rstrip() + "\n")
        else:
            out.write("    (no lines)\n")
        out.write(f"    total {inv['currency']} {readers.money_or_none(inv['total'], unit)}\n\n")
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


def print_invoices(cfg: Settings, period_start: date, customer: str | None, fmt: str,
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
    if args.customer is not None:
        _require_customer(cfg, args.customer)
    return print_invoices(cfg, period_start, args.customer, args.format)


def _require_customer(cfg: Settings, customer: str) -> None:
    """An unknown customer is a usage error (exit 2), not an empty list: known are the
    catalog's customers and any customer the ledger has invoiced."""
    from orchestration.catalog.read import load_catalog

    if any(row["customer_id"] == customer for row in load_catalog(cfg.catalog_dir).customers):
        return
    with readers.reader(cfg) as con:
        if readers.table_exists(con, "billing", "published_invoices") and con.execute(
                "select count(*) from billing.published_invoices where customer_id = ?",
                [customer]).fetchone()[0]:
            return
    raise UsageError(f"unknown customer {customer!r}: it is not in customers.csv of "
                     f"{cfg.catalog_dir} and has no published invoice")
