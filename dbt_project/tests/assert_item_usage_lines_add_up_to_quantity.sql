-- Claim: for every customer and product item with usage in the billed period, the quantities of
-- its usage lines add up to Q = max(aggregate, 0) (contract section 5), and it has at least one
-- line. A failure means units were priced twice or not at all (e.g. a tier table that does not
-- cover Q): the rows returned are the items whose lines disagree with their usage.

{{ config(meta={'dagster': {'ref': {'name': 'int_usage_rated'}}}) }}

with

item_usage as (

    select
        customer_id,
        product_item_id,
        case when quantity > 0 then quantity else 0 end as billable_quantity

    from {{ ref('int_item_usage_aggregated') }}
    where billing_period_start = {{ billing_period_start() }}

),

line_quantities as (

    select
        customer_id,
        product_item_id,
        sum(quantity) as lines_quantity,
        count(*) as line_count

    from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id, product_item_id

)

select
    coalesce(item_usage.customer_id, line_quantities.customer_id) as customer_id,
    coalesce(item_usage.product_item_id, line_quantities.product_item_id) as product_item_id,
    item_usage.billable_quantity,
    line_quantities.lines_quantity,
    line_quantities.line_count

from item_usage
full outer join line_quantities
    on item_usage.customer_id = line_quantities.customer_id
    and item_usage.product_item_id = line_quantities.product_item_id
where item_usage.customer_id is null
    or line_quantities.customer_id is null
    or item_usage.billable_quantity <> line_quantities.lines_quantity
