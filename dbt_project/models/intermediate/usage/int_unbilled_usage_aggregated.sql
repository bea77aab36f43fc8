-- Unbilled usage per customer, meter and period (every period): the events that no product item
-- prices (a meter without items, or events no item's filter matches), aggregated with the
-- meter's aggregation over only those events.

with

events as (

    select
        customer_id,
        meter_id,
        usage_period_start as billing_period_start,
        usage_period_end as billing_period_end,
        aggregation,
        value,
        unique_dimension_value,
        event_at,
        event_id

    from {{ ref('int_usage_events_matched') }}
    where product_item_id is null
        and not coalesce(is_level, false)

),

aggregated as (

    {{ aggregate_usage('events', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end']) }}

),

-- Level meters: the level of the events no item matches, carried over like any level.
levels as (

    select
        customer_id,
        meter_id,
        billing_period_start,
        billing_period_end,
        aggregation,
        quantity,
        event_count

    from {{ ref('int_level_usage_periods') }}
    where product_item_id is null

)

select * from aggregated
union all
select * from levels
