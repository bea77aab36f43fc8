-- Meter usage per customer, meter and period over ALL usage landed so far (every period; late
-- usage included): the meter's aggregation over all its events, whatever the item filters.

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

),

aggregated as (

    {{ aggregate_usage('events', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end']) }}

)

select * from aggregated
