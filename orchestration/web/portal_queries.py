"""Every SQL the customer portal runs: one function per question, each taking the signed-in
customer's id (from the session, gate.py) as its first parameter and filtering by it, so an id
a URL carries (an invoice, a line) is only ever looked up within that customer's rows: another
customer's id finds nothing (the page answers 404). Everything a request supplies is a
parameter (``$name``), never text in the SQL. The tables are the marts of docs/contract.md
sections 5 and E13/E19 (fct_usage_daily, fct_invoices, fct_invoice_lines,
fct_invoice_line_events, dim_customers) and the price book (catalog.meters, product_items,
rates, rate_tiers) as the readers' snapshot serves them. Money stays ``Decimal``, beside its
currency's minor unit."""

from __future__ import annotations

from datetime import date

from orchestration.web.queries import FALLBACK_MINOR_UNIT, rows

_MINOR_UNIT = f"coalesce(cur.minor_unit, {FALLBACK_MINOR_UNIT})"
#: the events of a line shown per page (the bill records at most 10 per line)
EVENTS_PER_PAGE = 5


def customer(con, customer_id: str) -> dict | None:
    found = rows(con, f"""
        select c.customer_id, c.customer_name, c.currency, {_MINOR_UNIT} as minor_unit
        from marts.dim_customers as c
        left join reference.iso_4217_currencies as cur on cur.currency = c.currency
        where c.customer_id = $customer
    """, {"customer": customer_id})
    return found[0] if found else None


# --------------------------------------------------------------------------- usage
def month_usage(con, customer_id: str, month: date) -> list[dict]:
    """Per product item (and the usage no item prices), the month so far: days with usage,
    events, and the month's figure where the days give it (the sum of additive days, the
    greatest day of a ``max`` meter; else None: the estimate's line has the quantity)."""
    return rows(con, """
        select d.product_item_id, any_value(p.display_name) as item_name, d.meter_id,
               any_value(m.display_name) as meter_name, any_value(m.unit) as unit,
               any_value(d.aggregation) as aggregation, bool_and(d.is_additive) as is_additive,
               count(distinct d.usage_date) as days, sum(d.event_count) as event_count,
               case when bool_and(d.is_additive) then sum(d.quantity)
                    when any_value(d.aggregation) = 'max' then max(d.quantity) end
                   as month_quantity,
               max(d.usage_date) as last_day
        from marts.fct_usage_daily as d
        left join catalog.product_items as p on p.product_item_id = d.product_item_id
        left join catalog.meters as m on m.meter_id = d.meter_id
        where d.customer_id = $customer and d.billing_period_start = $month
        group by d.product_item_id, d.meter_id
        order by d.product_item_id nulls last, d.meter_id
    """, {"customer": customer_id, "month": month})


def month_daily(con, customer_id: str, month: date) -> list[dict]:
    """The customer's figure per UTC day, product item and meter, this month."""
    return rows(con, """
        select d.usage_date, d.product_item_id, d.meter_id, d.quantity, d.event_count
        from marts.fct_usage_daily as d
        where d.customer_id = $customer and d.billing_period_start = $month
        order by d.product_item_id nulls last, d.meter_id, d.usage_date
    """, {"customer": customer_id, "month": month})


# --------------------------------------------------------------------------- invoices
_INVOICE_COLUMNS = f"""
    i.invoice_id, i.billing_period_start, i.billing_period_end, i.currency, i.subtotal,
    i.total, i.line_count, i.status, i.invoice_number, i.issued_at, i.usage_accrued_to,
    {_MINOR_UNIT} as minor_unit"""


def invoices(con, customer_id: str) -> list[dict]:
    """The customer's invoices, published and draft, the latest month first."""
    return rows(con, f"""
        select {_INVOICE_COLUMNS}
        from marts.fct_invoices as i
        left join reference.iso_4217_currencies as cur on cur.currency = i.currency
        where i.customer_id = $customer
        order by i.billing_period_start desc, i.invoice_id
    """, {"customer": customer_id})


def invoice(con, customer_id: str, invoice_id: str) -> dict | None:
    """One of the customer's invoices; None for any id that is not one of them."""
    found = rows(con, f"""
        select {_INVOICE_COLUMNS}
        from marts.fct_invoices as i
        left join reference.iso_4217_currencies as cur on cur.currency = i.currency
        where i.customer_id = $customer and i.invoice_id = $invoice
    """, {"customer": customer_id, "invoice": invoice_id})
    return found[0] if found else None


def open_estimate(con, customer_id: str, month: date) -> dict | None:
    """The draft of the month (the estimate), if the month has one for this customer."""
    found = rows(con, f"""
        select {_INVOICE_COLUMNS}
        from marts.fct_invoices as i
        left join reference.iso_4217_currencies as cur on cur.currency = i.currency
        where i.customer_id = $customer and i.billing_period_start = $month
          and i.status = 'draft'
    """, {"customer": customer_id, "month": month})
    return found[0] if found else None


_LINE_COLUMNS = """
    l.line_number, l.line_type, l.product_item_id, l.meter_id, l.description, l.quantity,
    l.unit_price, l.tier, l.amount, l.currency, l.usage_period_start, l.usage_period_end"""


def lines(con, customer_id: str, invoice_id: str) -> list[dict]:
    return rows(con, f"""
        select {_LINE_COLUMNS}
        from marts.fct_invoice_lines as l
        where l.customer_id = $customer and l.invoice_id = $invoice
        order by l.line_number
    """, {"customer": customer_id, "invoice": invoice_id})


def line(con, customer_id: str, invoice_id: str, line_number: int) -> dict | None:
    found = rows(con, f"""
        select {_LINE_COLUMNS}, l.rate_id
        from marts.fct_invoice_lines as l
        where l.customer_id = $customer and l.invoice_id = $invoice
          and l.line_number = $line
    """, {"customer": customer_id, "invoice": invoice_id, "line": line_number})
    return found[0] if found else None


# --------------------------------------------------------------------------- audit trail
def line_meter(con, product_item_id: str, meter_id: str) -> dict | None:
    found = rows(con, """
        select m.meter_id, m.display_name as meter_name, m.unit, m.aggregation,
               m.unique_dimension,
               (select p.dimension_filter from catalog.product_items as p
                where p.product_item_id = $item) as dimension_filter,
               (select p.display_name from catalog.product_items as p
                where p.product_item_id = $item) as item_name
        from catalog.meters as m
        where m.meter_id = $meter
    """, {"item": product_item_id, "meter": meter_id})
    return found[0] if found else None


def item_quantity(con, customer_id: str, invoice_id: str, line: dict):
    """The item's quantity on the invoice for the line's usage period and type (its tier
    lines added up: Q, or the change in Q of an adjustment)."""
    return con.execute("""
        select sum(quantity) from marts.fct_invoice_lines
        where customer_id = $customer and invoice_id = $invoice and product_item_id = $item
          and usage_period_start = $start and line_type = $type
    """, {"customer": customer_id, "invoice": invoice_id, "item": line["product_item_id"],
          "start": line["usage_period_start"], "type": line["line_type"]}).fetchone()[0]


def rate(con, rate_id: str) -> dict | None:
    """The rate of one of the customer's own lines (its id comes from the line, never the
    URL) and its tiers."""
    found = rows(con, """
        select rate_id, pricing_model, unit_price, package_size, free_units, effective_from,
               effective_to, customer_id is not null as is_customer_rate
        from catalog.rates where rate_id = $rate
    """, {"rate": rate_id})
    if not found:
        return None
    found[0]["tiers"] = rows(con, """
        select tier, up_to, unit_price, flat_fee from catalog.rate_tiers
        where rate_id = $rate order by tier
    """, {"rate": rate_id})
    return found[0]


def _line_events_where() -> str:
    return """
        from marts.fct_invoice_line_events as e
        where e.invoice_id = $invoice and e.product_item_id = $item
          and e.usage_period_start = $start and e.line_type = $type
          and exists (select 1 from marts.fct_invoices as i
                      where i.invoice_id = e.invoice_id and i.customer_id = $customer)"""


def line_events_summary(con, customer_id: str, invoice_id: str, line: dict) -> dict:
    """The number of events the line bills, the meter's aggregate over them (usage lines) and
    how many of them the bill recorded to show (at most 10)."""
    params = {"customer": customer_id, "invoice": invoice_id, "item": line["product_item_id"],
              "start": line["usage_period_start"], "type": line["line_type"]}
    return rows(con, f"""
        select coalesce(max(e.event_count), 0) as event_count,
               max(e.aggregate_value) as aggregate_value, count(*) as shown
        {_line_events_where()}
    """, params)[0]


def line_events(con, customer_id: str, invoice_id: str, line: dict, page: int) -> list[dict]:
    """One page of the events recorded for the line, in the order `explain` shows them."""
    params = {"customer": customer_id, "invoice": invoice_id, "item": line["product_item_id"],
              "start": line["usage_period_start"], "type": line["line_type"],
              "limit": EVENTS_PER_PAGE, "offset": (page - 1) * EVENTS_PER_PAGE}
    return rows(con, f"""
        select e.shown_rank, e.event_id, e.event_at, e.value, e.dimensions, e.landed_at
        {_line_events_where()}
        order by e.shown_rank
        limit $limit offset $offset
    """, params)
