{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset(held_column='landing_seq') }}",
) }}

-- Every landed event (all periods) with its meter's aggregation and the product item that prices
-- it: the item of the event's meter whose filter matches (no filter = every event; `key=value`
-- matched exactly and case-sensitively; an event without the key does not match). The catalog
-- guarantees at most one such item; a NULL product_item_id is unbilled usage. Incremental
-- (macros/usage_layer.sql): a run adds the events landed since the last, or rebuilds from every
-- event when the catalog's meters or filters changed.

with

events as (

    select * from {{ ref('stg_raw__usage_events') }}
    where {{ landed_since_last_build(held_column='landing_seq') }}

),

meters as (

    select * from {{ ref('stg_catalog__meters') }}

),

product_items as (

    select * from {{ ref('stg_catalog__product_items') }}

),

matched as (

    select
        events.event_id,
        events.customer_id,
        events.meter_id,
        events.value,
        events.event_at,
        events.usage_period_start,
        events.usage_period_end,
        events.landed_at,
        events.landing_seq,
        meters.aggregation,
        coalesce(meters.is_level, false) as is_level,
        meters.time_unit,
        meters.unique_dimension,
        case
            when meters.unique_dimension is not null
                then {{ json_extract_text('events.dimensions', 'meters.unique_dimension') }}
        end as unique_dimension_value,
        product_items.product_item_id,
        {{ usage_catalog_fingerprint() }} as catalog_fingerprint

    from events
    left join meters
        on events.meter_id = meters.meter_id
    left join product_items
        on events.meter_id = product_items.meter_id
        and (
            product_items.filter_key is null
            or {{ json_extract_text('events.dimensions', 'product_items.filter_key') }}
                = product_items.filter_value
        )

)

select * from matched
