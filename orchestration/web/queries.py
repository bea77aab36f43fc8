"""Every SQL the explorer pages run: one function per question, rows as dicts, money as
``Decimal`` with its currency's minor unit beside it (never summed across currencies).

Everything a request supplies is a parameter (``$name``), never text in the SQL. The tables are
the marts of docs/contract.md E19 (marts.fct_usage_daily, fct_revenue_monthly, dim_customers,
dim_product_items, fct_unbilled_usage) and raw.quarantined_events, as the readers' snapshot
serves them."""

from __future__ import annotations

from datetime import date

import duckdb

#: the minor unit of a currency the reference table lacks: the money type's own scale, so an
#: amount is still shown exactly
FALLBACK_MINOR_UNIT = 4
#: the ``item`` filter value that selects the usage no product item prices
UNBILLED = "(unbilled)"

_MINOR_UNIT = f"coalesce(cur.minor_unit, {FALLBACK_MINOR_UNIT})"
_CURRENCIES = "left join reference.iso_4217_currencies as cur on cur.currency = r.currency"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[dict]:
    cursor = con.execute(sql, params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --------------------------------------------------------------------------- overview
def month_totals(con, this_month: date, last_month: date) -> list[dict]:
    """Per currency: this month's revenue (an estimate until published) against last month's."""
    return rows(con, f"""
        select r.currency,
               any_value({_MINOR_UNIT}) as minor_unit,
               sum(r.amount) filter (where r.revenue_month = $this) as this_amount,
               coalesce(bool_or(r.is_estimate) filter (where r.revenue_month = $this), false)
                   as this_is_estimate,
               count(distinct r.customer_id) filter (where r.revenue_month = $this)
                   as this_customers,
               max(r.usage_accrued_to) filter (where r.revenue_month = $this)
                   as this_usage_accrued_to,
               sum(r.amount) filter (where r.revenue_month = $last) as last_amount,
               coalesce(bool_or(r.is_estimate) filter (where r.revenue_month = $last), false)
                   as last_is_estimate,
               count(distinct r.customer_id) filter (where r.revenue_month = $last)
                   as last_customers,
               coalesce(sum(r.amount) filter (where r.revenue_month = $this), 0)
                   - coalesce(sum(r.amount) filter (where r.revenue_month = $last), 0) as change
        from marts.fct_revenue_monthly as r
        {_CURRENCIES}
        where r.revenue_month in ($this, $last)
        group by r.currency
        order by r.currency
    """, {"this": this_month, "last": last_month})


def top_customers_by_revenue(con, limit: int = 10) -> list[dict]:
    """Per currency, the customers of the latest month with revenue, largest amount first."""
    return rows(con, f"""
        with per_customer as (
            select currency, revenue_month, customer_id, sum(amount) as amount,
                   bool_or(is_estimate) as is_estimate
            from marts.fct_revenue_monthly
            group by currency, revenue_month, customer_id
        ),
        latest as (
            select currency, max(revenue_month) as revenue_month
            from per_customer
            group by currency
        )
        select r.currency, r.revenue_month, r.customer_id, c.customer_name, r.amount,
               r.is_estimate, {_MINOR_UNIT} as minor_unit,
               row_number() over (partition by r.currency
                                  order by r.amount desc, r.customer_id) as rank
        from per_customer as r
        inner join latest as l
            on l.currency = r.currency and l.revenue_month = r.revenue_month
        left join marts.dim_customers as c on c.customer_id = r.customer_id
        {_CURRENCIES}
        qualify rank <= $limit
        order by r.currency, rank
    """, {"limit": limit})


def top_customers_by_growth(con, this_month: date, last_month: date,
                            limit: int = 10) -> list[dict]:
    """Per currency, this month's amount minus last month's per customer, largest first."""
    return rows(con, f"""
        with per_customer as (
            select currency, customer_id,
                   coalesce(sum(amount) filter (where revenue_month = $this), 0) as this_amount,
                   coalesce(sum(amount) filter (where revenue_month = $last), 0) as last_amount
            from marts.fct_revenue_monthly
            where revenue_month in ($this, $last)
            group by currency, customer_id
        )
        select r.currency, r.customer_id, c.customer_name, r.this_amount, r.last_amount,
               r.this_amount - r.last_amount as growth, {_MINOR_UNIT} as minor_unit,
               row_number() over (partition by r.currency
                                  order by r.this_amount - r.last_amount desc, r.customer_id)
                   as rank
        from per_customer as r
        left join marts.dim_customers as c on c.customer_id = r.customer_id
        {_CURRENCIES}
        qualify rank <= $limit
        order by r.currency, rank
    """, {"this": this_month, "last": last_month, "limit": limit})


def landing_status(con) -> dict:
    """Files and events landed, when the marts were last built (the latest of a bill's checks
    and a draft's usage instant), and how many files landed after that: their usage shows once
    their month is built again."""
    return rows(con, """
        with built as (
            select greatest(
                (select max(checked_at) from billing.reconciliation_results),
                (select max(usage_accrued_to) from marts.fct_invoices
                 where status <> 'published')) as marts_built_at
        )
        select count(f.file_sha256) as file_count,
               coalesce(sum(f.rows_landed), 0) as events_landed,
               max(f.landed_at) as last_landed_at,
               any_value(b.marts_built_at) as marts_built_at,
               count(f.file_sha256) filter (where b.marts_built_at is null
                                             or f.landed_at > b.marts_built_at)
                   as files_since_build
        from built as b
        left join raw.landed_files as f on true
    """)[0]


def quarantine_count(con) -> int:
    return con.execute(
        "select count(*) from raw.quarantined_events where resolved_at is null").fetchone()[0]


# --------------------------------------------------------------------------- usage
def usage_meters(con) -> list[dict]:
    """The meters with daily usage, with their name, unit and aggregation."""
    return rows(con, """
        select d.meter_id, any_value(m.display_name) as meter_name, any_value(m.unit) as unit,
               any_value(d.aggregation) as aggregation, bool_and(d.is_additive) as is_additive
        from marts.fct_usage_daily as d
        left join catalog.meters as m on m.meter_id = d.meter_id
        group by d.meter_id
        order by d.meter_id
    """)


def usage_customers(con, meter_id: str) -> list[dict]:
    return rows(con, """
        select d.customer_id, any_value(c.customer_name) as customer_name
        from marts.fct_usage_daily as d
        left join marts.dim_customers as c on c.customer_id = d.customer_id
        where d.meter_id = $meter
        group by d.customer_id
        order by d.customer_id
    """, {"meter": meter_id})


def usage_items(con, meter_id: str) -> list[dict]:
    """The meter's product items with usage (None: the usage no item prices)."""
    return rows(con, """
        select d.product_item_id, any_value(p.display_name) as item_name
        from marts.fct_usage_daily as d
        left join catalog.product_items as p on p.product_item_id = d.product_item_id
        where d.meter_id = $meter
        group by d.product_item_id
        order by d.product_item_id nulls last
    """, {"meter": meter_id})


def usage_daily(con, meter_id: str, customer_id: str | None, item: str | None) -> list[dict]:
    """Per UTC day and product item: the meter's daily figure, added over the customers shown
    (or the one chosen), and the events behind it. ``item``: None all, UNBILLED the usage no
    item prices, else one product item."""
    return rows(con, """
        select d.usage_date, d.product_item_id, sum(d.quantity) as quantity,
               sum(d.event_count) as event_count, count(distinct d.customer_id) as customers
        from marts.fct_usage_daily as d
        where d.meter_id = $meter
          and ($customer is null or d.customer_id = $customer)
          and case when $item is null then true
                   when $item = $unbilled then d.product_item_id is null
                   else d.product_item_id = $item end
        group by d.usage_date, d.product_item_id
        order by d.usage_date, d.product_item_id nulls last
    """, {"meter": meter_id, "customer": customer_id, "item": item, "unbilled": UNBILLED})


# --------------------------------------------------------------------------- revenue
def revenue_by_item(con) -> list[dict]:
    """Per month, currency and product item (None: a minimum-commitment top-up)."""
    return rows(con, f"""
        select r.revenue_month, r.currency, r.product_item_id,
               any_value(p.display_name) as item_name,
               sum(r.amount) as amount, sum(r.adjustment_amount) as adjustment_amount,
               bool_or(r.is_estimate) as is_estimate,
               count(distinct r.customer_id) as customers,
               any_value({_MINOR_UNIT}) as minor_unit
        from marts.fct_revenue_monthly as r
        left join catalog.product_items as p on p.product_item_id = r.product_item_id
        {_CURRENCIES}
        group by r.revenue_month, r.currency, r.product_item_id
        order by r.revenue_month desc, r.currency, r.product_item_id nulls last
    """)


def revenue_by_month(con) -> list[dict]:
    """Per month and currency: the month's revenue (every item and top-up)."""
    return rows(con, f"""
        select r.revenue_month, r.currency, sum(r.amount) as amount,
               bool_or(r.is_estimate) as is_estimate,
               count(distinct r.customer_id) as customers,
               any_value({_MINOR_UNIT}) as minor_unit
        from marts.fct_revenue_monthly as r
        {_CURRENCIES}
        group by r.revenue_month, r.currency
        order by r.revenue_month desc, r.currency
    """)


# --------------------------------------------------------------------------- quarantine
def quarantine_by_reason(con) -> list[dict]:
    return rows(con, """
        select reason, count(*) as row_count, count(distinct source_file) as file_count,
               max(landed_at) as last_landed_at
        from raw.quarantined_events
        where resolved_at is null
        group by reason
        order by row_count desc, reason
    """)


def quarantine_latest(con, reason: str | None, limit: int = 50) -> list[dict]:
    return rows(con, """
        select source_file, row_number, reason, raw_row, landed_at
        from raw.quarantined_events
        where resolved_at is null and ($reason is null or reason = $reason)
        order by landed_at desc, source_file, row_number
        limit $limit
    """, {"reason": reason, "limit": limit})


# --------------------------------------------------------------------------- unbilled
def unbilled_months(con) -> list[date]:
    return [r[0] for r in con.execute(
        "select distinct billing_period_start from marts.fct_unbilled_usage order by 1 desc"
    ).fetchall()]


def unbilled_usage(con, month: date | None) -> list[dict]:
    return rows(con, """
        select u.billing_period_start, u.customer_id, c.customer_name, u.meter_id,
               m.display_name as meter_name, m.unit, m.aggregation, u.quantity, u.event_count
        from marts.fct_unbilled_usage as u
        left join marts.dim_customers as c on c.customer_id = u.customer_id
        left join catalog.meters as m on m.meter_id = u.meter_id
        where $month is null or u.billing_period_start = $month
        order by u.billing_period_start desc, u.customer_id, u.meter_id
    """, {"month": month})
