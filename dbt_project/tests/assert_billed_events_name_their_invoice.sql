-- Claim: fct_billed_events has one row per landed event; in the billed period an event that a
-- product item prices names an invoice of its own customer and period (unless it landed after
-- the period was published: late usage), and an unbilled event names none. A failure means an
-- event's audit trail is wrong: the rows returned are those events.

{{ config(meta={'dagster': {'ref': {'name': 'fct_billed_events'}}}) }}

with

events as (

    select * from {{ ref('stg_raw__usage_events') }}

),

billed as (

    select * from {{ ref('fct_billed_events') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

)

select
    coalesce(events.event_id, billed.event_id) as event_id,
    billed.product_item_id,
    billed.invoice_id,
    invoices.customer_id as invoice_customer_id,
    invoices.billing_period_start as invoice_period_start

from events
full outer join billed
    on events.event_id = billed.event_id
left join invoices
    on billed.invoice_id = invoices.invoice_id
left join published_periods
    on billed.usage_period_start = published_periods.billing_period_start
where events.event_id is null
    or billed.event_id is null
    or (billed.product_item_id is null and (billed.invoice_id is not null or billed.line_type is not null))
    or (billed.invoice_id is not null and (
        invoices.customer_id <> billed.customer_id
        or invoices.billing_period_start <> billed.usage_period_start
    ))
    or (billed.usage_period_start = {{ billing_period_start() }}
        and billed.product_item_id is not null
        and billed.invoice_id is null
        and (published_periods.published_at is null or events.landed_at <= published_periods.published_at))
