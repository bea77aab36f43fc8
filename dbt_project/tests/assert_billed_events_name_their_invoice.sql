-- Claim: fct_billed_events has one row per landed event (no NULL event_id), with line_type NULL,
-- `usage` or `adjustment` and an invoice_id of fct_invoices; an unbilled event names no invoice; an
-- event named on a `usage` line names its own customer's invoice of its own period, and landed
-- before that period was published (if it was); an event named on an `adjustment` line landed
-- after its period was published (late usage) and names an invoice of its own customer, of a
-- later period, that has an adjustment line for its period and item (contract sections 5 and 8).
-- In the billed period an event that a product item prices names an invoice (unless it is late),
-- and every late event the billed period restates (int_late_usage_selected) names the billed
-- period's invoice. A failure means an event's audit trail is wrong: the rows returned are those
-- events, or the (customer, period, item) whose late events are not all named.

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

adjustment_lines as (

    select distinct invoice_id, usage_period_start, product_item_id
    from {{ ref('fct_invoice_lines') }}
    where line_type = 'adjustment'
        and product_item_id is not null

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

),

meters as (

    select * from {{ ref('stg_catalog__meters') }}

),

late_usage as (

    select * from {{ ref('int_late_usage_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

checked_events as (

    select
        coalesce(events.event_id, billed.event_id) as event_id,
        billed.customer_id,
        billed.usage_period_start,
        billed.product_item_id,
        billed.invoice_id,
        billed.line_type,
        invoices.customer_id as invoice_customer_id,
        invoices.billing_period_start as invoice_period_start,
        cast(null as bigint) as late_event_count,
        cast(null as bigint) as named_event_count

    from events
    full outer join billed
        on events.event_id = billed.event_id
    left join invoices
        on billed.invoice_id = invoices.invoice_id
    left join published_periods
        on billed.usage_period_start = published_periods.billing_period_start
    left join adjustment_lines
        on billed.invoice_id = adjustment_lines.invoice_id
        and billed.usage_period_start = adjustment_lines.usage_period_start
        and billed.product_item_id = adjustment_lines.product_item_id
    where events.event_id is null
        or billed.event_id is null
        or billed.line_type not in ('usage', 'adjustment')
        or (billed.product_item_id is null and (billed.invoice_id is not null or billed.line_type is not null))
        or ((billed.invoice_id is null) <> (billed.line_type is null))
        or (billed.invoice_id is not null and (
            invoices.invoice_id is null
            or invoices.customer_id <> billed.customer_id
        ))
        or (billed.line_type = 'usage' and (
            invoices.billing_period_start <> billed.usage_period_start
            or events.landed_at > published_periods.published_at
        ))
        or (billed.line_type = 'adjustment' and (
            invoices.billing_period_start <= billed.usage_period_start
            or published_periods.published_at is null
            or events.landed_at <= published_periods.published_at
            or adjustment_lines.invoice_id is null
        ))
        or (billed.usage_period_start = {{ billing_period_start() }}
            and billed.product_item_id is not null
            and billed.invoice_id is null
            and (published_periods.published_at is null or events.landed_at <= published_periods.published_at))

),

named_late_events as (

    select
        billed.customer_id,
        billed.usage_period_start,
        billed.product_item_id,
        count(*) as named_event_count

    from billed
    inner join invoices
        on billed.invoice_id = invoices.invoice_id
    where billed.line_type = 'adjustment'
        and invoices.billing_period_start = {{ billing_period_start() }}
    group by billed.customer_id, billed.usage_period_start, billed.product_item_id

),

checked_late_usage as (

    select
        cast(null as {{ text_type() }}) as event_id,
        late_usage.customer_id,
        late_usage.usage_period_start,
        late_usage.product_item_id,
        cast(null as {{ text_type() }}) as invoice_id,
        cast(null as {{ text_type() }}) as line_type,
        cast(null as {{ text_type() }}) as invoice_customer_id,
        cast(null as date) as invoice_period_start,
        cast(late_usage.late_event_count as bigint) as late_event_count,
        cast(coalesce(named_late_events.named_event_count, 0) as bigint) as named_event_count

    from late_usage
    left join named_late_events
        on late_usage.customer_id = named_late_events.customer_id
        and late_usage.usage_period_start = named_late_events.usage_period_start
        and late_usage.product_item_id = named_late_events.product_item_id
    left join meters
        on late_usage.meter_id = meters.meter_id
    -- a late event of a level meter also restates the periods after its own, but is named only
    -- with its own period: for those, the named events are at most the late ones
    where (not coalesce(meters.is_level, false)
            and late_usage.late_event_count <> coalesce(named_late_events.named_event_count, 0))
        or coalesce(named_late_events.named_event_count, 0) > late_usage.late_event_count

)

select * from checked_events
union all
select * from checked_late_usage
