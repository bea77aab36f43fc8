"""Invoice documents written when a period is published: one JSON and one HTML file per invoice
in ``$METERLINE_HOME/invoices/YYYY-MM/<invoice_id>.json|.html``, plus an ``index.html``.

Money is written as exact strings at the currency's minor unit. The seller comes from the
catalog's optional ``seller.csv``, the buyer's details and payment terms from the optional columns
of ``customers.csv`` (docs/contract.md E21, validated with the rest of the catalog); the due date
is the issue date plus the customer's terms (else the seller's, else 30 days). Every line carries
its ``calculation`` (documents_lines), so a reader recomputes each amount from the document.
Since E21 a PDF (documents_pdf, the same HTML printed on A4) is published beside them."""

from __future__ import annotations

import csv
import html
import json
import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from orchestration.billing import documents_pdf
from orchestration.billing.documents_lines import (
    TierRanges,
    adjustment_calculation,
    commitment_calculation,
    explain,
    usage_calculation,
)
from orchestration.billing.documents_pdf import PDF_SUFFIX
from orchestration.billing.pricer import Pricer, PricingError
from orchestration.catalog.model import Parsed, RateTier
from orchestration.catalog.parties import DEFAULT_TERMS_DAYS, Party, address_lines
from orchestration.lib import periods
from orchestration.lib.readers import format_money, format_quantity, quantity_or_none

NO_SELLER = "(no seller.csv in the catalog: docs/contract.md E21)"


def read_seller(catalog_dir: Path) -> dict[str, str]:
    """The first row of ``seller.csv`` as written, its empty cells left out (validated by the
    catalog check, catalog.parties)."""
    path = catalog_dir / "seller.csv"
    if path.exists():
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                return {k.strip(): (v or "").strip() for k, v in row.items()
                        if k and (v or "").strip()}
    return {"seller_name": NO_SELLER}


def _terms_days(seller: dict[str, str], details: Party | None) -> int:
    if details is not None and details.payment_terms_days is not None:
        return details.payment_terms_days
    text = seller.get("payment_terms_days", "")
    return int(text) if text.isdigit() else DEFAULT_TERMS_DAYS


def _tier_ranges(parsed: Parsed) -> TierRanges:
    """(rate, tier) -> (lower bound, up_to, flat fee), from the catalog that priced the period."""
    ranges: TierRanges = {}
    by_rate: dict[str, list[RateTier]] = {}
    for tier in parsed.rate_tiers:
        by_rate.setdefault(tier.rate_id, []).append(tier)
    for rate_id, tiers in by_rate.items():
        lower = Decimal(0)
        for tier in sorted(tiers, key=lambda t: t.tier or 0):
            ranges[(rate_id, tier.tier)] = (lower, tier.up_to, tier.flat_fee or Decimal(0))
            lower = tier.up_to if tier.up_to is not None else lower
    return ranges


def _repriced(invoice: dict, line: dict, calc: dict, rates: dict, tiers: TierRanges,
              minor_unit: int, parsed: Parsed) -> list[dict] | None:
    """The restated period's lines for the item at its quantity now, each with its
    calculation (priced again by billing.pricer with the rates that priced that period), when
    they add up to the adjustment's re-priced amount; None otherwise (the figures shown are
    then the amounts alone)."""
    restated = calc["restates"]
    if line["product_item_id"] is None or restated.get("quantity_now") is None:
        return None
    try:
        priced = Pricer(parsed, {invoice["currency"]: minor_unit}).price_item(
            invoice["customer_id"], line["product_item_id"], Decimal(restated["quantity_now"]),
            line["usage_period_start"])
    except (PricingError, ValueError, ArithmeticError):
        return None
    if sum((p.amount for p in priced), Decimal(0)) != Decimal(calc["repriced_amount"]):
        return None
    return [usage_calculation({"quantity": p.quantity, "unit_price": p.unit_price,
                               "tier": p.tier, "amount": p.amount, "rate_id": p.rate_id},
                              rates.get(p.rate_id), tiers, minor_unit) for p in priced]


def invoice_document(invoice: dict, *, parsed: Parsed, seller: dict[str, str],
                     minor_unit: int) -> dict:
    customers = {c.customer_id: c for c in parsed.customers}
    items = {i.product_item_id: i for i in parsed.product_items}
    meters = {m.meter_id: m for m in parsed.meters}
    rates = {r.rate_id: r for r in parsed.rates}
    tiers = _tier_ranges(parsed)
    customer = customers.get(invoice["customer_id"])
    usage_total = sum((ln["amount"] for ln in invoice["lines"] if ln["line_type"] == "usage"),
                      Decimal(0))
    commitment = next((c for c in parsed.commitments if c.customer_id == invoice["customer_id"]
                       and c.in_effect(invoice["billing_period_start"])), None)
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
        if line["line_type"] == "usage":
            doc["calculation"] = usage_calculation(line, rate, tiers, minor_unit)
        elif line["line_type"] == "minimum_commitment":
            doc["calculation"] = commitment_calculation(line, commitment, usage_total,
                                                        minor_unit)
        else:
            doc["calculation"] = adjustment_calculation(line, minor_unit)
            repriced = _repriced(invoice, line, doc["calculation"], rates, tiers, minor_unit,
                                 parsed)
            if repriced is not None:
                doc["calculation"]["repriced"] = repriced
        lines.append(doc)
    details = customer.details if customer else None
    terms = _terms_days(seller, details)
    issued = invoice["issued_at"].date()
    return {
        "invoice_id": invoice["invoice_id"],
        "invoice_number": invoice["invoice_number"],
        "status": invoice["status"],
        "issued_at": invoice["issued_at"].isoformat(),
        "invoice_date": invoice["issued_at"].date().isoformat(),
        "billing_period": {"start": invoice["billing_period_start"].isoformat(),
                           "end": invoice["billing_period_end"].isoformat()},
        "seller": seller,
        "due_date": (issued + timedelta(days=terms)).isoformat(),
        "payment_terms": {"net_days": terms, "text": f"Net {terms} days"},
        "customer": {"customer_id": invoice["customer_id"],
                     "customer_name": customer.customer_name if customer else None,
                     "legal_name": details.legal_name if details else None,
                     "address": list(details.address) if details else [],
                     "tax_id": details.tax_id if details else None,
                     "email": details.email if details else None},
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
.calc{font-size:.85rem} .terms{margin:1rem 0}
@page{size:A4;margin:14mm 12mm}
@media print{body{margin:0;font-size:9.5pt;font-kerning:none} .parties{gap:2rem}
table{table-layout:fixed} th,td{padding:.3rem .4rem} td.num,th.num{white-space:normal}
th:nth-child(1){width:5%} th:nth-child(2){width:53%} th:nth-child(3){width:17%}
th:nth-child(4){width:11%} th:nth-child(5){width:14%} tr{page-break-inside:avoid}}
"""


def _inclusive(start: str, end_exclusive: str) -> str:
    """A period as a person reads it: first to last day (the JSON keeps the exclusive end)."""
    last = date.fromisoformat(end_exclusive) - timedelta(days=1)
    return f"{start} to {last.isoformat()}"


def _line_detail(ln: dict, label: str, currency: str) -> str:
    """What a line's second row says: the tier range, the restated period, or a description
    that adds something to the item's name (never the name again)."""
    e = html.escape
    parts = []
    if "tier_range" in ln:
        rng = ln["tier_range"]
        upper = f" up to {rng['up_to']}" if rng["up_to"] else ""
        flat = f", plus a flat fee of {ln['flat_fee']}" if ln.get("flat_fee") else ""
        what = ("the whole quantity is" if ln.get("pricing_model") == "volume"
                else "units")  # a volume tier prices every unit, a graduated one its own
        parts.append(f"tier {ln['tier']}: {what} above {e(rng['above'])}{e(upper)}{e(flat)}")
    elif ln["description"] and ln["description"] != label:
        parts.append(e(ln["description"]))
    if ln["line_type"] == "adjustment":
        usage = ln["usage_period"]
        parts.append(f"restates usage of {e(_inclusive(usage['start'], usage['end']))}")
    if "calculation" in ln:  # since E21: the line's arithmetic, its figures as in the JSON
        parts.append(f"<span class=calc>{e(explain(ln['calculation'], currency, ln['unit']))}"
                     f"</span>")
    return "<br>".join(f"<span class=muted>{p}</span>" for p in parts)


def _party_lines(name: str | None, details: dict) -> list[str]:
    e = html.escape
    shown = [e(name)] if name else []
    address = details.get("address")
    shown += [e(a) for a in (address if isinstance(address, list) else address_lines(address))]
    if details.get("email"):
        shown.append(e(details["email"]))
    if details.get("tax_id"):
        shown.append(f"Tax ID {e(details['tax_id'])}")
    return shown


def invoice_html(doc: dict) -> str:
    e = html.escape
    seller = doc["seller"]
    seller_lines = _party_lines(seller.get("seller_name"), seller)
    customer = doc["customer"]
    buyer_lines = _party_lines(customer.get("legal_name") or customer["customer_name"], customer)
    if customer.get("legal_name") and customer["customer_name"] not in customer["legal_name"]:
        buyer_lines.insert(1, e(customer["customer_name"] or ""))
    if not customer.get("legal_name"):
        buyer_lines = [e(customer["customer_name"] or "")] + buyer_lines[1:]
    due = ""
    if "due_date" in doc:
        due = (f"<div class=terms>Payment terms: <b>{e(doc['payment_terms']['text'])}</b> "
               f"&middot; due date <b id=due-date>{e(doc['due_date'])}</b> &middot; "
               f"total due <b>{e(doc['currency'])} {e(doc['total'])}</b></div>")
    rows = []
    for ln in doc["lines"]:
        name = ln["product_item"] or ("Minimum commitment" if ln["line_type"] ==
                                      "minimum_commitment" else "Adjustment")
        detail = _line_detail(ln, name, doc["currency"])
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
<meta name="dcterms.created" content="{e(doc['issued_at'])}">
<meta name="dcterms.modified" content="{e(doc['issued_at'])}">
<style>{_CSS}</style></head>
<body>
<h1>Invoice {e(doc['invoice_number'])}</h1>
<div class=muted>{e(doc['invoice_id'])} &middot; issued {e(doc['invoice_date'])} &middot;
billing period {e(_inclusive(period['start'], period['end']))} &middot; {e(doc['currency'])}</div>
<div class=parties>
<div><div class=muted>From</div>{'<br>'.join(seller_lines)}</div>
<div><div class=muted>Bill to</div>{'<br>'.join(buyer_lines)}<br>
<span class=muted>{e(customer['customer_id'])}</span></div>
</div>
{due}
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
                     seller: dict[str, str], currencies: dict[str, int],
                     pdf: bool = True, workers: int = 1) -> dict[str, str]:
    """Every document of a period as ``{file name: text}``: ``<invoice_id>.json``, ``.html``
    and ``.pdf`` (its bytes as base64 text: ``document_bytes``) per invoice and the period's
    ``index.html``. Publishing keeps these texts in the
    ledger (billing.published_documents) in the same transaction as the invoices, so the files
    written afterwards, and any rewritten after a kill, are exactly what was published. The
    PDFs are printed by ``workers`` processes (documents_pdf.invoice_pdfs)."""
    texts: dict[str, str] = {}
    index_rows = []
    pages: dict[str, str] = {}
    for invoice in invoices:
        doc = invoice_document(invoice, parsed=parsed, seller=seller,
                               minor_unit=currencies.get(invoice["currency"], 2))
        texts[f"{invoice['invoice_id']}.json"] = json.dumps(doc, indent=2) + "\n"
        page = invoice_html(doc)
        texts[f"{invoice['invoice_id']}.html"] = page
        if pdf:
            texts[f"{invoice['invoice_id']}{PDF_SUFFIX}"] = ""  # printed below, in this order
            pages[f"{invoice['invoice_id']}{PDF_SUFFIX}"] = page
        index_rows.append(
            f"<tr><td><a href='{html.escape(invoice['invoice_id'])}.html'>"
            f"{html.escape(doc['invoice_number'])}</a></td><td>{html.escape(doc['customer']['customer_id'])}"
            f"</td><td class=num>{html.escape(doc['currency'])} {html.escape(doc['total'])}</td>"
            + (f"<td><a href='{html.escape(invoice['invoice_id'])}{PDF_SUFFIX}'>PDF</a></td>"
               if pdf else "") + "</tr>")
    if invoices:
        start: date = invoices[0]["billing_period_start"]
        texts[INDEX] = (
            f"<!doctype html><html><head><meta charset=utf-8><title>Invoices "
            f"{periods.period_key(start)}</title><style>{_CSS}</style></head><body>"
            f"<h1>Invoices {periods.period_key(start)}</h1><table><thead><tr><th>Number</th>"
            f"<th>Customer</th><th class=num>Total</th>{'<th>PDF</th>' if pdf else ''}</tr>"
            f"</thead><tbody>{''.join(index_rows)}"
            f"</tbody></table></body></html>\n")
    printed = documents_pdf.invoice_pdfs(list(pages.values()), workers=workers)
    for name, data in zip(pages, printed, strict=True):
        texts[name] = documents_pdf.encode(data)
    return texts


INDEX = "index.html"


def document_bytes(name: str, content: str) -> bytes:
    """The bytes of a document as written to disk from its stored text: a PDF's text is its
    bytes in base64, every other document is UTF-8 text."""
    if name.endswith(PDF_SUFFIX):
        return documents_pdf.decode(content)
    return content.encode("utf-8")


def write_files(folder: Path, texts: dict[str, str]) -> list[Path]:
    """Write documents atomically, each through a temporary file and a rename, so a kill never
    leaves a half-written document (only, at worst, a ``.tmp`` that the next write replaces)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        target = folder / name
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(document_bytes(name, text))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        written.append(target)
    return written
