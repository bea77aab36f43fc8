"""Invoice documents written when a period is published: one JSON and one HTML file per invoice
in ``$METERLINE_HOME/invoices/YYYY-MM/<invoice_id>.json|.html``, plus an ``index.html``.

Money is written as exact strings at the currency's minor unit. The seller comes from an
optional ``seller.csv`` in the catalog directory (``seller_name,address,email,tax_id``)."""

from __future__ import annotations

import csv
import html
import json
import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from orchestration.catalog.model import Parsed, RateTier
from orchestration.lib import periods
from orchestration.lib.readers import format_money, format_quantity, quantity_or_none


def read_seller(catalog_dir: Path) -> dict[str, str]:
    path = catalog_dir / "seller.csv"
    if path.exists():
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                return {k: (v or "").strip() for k, v in row.items() if k}
    return {"seller_name": "Meterline user (add seller.csv to the catalog)"}


def _tier_ranges(parsed: Parsed
                 ) -> dict[tuple[str, int], tuple[Decimal, Decimal | None, Decimal | None]]:
    """(rate, tier) -> (lower bound, up_to, flat fee), from the catalog that priced the period."""
    ranges: dict[tuple[str, int], tuple[Decimal, Decimal | None, Decimal | None]] = {}
    by_rate: dict[str, list[RateTier]] = {}
    for tier in parsed.rate_tiers:
        by_rate.setdefault(tier.rate_id, []).append(tier)
    for rate_id, tiers in by_rate.items():
        lower = Decimal(0)
        for tier in sorted(tiers, key=lambda t: t.tier or 0):
            ranges[(rate_id, tier.tier)] = (lower, tier.up_to, tier.flat_fee or None)
            lower = tier.up_to if tier.up_to is not None else lower
    return ranges


def invoice_document(invoice: dict, *, parsed: Parsed, seller: dict[str, str],
                     minor_unit: int) -> dict:
    customers = {c.customer_id: c for c in parsed.customers}
    items = {i.product_item_id: i for i in parsed.product_items}
    meters = {m.meter_id: m for m in parsed.meters}
    rates = {r.rate_id: r for r in parsed.rates}
    tiers = _tier_ranges(parsed)
    customer = customers.get(invoice["customer_id"])
    lines = []
    for line in invoice["lines"]:
        item = items.get(line["product_item_id"]) if line["product_item_id"] else None
        meter = meters.get(line["meter_id"]) if line["meter_id"] else None
        rate = rates.get(line["rate_id"]) if line.get("rate_id") else None
        doc = {
            "line_number": line["line_number"],
            "line_type": line["line_type"],
            "product_item_id": line["product_item_id"],
            "product_item": item.display_name if item else None,
            "description": line["description"],
            "usage_period": {"start": line["usage_period_start"].isoformat(),
                             "end": line["usage_period_end"].isoformat()},
            "quantity": None if line["quantity"] is None else format_quantity(line["quantity"]),
            "unit": meter.unit if meter else None,
            "pricing_model": rate.pricing_model if rate else None,
            "unit_price": quantity_or_none(line["unit_price"]),
            "tier": line["tier"],
            "amount": format_money(line["amount"], minor_unit),
        }
        if line["tier"] is not None and line.get("rate_id"):
            lower, upper, flat = tiers.get((line["rate_id"], line["tier"]), (None, None, None))
            doc["tier_range"] = {"above": None if lower is None else format_quantity(lower),
                                 "up_to": None if upper is None else format_quantity(upper)}
            if flat:  # in the amount: quantity x unit price + flat fee, rounded once
                doc["flat_fee"] = format_money(flat, minor_unit)
        lines.append(doc)
    return {
        "invoice_id": invoice["invoice_id"],
        "invoice_number": invoice["invoice_number"],
        "status": invoice["status"],
        "issued_at": invoice["issued_at"].isoformat(),
        "invoice_date": invoice["issued_at"].date().isoformat(),
        "billing_period": {"start": invoice["billing_period_start"].isoformat(),
                           "end": invoice["billing_period_end"].isoformat()},
        "seller": seller,
        "customer": {"customer_id": invoice["customer_id"],
                     "customer_name": customer.customer_name if customer else None},
        "currency": invoice["currency"],
        "lines": lines,
        "subtotal": format_money(invoice["subtotal"], minor_unit),
        "total": format_money(invoice["total"], minor_unit),
    }


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2.5rem;color:#1f2328}
h1{font-size:1.6rem;margin:0 0 .3rem} .muted{color:#57606a}
.parties{display:flex;gap:4rem;margin:1.5rem 0} .parties div{min-width:14rem}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{padding:.45rem .6rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.adjustment td{background:#fff8e1}
tfoot tr.subtotal td{border-top:1px solid #1f2328}
tfoot tr.total td{font-weight:700;font-size:1.1rem;border-top:2px solid #1f2328;border-bottom:none}
"""


def _inclusive(start: str, end_exclusive: str) -> str:
    """A period as a person reads it: first to last day (the JSON keeps the exclusive end)."""
    last = date.fromisoformat(end_exclusive) - timedelta(days=1)
    return f"{start} to {last.isoformat()}"


def _line_detail(ln: dict, label: str) -> str:
    """What a line's second row says: the tier range, the restated period, or a description
    that adds something to the item's name (never the name again)."""
    e = html.escape
    parts = []
    if "tier_range" in ln:
        rng = ln["tier_range"]
        upper = f" up to {rng['up_to']}" if rng["up_to"] else ""
        flat = f", plus a flat fee of {ln['flat_fee']}" if ln.get("flat_fee") else ""
        parts.append(f"tier {ln['tier']}: units above {e(rng['above'])}{e(upper)}{e(flat)}")
    elif ln["description"] and ln["description"] != label:
        parts.append(e(ln["description"]))
    if ln["line_type"] == "adjustment":
        usage = ln["usage_period"]
        parts.append(f"restates usage of {e(_inclusive(usage['start'], usage['end']))}")
    return "<br>".join(f"<span class=muted>{p}</span>" for p in parts)


def invoice_html(doc: dict) -> str:
    e = html.escape
    seller = doc["seller"]
    seller_lines = [e(seller[k]) for k in ("seller_name", "address", "email") if seller.get(k)]
    if seller.get("tax_id"):
        seller_lines.append(f"Tax ID {e(seller['tax_id'])}")
    rows = []
    for ln in doc["lines"]:
        name = ln["product_item"] or ("Minimum commitment" if ln["line_type"] ==
                                      "minimum_commitment" else "Adjustment")
        detail = _line_detail(ln, name)
        label = f"{name} (adjustment)" if ln["line_type"] == "adjustment" else name
        qty = "" if ln["quantity"] is None else f"{ln['quantity']} {e(ln['unit'] or '')}"
        rows.append(
            f"<tr class='{e(ln['line_type'])}'><td>{ln['line_number']}</td><td>{e(label)}"
            f"{'<br>' + detail if detail else ''}</td><td class=num>{qty}</td>"
            f"<td class=num>{e(ln['unit_price'] or '')}</td>"
            f"<td class=num>{e(ln['amount'])}</td></tr>")
    period = doc["billing_period"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Invoice {e(doc['invoice_number'])} ({e(doc['invoice_id'])})</title>
<style>{_CSS}</style></head>
<body>
<h1>Invoice {e(doc['invoice_number'])}</h1>
<div class=muted>{e(doc['invoice_id'])} &middot; issued {e(doc['invoice_date'])} &middot;
billing period {e(_inclusive(period['start'], period['end']))} &middot; {e(doc['currency'])}</div>
<div class=parties>
<div><div class=muted>From</div>{'<br>'.join(seller_lines)}</div>
<div><div class=muted>Bill to</div>{e(doc['customer']['customer_name'] or '')}<br>
<span class=muted>{e(doc['customer']['customer_id'])}</span></div>
</div>
<table>
<thead><tr><th>#</th><th>Item</th><th class=num>Quantity</th><th class=num>Unit price</th>
<th class=num>Amount ({e(doc['currency'])})</th></tr></thead>
<tbody>
{''.join(rows) or '<tr><td colspan=5 class=muted>No usage in this period</td></tr>'}
</tbody>
<tfoot>
<tr class=subtotal><td></td><td>Subtotal</td><td></td><td></td><td class=num>{e(doc['subtotal'])}</td></tr>
<tr class=total><td></td><td>Total due</td><td></td><td></td><td class=num id=total>{e(doc['currency'])} {e(doc['total'])}</td></tr>
</tfoot>
</table>
</body></html>
"""


def render_documents(invoices: list[dict], *, parsed: Parsed,
                     seller: dict[str, str], currencies: dict[str, int]) -> dict[str, str]:
    """Every document of a period as ``{file name: text}``: ``<invoice_id>.json`` and
    ``.html`` per invoice and the period's ``index.html``. Publishing keeps these texts in the
    ledger (billing.published_documents) in the same transaction as the invoices, so the files
    written afterwards, and any rewritten after a kill, are exactly what was published."""
    texts: dict[str, str] = {}
    index_rows = []
    for invoice in invoices:
        doc = invoice_document(invoice, parsed=parsed, seller=seller,
                               minor_unit=currencies.get(invoice["currency"], 2))
        texts[f"{invoice['invoice_id']}.json"] = json.dumps(doc, indent=2) + "\n"
        texts[f"{invoice['invoice_id']}.html"] = invoice_html(doc)
        index_rows.append(
            f"<tr><td><a href='{html.escape(invoice['invoice_id'])}.html'>"
            f"{html.escape(doc['invoice_number'])}</a></td><td>{html.escape(doc['customer']['customer_id'])}"
            f"</td><td class=num>{html.escape(doc['currency'])} {html.escape(doc['total'])}</td></tr>")
    if invoices:
        start: date = invoices[0]["billing_period_start"]
        texts[INDEX] = (
            f"<!doctype html><html><head><meta charset=utf-8><title>Invoices "
            f"{periods.period_key(start)}</title><style>{_CSS}</style></head><body>"
            f"<h1>Invoices {periods.period_key(start)}</h1><table><thead><tr><th>Number</th>"
            f"<th>Customer</th><th class=num>Total</th></tr></thead><tbody>{''.join(index_rows)}"
            f"</tbody></table></body></html>\n")
    return texts


INDEX = "index.html"


def write_files(folder: Path, texts: dict[str, str]) -> list[Path]:
    """Write documents atomically, each through a temporary file and a rename, so a kill never
    leaves a half-written document (only, at worst, a ``.tmp`` that the next write replaces)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        target = folder / name
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        written.append(target)
    return written
