{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite' if target.type == 'spark' else 'append',
    partition_by='billing_period_start' if target.type == 'spark' else '',
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

-- which line bills each event that this period's invoices can bill (events of this period or
-- before: late ones restate earlier periods), with the evidence columns
{{ billed_events_ctes('usage_period_start <= ' ~ billing_period_start()) }},

invoices as (

    select invoice_id, billing_period_start
    from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

line_events as (

    select
        billed_events.invoice_id,
        invoices.billing_period_start,
        billed_events.line_type,
        billed_events.product_item_id,
        billed_events.usage_period_start,
        billed_events.event_id,
        billed_events.aggregation,
        billed_events.value,
        billed_events.event_at,
        billed_events.landed_at,
        billed_events.unique_dimension_value

    from billed_events
    inner join invoices
        on billed_events.invoice_id = invoices.invoice_id

),

-- Per line, in one pass (aggregates, no sort of the events): the count, the aggregate, the
-- deciding event (`max`: the highest value, then the earliest; `latest`: the latest instant,
-- then the highest event_id) and the 10th event in time order, when there are more than 10.
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
            when min(aggregation) = 'latest' then {{ latest_value('value') }}
            -- a level meter's line: NULL (its quantity also depends on the level carried in)
        end as aggregate_value,
        case min(aggregation)
            when 'max' then {{ first_by('event_id', ['-value', 'event_at', 'event_id']) }}
            when 'latest' then {{ latest_value('event_id') }}
        end as deciding_event_id,
        case
            when count(*) > 10 then {{ nth_earliest_instant_and_id('event_at', 'event_id', 10) }}
        end as tenth

    from line_events
    group by invoice_id, product_item_id, usage_period_start, line_type

),

line_bounds as (

    select
        line_totals.*,
        tenth.event_at as tenth_at,
        tenth.event_id as tenth_id

    from line_totals

),

-- the events a line can show: its first 10 in time order and its deciding event
candidates as (

    select
        line_events.*,
        line_bounds.event_count,
        line_bounds.aggregate_value,
        coalesce(line_events.event_id = line_bounds.deciding_event_id, false) as is_deciding

    from line_events
    inner join line_bounds
        on line_events.invoice_id = line_bounds.invoice_id
        and line_events.product_item_id = line_bounds.product_item_id
        and line_events.usage_period_start = line_bounds.usage_period_start
        and line_events.line_type = line_bounds.line_type
    where line_bounds.tenth_at is null
        or line_events.event_at < line_bounds.tenth_at
        or (line_events.event_at = line_bounds.tenth_at
            and line_events.event_id <= line_bounds.tenth_id)
        or line_events.event_id = line_bounds.deciding_event_id

),

ranked as (

    select
        candidates.*,
        row_number() over (
            partition by invoice_id, product_item_id, usage_period_start, line_type
            order by event_at, event_id
        ) as time_rank

    from candidates

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
    where is_deciding

),

shown as (

    select
        ranked.*,
        case
            when deciding.deciding_time_rank is null then ranked.time_rank
            when ranked.is_deciding then 1
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
    cast(shown.event_count as bigint) as event_count,
    cast(shown.aggregate_value as {{ quantity_type() }}) as aggregate_value,
    cast(shown.shown_rank as integer) as shown_rank,
    shown.event_id,
    shown.event_at,
    cast(shown.value as {{ quantity_type() }}) as value,
    raw_events.dimensions,
    shown.landed_at

from shown
inner join {{ ref('stg_raw__usage_events') }} as raw_events
    on shown.event_id = raw_events.event_id
where shown.shown_rank <= 10
