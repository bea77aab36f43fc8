-- Claim: the explorers' days of the billed period add up to the month billing uses. Per customer,
-- meter and product item (unbilled: the meter's events no item prices), the days' event counts
-- sum to the month's; a sum or count meter's days sum to the month's quantity; a max meter's
-- greatest day is the month's quantity. A failure means marts.fct_usage_daily shows usage the
-- invoices do not bill (or the other way round): the rows returned are the groups that disagree.

{{ config(meta={'dagster': {'ref': {'name': 'fct_usage_daily'}}}) }}

with

days as (

    select
        customer_id,
        meter_id,
        coalesce(product_item_id, '') as product_item_key,
        max(aggregation) as aggregation,
        sum(event_count) as event_count,
        sum(quantity) as summed_quantity,
        max(quantity) as greatest_quantity

    from {{ ref('fct_usage_daily') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id, meter_id, coalesce(product_item_id, '')

),

months as (

    select customer_id, meter_id, product_item_id as product_item_key, aggregation,
           event_count, quantity
    from {{ ref('int_item_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

    union all

    select customer_id, meter_id, '' as product_item_key, aggregation, event_count, quantity
    from {{ ref('int_unbilled_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

)

select
    coalesce(days.customer_id, months.customer_id) as customer_id,
    coalesce(days.meter_id, months.meter_id) as meter_id,
    coalesce(days.product_item_key, months.product_item_key) as product_item_key,
    months.aggregation,
    days.event_count as days_event_count,
    months.event_count as month_event_count,
    days.summed_quantity,
    days.greatest_quantity,
    months.quantity as month_quantity

from days
full outer join months
    on days.customer_id = months.customer_id
    and days.meter_id = months.meter_id
    and days.product_item_key = months.product_item_key
where coalesce(days.event_count, 0) <> coalesce(months.event_count, 0)
    or (months.aggregation in ('sum', 'count') and days.summed_quantity <> months.quantity)
    or (months.aggregation = 'max' and days.greatest_quantity <> months.quantity)
