{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset() }}",
) }}

-- The distinct values of a unique_count meter's dimension per customer, meter, item and UTC day,
-- which int_usage_daily_aggregated counts when a run adds events to a day it holds (a count of
-- distinct values does not add up from run to run). Incremental (macros/usage_layer.sql): each
-- run appends the distinct values of the events it adds; a value seen before may be appended
-- again, so readers count distinct values, never rows.

with

events as (

    select
        customer_id,
        meter_id,
        coalesce(product_item_id, '') as product_item_key,
        {{ utc_date('event_at') }} as usage_date,
        usage_period_start as billing_period_start,
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
    product_item_key,
    usage_date,
    billing_period_start,
    unique_dimension_value,
    max(landing_seq) as through_landing_seq,
    {{ usage_catalog_fingerprint() }} as catalog_fingerprint

from events
group by
    customer_id,
    meter_id,
    product_item_key,
    usage_date,
    billing_period_start,
    unique_dimension_value
