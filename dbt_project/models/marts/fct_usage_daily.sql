-- The explorers' daily usage (docs/contract.md E19): per customer, meter, product item (NULL:
-- unbilled) and UTC day with landed events, late ones included, the day's event count and the
-- day's own figure by the meter's aggregation. Only `sum` and `count` days add up to the month
-- (`is_additive`); a max, unique_count or latest day is the day's own value, and a level meter's
-- day is its net change. Built from int_usage_daily_aggregated, which adds each run's new
-- events (macros/usage_layer.sql).

with

daily as (

    select * from {{ ref('int_usage_daily_aggregated') }}

)

select
    usage_date,
    billing_period_start,
    customer_id,
    meter_id,
    cast(nullif(product_item_key, '') as {{ text_type() }}) as product_item_id,
    aggregation,
    cast(event_count as bigint) as event_count,
    cast(quantity as {{ quantity_type() }}) as quantity,
    aggregation in ('sum', 'count') as is_additive

from daily
