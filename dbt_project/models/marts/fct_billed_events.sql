{{ config(materialized='view') }}

-- Contract section 5: which invoice bills each landed event. An event that no item prices has
-- NULL product_item_id, invoice_id and line_type; a priced event names the invoice whose usage
-- line bills it once its period has an invoice built (draft or published). An event that landed
-- after its period P was published is late (section 8): it names the invoice whose adjustment
-- line for (customer, P, item) bills it, i.e. the earliest invoice with such a line that was
-- published no earlier than the event landed, or else the draft carrying it (the earliest
-- unpublished period after P); until that draft is built it names none.

with

events as (

    select * from {{ ref('int_usage_events_matched') }}

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

),

invoice_lines as (

    select * from {{ ref('fct_invoice_lines') }}

),

usage_lines as (

    select distinct
        invoice_id,
        customer_id,
        billing_period_start,
        product_item_id,
        line_type

    from invoice_lines
    where line_type = 'usage'

),

adjustment_lines as (

    select distinct
        invoice_lines.invoice_id,
        invoice_lines.customer_id,
        invoice_lines.billing_period_start,
        invoice_lines.usage_period_start,
        invoice_lines.product_item_id,
        invoice_lines.line_type,
        published_periods.published_at

    from invoice_lines
    left join published_periods
        on invoice_lines.billing_period_start = published_periods.billing_period_start
    where invoice_lines.line_type = 'adjustment'
        and invoice_lines.product_item_id is not null

),

events_with_lateness as (

    select
        events.*,
        published_periods.published_at is not null
            and events.landed_at > published_periods.published_at as is_late

    from events
    left join published_periods
        on events.usage_period_start = published_periods.billing_period_start

),

-- Each late event's candidate adjustment lines, the one that bills it first.
late_event_adjustments as (

    select
        events_with_lateness.event_id,
        adjustment_lines.invoice_id,
        adjustment_lines.line_type,
        row_number() over (
            partition by events_with_lateness.event_id
            order by adjustment_lines.billing_period_start
        ) as adjustment_rank

    from events_with_lateness
    inner join adjustment_lines
        on events_with_lateness.customer_id = adjustment_lines.customer_id
        and events_with_lateness.usage_period_start = adjustment_lines.usage_period_start
        and events_with_lateness.product_item_id = adjustment_lines.product_item_id
        and adjustment_lines.billing_period_start > events_with_lateness.usage_period_start
        and (adjustment_lines.published_at is null
            or adjustment_lines.published_at >= events_with_lateness.landed_at)
    where events_with_lateness.is_late

),

billed_events as (

    select
        events_with_lateness.event_id,
        events_with_lateness.customer_id,
        events_with_lateness.meter_id,
        events_with_lateness.event_at,
        events_with_lateness.usage_period_start,
        events_with_lateness.product_item_id,
        case
            when events_with_lateness.is_late then late_event_adjustments.invoice_id
            else usage_lines.invoice_id
        end as invoice_id,
        case
            when events_with_lateness.is_late then late_event_adjustments.line_type
            else usage_lines.line_type
        end as line_type

    from events_with_lateness
    left join usage_lines
        on events_with_lateness.customer_id = usage_lines.customer_id
        and events_with_lateness.usage_period_start = usage_lines.billing_period_start
        and events_with_lateness.product_item_id = usage_lines.product_item_id
        and not events_with_lateness.is_late
    left join late_event_adjustments
        on events_with_lateness.event_id = late_event_adjustments.event_id
        and late_event_adjustments.adjustment_rank = 1

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
