{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_billing_period_rows() }}"
    )
}}

-- The rate that prices each customer's product item usage in the billed period: the customer's
-- own rate, else the list price, in the customer's currency, in effect on the period's first day
-- (effective_from <= day < effective_to; no proration). One row per (customer, item) with usage
-- in the period; usage without a rate in effect stops billing here.

with

item_usage as (

    select distinct
        customer_id,
        product_item_id,
        billing_period_start,
        billing_period_end

    from {{ ref('int_item_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

),

customers as (

    select * from {{ ref('stg_catalog__customers') }}

),

rates_in_effect as (

    select * from {{ ref('stg_catalog__rates') }}
    where effective_from <= {{ billing_period_start() }}
        and (effective_to is null or effective_to > {{ billing_period_start() }})

),

candidates as (

    select
        item_usage.billing_period_start,
        item_usage.billing_period_end,
        item_usage.customer_id,
        item_usage.product_item_id,
        customers.currency,
        rates_in_effect.rate_id,
        rates_in_effect.pricing_model,
        rates_in_effect.unit_price,
        rates_in_effect.package_size,
        rates_in_effect.free_units,
        coalesce(rates_in_effect.is_customer_rate, false) as is_customer_rate,
        row_number() over (
            partition by item_usage.customer_id, item_usage.product_item_id
            order by case when rates_in_effect.is_customer_rate then 0 else 1 end, rates_in_effect.rate_id
        ) as preference,
        count(rates_in_effect.rate_id) over (
            partition by item_usage.customer_id, item_usage.product_item_id, rates_in_effect.is_customer_rate
        ) as rates_of_same_kind

    from item_usage
    left join customers
        on item_usage.customer_id = customers.customer_id
    left join rates_in_effect
        on item_usage.product_item_id = rates_in_effect.product_item_id
        and customers.currency = rates_in_effect.currency
        and (rates_in_effect.customer_id is null or rates_in_effect.customer_id = item_usage.customer_id)

),

resolved as (

    select
        billing_period_start,
        billing_period_end,
        customer_id,
        product_item_id,
        currency,
        -- usage without a rate, or with two, stops billing naming the customer and item (the
        -- catalog allows one rate per item, customer (or list) and currency at a time)
        case
            when rate_id is null
                then {{ raise_billing_error("'customer ' || customer_id || ', product item ' || product_item_id || ', period " ~ billing_period() ~ ": no rate in effect on the period''s first day in currency ' || coalesce(currency, '(customer not in the catalog)')") }}
            when rates_of_same_kind > 1
                then {{ raise_billing_error("'customer ' || customer_id || ', product item ' || product_item_id || ', period " ~ billing_period() ~ ": ' || cast(rates_of_same_kind as varchar) || ' rates in effect at once'") }}
            else rate_id
        end as rate_id,
        pricing_model,
        unit_price,
        package_size,
        free_units,
        is_customer_rate

    from candidates
    where preference = 1

)

select * from resolved
