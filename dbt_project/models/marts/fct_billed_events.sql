{{ config(materialized='view') }}

-- Contract section 5: which invoice bills each landed event. An event that no item prices has
-- NULL product_item_id, invoice_id and line_type; a priced event names the invoice whose usage
-- line bills it once its period has an invoice built (draft or published). An event that landed
-- after its period was published is late: it is billed by an adjustment on a later invoice, so
-- it does not name the published usage line.

with

events as (

    select * from {{ ref('int_usage_events_matched') }}

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

),

usage_lines as (

    select distinct
        invoice_id,
        customer_id,
        billing_period_start,
        product_item_id,
        line_type

    from {{ ref('fct_invoice_lines') }}
    where line_type = 'usage'

),

billed_events as (

    select
        events.event_id,
        events.customer_id,
        events.meter_id,
        events.event_at,
        events.usage_period_start,
        events.product_item_id,
        usage_lines.invoice_id,
        usage_lines.line_type

    from events
    left join published_periods
        on events.usage_period_start = published_periods.billing_period_start
    left join usage_lines
        on events.customer_id = usage_lines.customer_id
        and events.usage_period_start = usage_lines.billing_period_start
        and events.product_item_id = usage_lines.product_item_id
        and (published_periods.published_at is null or events.landed_at <= published_periods.published_at)

)

select
    event_id,
    customer_id,
    meter_id,
    event_at,
    usage_period_start,
    product_item_id,
    invoice_id,
    line_type

from billed_events
