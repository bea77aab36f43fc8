-- The explorers' product items (docs/contract.md E19): each item with its meter, unit and
-- aggregation, and the list rate (a rate without customer_id) in effect on the run's UTC day, one
-- row per currency of such a rate. An item with no list rate in effect has one row whose rate
-- columns are NULL. Customers' own rates are not list prices: `customer_rate_count` says how
-- many are in effect.

with

product_items as (

    select * from {{ ref('stg_catalog__product_items') }}

),

meters as (

    select * from {{ ref('stg_catalog__meters') }}

),

rates as (

    select * from {{ ref('stg_catalog__rates') }}

),

rate_tiers as (

    select * from {{ ref('stg_catalog__rate_tiers') }}

),

run_day as (

    select {{ utc_date(run_instant()) }} as rate_in_effect_on

),

rates_in_effect as (

    select rates.*
    from rates
    cross join run_day
    where {{ in_effect_on('rates', 'run_day.rate_in_effect_on') }}

),

tier_counts as (

    select rate_id, count(*) as tier_count
    from rate_tiers
    group by rate_id

),

customer_rates as (

    select product_item_id, count(*) as customer_rate_count
    from rates_in_effect
    where is_customer_rate
    group by product_item_id

)

select
    product_items.product_item_id,
    product_items.product_item_name as display_name,
    product_items.meter_id,
    meters.meter_name,
    meters.unit,
    meters.aggregation,
    product_items.dimension_filter,
    list_rates.currency,
    list_rates.rate_id,
    list_rates.pricing_model,
    cast(list_rates.unit_price as {{ quantity_type() }}) as unit_price,
    cast(list_rates.package_size as {{ quantity_type() }}) as package_size,
    cast(list_rates.free_units as {{ quantity_type() }}) as free_units,
    cast(tier_counts.tier_count as integer) as tier_count,
    list_rates.effective_from as rate_effective_from,
    list_rates.effective_to as rate_effective_to,
    run_day.rate_in_effect_on,
    cast(coalesce(customer_rates.customer_rate_count, 0) as integer) as customer_rate_count

from product_items
cross join run_day
left join meters
    on product_items.meter_id = meters.meter_id
left join rates_in_effect as list_rates
    on product_items.product_item_id = list_rates.product_item_id
    and not list_rates.is_customer_rate
left join tier_counts
    on list_rates.rate_id = tier_counts.rate_id
left join customer_rates
    on product_items.product_item_id = customer_rates.product_item_id
