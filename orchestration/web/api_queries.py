"""Every SQL the HTTP API runs (orchestration/web/api.py): one query per request, rows as
dicts. Everything a request supplies is a parameter (``$name``), never text in the SQL. The
tables are the marts of docs/contract.md E19 and section 5 as the readers' snapshot serves
them: marts.dim_customers, fct_usage_daily, fct_invoices, fct_invoice_lines.

Each query starts from the customer's row of marts.dim_customers (left joins after it), so one
query says both whether the customer exists (no row at all: 404) and what it has (a row of
NULLs: nothing in the range)."""

from __future__ import annotations

from datetime import date

from orchestration.web.queries import FALLBACK_MINOR_UNIT, rows


def usage_daily(con, customer_id: str, start: date, end: date) -> list[dict] | None:
    """The customer's rows of marts.fct_usage_daily with ``start <= usage_date < end``; None
    when there is no such customer."""
    found = rows(con, """
        select d.usage_date, d.meter_id, d.product_item_id, d.aggregation, d.is_additive,
               d.event_count, d.quantity
        from marts.dim_customers as c
        left join marts.fct_usage_daily as d
            on d.customer_id = c.customer_id and d.usage_date >= $start and d.usage_date < $end
        where c.customer_id = $c
        order by d.usage_date, d.meter_id, d.product_item_id nulls last
    """, {"c": customer_id, "start": start, "end": end})
    if not found:
        return None
    return [r for r in found if r["usage_date"] is not None]


def invoice_lines(con, customer_id: str) -> list[dict] | None:
    """One row per invoice line (an invoice without lines: one row, line columns NULL), the
    invoice's columns and its currency's minor unit on each, newest period first; None when
    there is no such customer."""
    found = rows(con, f"""
        select i.invoice_id, i.invoice_number, i.status, i.billing_period_start,
               i.billing_period_end, i.currency, i.subtotal, i.total, i.line_count,
               i.issued_at, i.usage_accrued_to,
               coalesce(cur.minor_unit, {FALLBACK_MINOR_UNIT}) as minor_unit,
               l.line_number, l.line_type, l.product_item_id, l.meter_id, l.description,
               l.usage_period_start, l.usage_period_end, l.quantity, l.unit_price, l.tier,
               l.amount
        from marts.dim_customers as c
        left join marts.fct_invoices as i on i.customer_id = c.customer_id
        left join reference.iso_4217_currencies as cur on cur.currency = i.currency
        left join marts.fct_invoice_lines as l on l.invoice_id = i.invoice_id
        where c.customer_id = $c
        order by i.billing_period_start desc nulls last, i.invoice_id, l.line_number
    """, {"c": customer_id})
    if not found:
        return None
    return [r for r in found if r["invoice_id"] is not None]
