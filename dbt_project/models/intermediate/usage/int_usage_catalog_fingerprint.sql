{{ config(materialized='view') }}

-- One row: the fingerprint of what the usage layer's rows depend on in the catalog (each meter's
-- aggregation, unique dimension and time unit; each item's meter and filter). The layer's models
-- keep it on their rows and rebuild from every event when it changes (macros/usage_layer.sql);
-- customers, rates and commitments never touch usage.

with

lines as (

    select
        {{ dbt.concat([
            "'meter|'", "meter_id",
            "'|'", "coalesce(aggregation, '-')",
            "'|'", "coalesce(unique_dimension, '-')",
            "'|'", "coalesce(time_unit, '-')",
        ]) }} as line
    from {{ ref('stg_catalog__meters') }}

    union all

    select
        {{ dbt.concat([
            "'item|'", "product_item_id",
            "'|'", "coalesce(meter_id, '-')",
            "'|'", "coalesce(dimension_filter, '-')",
        ]) }} as line
    from {{ ref('stg_catalog__product_items') }}

)

select {{ lines_fingerprint('line') }} as catalog_fingerprint
from lines
