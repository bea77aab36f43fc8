{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'meter_id', 'product_item_key', 'usage_date'],
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset() }}",
) }}
-- depends_on: {{ ref('int_usage_daily_unique_values') }}

-- Usage per customer, meter, product item and UTC day, for every day with landed events (late
-- ones included): the explorers' daily figures (marts.fct_usage_daily). `product_item_key` is
-- the item, or '' for the events no item prices (a key column cannot be NULL: delete+insert
-- matches keys with `=`). The day's own figure, by the meter's aggregation
-- (macros/aggregate_usage.sql): sum, max of the day's values; count the day's events;
-- unique_count the distinct values of the day (never summed into the month); latest the value
-- of the day's last event; a level meter its net change that day (the sum of its signed
-- changes). Incremental like the rest of the usage layer (macros/usage_layer.sql): a run
-- aggregates the events landed since the last, merges them with the days it holds and replaces
-- those rows.

with

-- the events this run adds: those landed since the last run (all of them on a first build)
events as (

    select
        customer_id,
        meter_id,
        coalesce(product_item_id, '') as product_item_key,
        {{ utc_date('event_at') }} as usage_date,
        usage_period_start as billing_period_start,
        aggregation,
        value,
        unique_dimension_value,
        event_at,
        event_id,
        landing_seq

    from {{ ref('int_usage_events_matched') }}
    where {{ landed_since_last_build() }}

)

-- their aggregates, merged with the days held for the same groups
{{ aggregate_usage_incrementally('events', ['customer_id', 'meter_id', 'product_item_key', 'usage_date', 'billing_period_start'], '1 = 1', unique_values='int_usage_daily_unique_values') }}

select * from aggregated
