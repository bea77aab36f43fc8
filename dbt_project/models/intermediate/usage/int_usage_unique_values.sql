{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset() }}",
) }}

-- The distinct values of a unique_count meter's dimension per customer, meter, item (NULL: the
-- events no item matches) and period, which the aggregated usage models count when a run adds
-- events (a count of distinct values does not add up from run to run). Incremental
-- (macros/usage_layer.sql): each run appends the distinct values of the events it adds; a value
-- seen before may be appended again, so readers count distinct values, never rows.

with

events as (

    select
        customer_id,
        meter_id,
        product_item_id,
        usage_period_start as billing_period_start,
        usage_period_end as billing_period_end,
        unique_dimension_value,
        landing_seq

    from {{ ref('int_usage_events_matched') }}
    where aggregation = 'unique_count'
        and unique_dimension_value is not null
        and {{ landed_since_last_build() }}

)

select
    customer_id,
    meter_id,
    product_item_id,
    billing_period_start,
    billing_period_end,
    unique_dimension_value,
    max(landing_seq) as through_landing_seq,
    {{ usage_catalog_fingerprint() }} as catalog_fingerprint

from events
group by
    customer_id,
    meter_id,
    product_item_id,
    billing_period_start,
    billing_period_end,
    unique_dimension_value
