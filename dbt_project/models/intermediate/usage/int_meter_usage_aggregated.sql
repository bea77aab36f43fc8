{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'meter_id', 'billing_period_start', 'aggregation'],
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset(also_replace=level_rows_condition()) }}",
) }}
-- depends_on: {{ ref('int_usage_unique_values') }}

-- Meter usage per customer, meter and period over ALL usage landed so far (every period; late
-- usage included): the meter's aggregation over all its events, whatever the item filters.

with

-- the events this run adds: those landed since the last run (all of them on a first build)
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
        event_id,
        landing_seq

    from {{ ref('int_usage_events_matched') }}
    where not coalesce(is_level, false)
        and {{ landed_since_last_build() }}

)

-- their aggregates, merged with the rows held for the same groups
{{ aggregate_usage_incrementally('events', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end'], "1 = 1") }},

-- Level meters: the meter's level is the sum of its level sets' (its items' and its unbilled
-- events'), so its exact integral is their sum, rounded on its own (never a sum of rounded
-- quantities). A period has a row when one of the sets has an event in it or carries a non-zero
-- level into it.
level_sets as (

    select * from {{ ref('int_level_usage_periods') }}

),

levels as (

    select
        customer_id,
        meter_id,
        billing_period_start,
        billing_period_end,
        aggregation,
        case aggregation
            when 'running_total' then sum(closing_level)
            else {{ quotient_rounded_12('sum(level_integral)', 'max(divisor_microseconds)') }}
        end as quantity,
        sum(event_count) as event_count

    from level_sets
    group by customer_id, meter_id, billing_period_start, billing_period_end, aggregation

)

select * from aggregated
union all
{{ level_usage_rows('levels', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end']) }}
