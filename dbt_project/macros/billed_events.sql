{#- The CTEs (no leading `with`, no trailing comma) of which invoice line bills each landed event
    (contract section 5; marts/fct_billed_events.sql says how), ending in `billed_events`: the
    event, its meter, instant, usage period, item, aggregation, value, landing instant and
    unique-dimension value, and the invoice_id and line_type that bill it (NULL: none yet, or
    unbilled). Shared by fct_billed_events (every event) and fct_invoice_line_events (the billed
    period's invoices), so the evidence never joins the events back to themselves.
    `events_filter`: a condition on int_usage_events_matched keeping the events needed. -#}
{% macro billed_events_ctes(events_filter='1 = 1') %}
events as (

    select * from {{ ref('int_usage_events_matched') }}
    where {{ events_filter }}

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
        events_with_lateness.aggregation,
        events_with_lateness.value,
        events_with_lateness.landed_at,
        events_with_lateness.unique_dimension_value,
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
{% endmacro %}
