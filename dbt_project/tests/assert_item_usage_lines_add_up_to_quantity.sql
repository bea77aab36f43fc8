-- Claim: for every customer and product item with usage in the billed period, and for every item
-- of a published period whose late usage the billed period restates, the quantities of its rated
-- lines add up to Q = max(aggregate, 0) (contract section 5), and it has at least one line. A
-- failure means units were priced twice or not at all (e.g. a tier table that does not cover Q):
-- the rows returned are the items whose lines disagree with their usage.

{{ config(meta={'dagster': {'ref': {'name': 'int_usage_rated'}}}) }}

with

restated_usage_periods as (

    select distinct customer_id, usage_period_start
    from {{ ref('int_late_usage_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

item_usage as (

    select
        item_usage.customer_id,
        item_usage.product_item_id,
        item_usage.billing_period_start as usage_period_start,
        case when item_usage.quantity > 0 then item_usage.quantity else 0 end as billable_quantity

    from {{ ref('int_item_usage_aggregated') }} as item_usage
    left join restated_usage_periods
        on item_usage.customer_id = restated_usage_periods.customer_id
        and item_usage.billing_period_start = restated_usage_periods.usage_period_start
    where item_usage.billing_period_start = {{ billing_period_start() }}
        or restated_usage_periods.customer_id is not null

),

line_quantities as (

    select
        customer_id,
        product_item_id,
        usage_period_start,
        sum(quantity) as lines_quantity,
        count(*) as line_count

    from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id, product_item_id, usage_period_start

)

select
    coalesce(item_usage.customer_id, line_quantities.customer_id) as customer_id,
    coalesce(item_usage.product_item_id, line_quantities.product_item_id) as product_item_id,
    coalesce(item_usage.usage_period_start, line_quantities.usage_period_start) as usage_period_start,
    item_usage.billable_quantity,
    line_quantities.lines_quantity,
    line_quantities.line_count

from item_usage
full outer join line_quantities
    on item_usage.customer_id = line_quantities.customer_id
    and item_usage.product_item_id = line_quantities.product_item_id
    and item_usage.usage_period_start = line_quantities.usage_period_start
where item_usage.customer_id is null
    or line_quantities.customer_id is null
    or item_usage.billable_quantity <> line_quantities.lines_quantity
