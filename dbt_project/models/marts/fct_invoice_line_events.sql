{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_billing_period_rows() }}",
) }}

-- Extension (docs/contract.md E13): the evidence `meterline explain` shows for each line of the
-- billed period's invoices that bills events: how many events it bills, the meter's aggregate
-- over them (usage lines), and up to 10 of them: the first by (event_at, event_id), the
-- deciding event first for `max` (highest value, then earliest) and `latest` (latest instant,
-- then highest event_id). Readers need no per-event table for it, so the readers' snapshot
-- stays small whatever the number of events. Period-scoped: a bill rebuilds only its period.

with

invoices as (

    select invoice_id, billing_period_start
    from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

billed as (

    select
        billed_events.invoice_id,
        invoices.billing_period_start,
        billed_events.line_type,
        billed_events.product_item_id,
        billed_events.usage_period_start,
        billed_events.event_id

    from {{ ref('fct_billed_events') }} as billed_events
    inner join invoices
        on billed_events.invoice_id = invoices.invoice_id

),

events as (

    select
        billed.*,
        matched.aggregation,
        matched.value,
        matched.event_at,
        matched.landed_at,
        matched.unique_dimension_value

    from billed
    inner join {{ ref('int_usage_events_matched') }} as matched
        on billed.event_id = matched.event_id

),

ranked as (

    select
        events.*,
        row_number() over (
            partition by invoice_id, product_item_id, usage_period_start, line_type
            order by event_at, event_id
        ) as time_rank,
        row_number() over (
            partition by invoice_id, product_item_id, usage_period_start, line_type
            order by
                case when aggregation = 'max' then value end desc nulls last,
                case when aggregation = 'latest' then event_at end desc nulls last,
                case when aggregation = 'latest' then event_id end desc nulls last,
                event_at,
                event_id
        ) as deciding_rank

    from events

),

line_totals as (

    select
        invoice_id,
        product_item_id,
        usage_period_start,
        line_type,
        count(*) as event_count,
        case
            when line_type <> 'usage' then null
            when min(aggregation) = 'sum' then sum(value)
            when min(aggregation) = 'count' then cast(count(*) as {{ quantity_type() }})
            when min(aggregation) = 'unique_count'
                then cast(count(distinct unique_dimension_value) as {{ quantity_type() }})
            when min(aggregation) = 'max' then max(value)
            when min(aggregation) = 'latest'
                then max(case when deciding_rank = 1 then value end)
            -- a level meter's line: NULL (its quantity also depends on the level carried in)
        end as aggregate_value

    from ranked
    group by invoice_id, product_item_id, usage_period_start, line_type

),

-- the deciding event's place in time order, so the events after it can close the gap
deciding as (

    select
        invoice_id,
        product_item_id,
        usage_period_start,
        line_type,
        time_rank as deciding_time_rank

    from ranked
    where deciding_rank = 1 and aggregation in ('max', 'latest')

),

shown as (

    select
        ranked.*,
        case
            when deciding.deciding_time_rank is null then ranked.time_rank
            when ranked.deciding_rank = 1 then 1
            when ranked.time_rank < deciding.deciding_time_rank then ranked.time_rank + 1
            else ranked.time_rank
        end as shown_rank

    from ranked
    left join deciding
        on ranked.invoice_id = deciding.invoice_id
        and ranked.product_item_id = deciding.product_item_id
        and ranked.usage_period_start = deciding.usage_period_start
        and ranked.line_type = deciding.line_type

)

select
    shown.invoice_id,
    shown.billing_period_start,
    shown.line_type,
    shown.product_item_id,
    shown.usage_period_start,
    cast(line_totals.event_count as bigint) as event_count,
    cast(line_totals.aggregate_value as {{ quantity_type() }}) as aggregate_value,
    cast(shown.shown_rank as integer) as shown_rank,
    shown.event_id,
    shown.event_at,
    cast(shown.value as {{ quantity_type() }}) as value,
    raw_events.dimensions,
    shown.landed_at

from shown
inner join line_totals
    on shown.invoice_id = line_totals.invoice_id
    and shown.product_item_id = line_totals.product_item_id
    and shown.usage_period_start = line_totals.usage_period_start
    and shown.line_type = line_totals.line_type
inner join {{ ref('stg_raw__usage_events') }} as raw_events
    on shown.event_id = raw_events.event_id
where shown.shown_rank <= 10
