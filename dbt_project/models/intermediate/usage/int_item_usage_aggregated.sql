-- Usage per customer, product item and period (every period): the item's filter applies first,
-- then the meter's aggregation over only the matching events (a `max` item filtered on
-- region=eu is the peak of the EU events). `quantity` is the raw aggregate; pricing takes
-- Q = max(quantity, 0). A level meter's item usage comes from int_level_usage_periods.

with

events as (

    select
        customer_id,
        product_item_id,
        meter_id,
        usage_period_start as billing_period_start,
        usage_period_end as billing_period_end,
        aggregation,
        value,
        unique_dimension_value,
        event_at,
        event_id

    from {{ ref('int_usage_events_matched') }}
    where product_item_id is not null
        and not coalesce(is_level, false)

),

aggregated as (

    {{ aggregate_usage('events', ['customer_id', 'product_item_id', 'meter_id', 'billing_period_start', 'billing_period_end']) }}

),

-- Level meters: the item's own level (its carried level included), also in periods with no
-- event of its own into which it carries a non-zero level (the item is live there).
levels as (

    select
        customer_id,
        product_item_id,
        meter_id,
        billing_period_start,
        billing_period_end,
        aggregation,
        quantity,
        event_count

    from {{ ref('int_level_usage_periods') }}
    where product_item_id is not null

)

select * from aggregated
union all
select * from levels
