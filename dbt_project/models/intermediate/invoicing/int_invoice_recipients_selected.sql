-- The customers that get an invoice for the billed period (contract section 4): every customer
-- whose active range [active_from, active_to) overlaps the period (always, without a range),
-- every customer with usage in the period (billed or not), and every customer with late usage of
-- an earlier period that this period restates (section 8), even outside its range. Each gets the
-- stable invoice id INV-YYYYMM-<customer_id>.

with

customers as (

    select * from {{ ref('stg_catalog__customers') }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

customers_with_usage as (

    select distinct customer_id
    from {{ ref('int_meter_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

),

customers_with_late_usage as (

    select distinct customer_id
    from {{ ref('int_late_usage_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

selected as (

    select
        {{ billing_period_start() }} as billing_period_start,
        {{ billing_period_end() }} as billing_period_end,
        {{ invoice_id('customers.customer_id') }} as invoice_id,
        customers.customer_id,
        customers.currency,
        case
            when currencies.minor_unit is null
                then {{ raise_billing_error("'customer ' || customers.customer_id || ': currency ' || customers.currency || ' has no ISO 4217 minor unit in the currency seed'") }}
            else cast(currencies.minor_unit as integer)
        end as minor_unit,
        (customers.active_from is null or customers.active_from < {{ billing_period_end() }})
            and (customers.active_to is null or customers.active_to > {{ billing_period_start() }})
            as is_active_in_period,
        customers_with_usage.customer_id is not null as has_usage,
        customers_with_late_usage.customer_id is not null as has_late_usage

    from customers
    left join customers_with_usage
        on customers.customer_id = customers_with_usage.customer_id
    left join customers_with_late_usage
        on customers.customer_id = customers_with_late_usage.customer_id
    left join currencies
        on customers.currency = currencies.currency

)

select * from selected
where is_active_in_period or has_usage or has_late_usage
