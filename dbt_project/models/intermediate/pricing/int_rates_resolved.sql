-- The rate that prices each customer's product item usage, for every (customer, usage period)
-- the billed period rates: the billed period itself, and each published period P whose late
-- usage the billed period restates (int_late_usage_selected: all of the customer's items of P
-- are re-priced, so P's commitment top-up can be restated too). The rate is the customer's own
-- rate, else the list price, in the customer's currency, in effect on the usage period's first
-- day (effective_from <= day < effective_to; no proration): for P, the same rows that priced P
-- (publishing refuses to run while they changed). One row per (customer, item, usage period);
-- usage without a rate in effect stops billing here, naming the customer, item and period.

with

item_usage_in_billed_period as (

    select
        customer_id,
        product_item_id,
        billing_period_start as usage_period_start,
        billing_period_end as usage_period_end

    from {{ ref('int_item_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

),

restated_usage_periods as (

    select distinct
        customer_id,
        usage_period_start

    from {{ ref('int_late_usage_selected') }}
    where billing_period_start = {{ billing_period_start() }}
        and usage_period_start < {{ billing_period_start() }}

),

restated_item_usage as (

    select
        item_usage.customer_id,
        item_usage.product_item_id,
        item_usage.billing_period_start as usage_period_start,
        item_usage.billing_period_end as usage_period_end

    from {{ ref('int_item_usage_aggregated') }} as item_usage
    inner join restated_usage_periods
        on item_usage.customer_id = restated_usage_periods.customer_id
        and item_usage.billing_period_start = restated_usage_periods.usage_period_start

),

item_usage as (

    select * from item_usage_in_billed_period
    union all
    select * from restated_item_usage

),

customers as (

    select * from {{ ref('stg_catalog__customers') }}

),

rates as (

    select * from {{ ref('stg_catalog__rates') }}

),

candidates as (

    select
        {{ billing_period_start() }} as billing_period_start,
        {{ billing_period_end() }} as billing_period_end,
        item_usage.usage_period_start,
        item_usage.usage_period_end,
        item_usage.customer_id,
        item_usage.product_item_id,
        customers.currency,
        rates.rate_id,
        rates.pricing_model,
        rates.unit_price,
        rates.package_size,
        rates.free_units,
        coalesce(rates.is_customer_rate, false) as is_customer_rate,
        row_number() over (
            partition by item_usage.customer_id, item_usage.product_item_id, item_usage.usage_period_start
            order by case when rates.is_customer_rate then 0 else 1 end, rates.rate_id
        ) as preference,
        count(rates.rate_id) over (
            partition by item_usage.customer_id, item_usage.product_item_id, item_usage.usage_period_start, rates.is_customer_rate
        ) as rates_of_same_kind

    from item_usage
    left join customers
        on item_usage.customer_id = customers.customer_id
    left join rates
        on item_usage.product_item_id = rates.product_item_id
        and customers.currency = rates.currency
        and (rates.customer_id is null or rates.customer_id = item_usage.customer_id)
        -- in effect on the usage period's first day
        and {{ in_effect_on('rates', 'item_usage.usage_period_start') }}

),

resolved as (

    select
        billing_period_start,
        billing_period_end,
        usage_period_start,
        usage_period_end,
        customer_id,
        product_item_id,
        currency,
        -- usage without a rate, or with two, stops billing naming the customer, item and period
        -- (the catalog allows one rate per item, customer (or list) and currency at a time); for
        -- late usage of a published period this is a catalog problem of that period
        case
            when rate_id is null
                then {{ raise_billing_error("'customer ' || customer_id || ', product item ' || product_item_id || ', period ' || cast(usage_period_start as " ~ text_type() ~ ") || case when usage_period_start < billing_period_start then ' (late usage, restated on the ' || cast(billing_period_start as " ~ text_type() ~ ") || ' invoice)' else '' end || ': no rate in effect on the period''s first day in currency ' || coalesce(currency, '(customer not in the catalog)')") }}
            when rates_of_same_kind > 1
                then {{ raise_billing_error("'customer ' || customer_id || ', product item ' || product_item_id || ', period ' || cast(usage_period_start as " ~ text_type() ~ ") || ': ' || cast(rates_of_same_kind as " ~ text_type() ~ ") || ' rates in effect at once'") }}
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
