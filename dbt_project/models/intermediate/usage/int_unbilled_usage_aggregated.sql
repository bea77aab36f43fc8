{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'meter_id', 'billing_period_start', 'aggregation'],
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset(also_replace=level_rows_condition()) }}",
) }}
-- depends_on: {{ ref('int_usage_unique_values') }}

-- Unbilled usage per customer, meter and period (every period): the events that no product item
-- prices (a meter without items, or events no item's filter matches), aggregated with the
-- meter's aggregation over only those events.

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
    where product_item_id is null
        and not coalesce(is_level, false)
        and {{ landed_since_last_build() }}

)

-- their aggregates, merged with the rows held for the same groups
{{ aggregate_usage_incrementally('events', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end'], "unique_values.product_item_id is null") }},

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
{{ level_usage_rows('levels', ['customer_id', 'meter_id', 'billing_period_start', 'billing_period_end']) }}
