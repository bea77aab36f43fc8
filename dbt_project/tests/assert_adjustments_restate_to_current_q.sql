-- Claim: after the billed period's adjustments, every (customer, published period P, item) it
-- adjusts is billed exactly as a re-bill of P would bill it now (contract section 8): P's usage
-- lines plus all adjustment lines of (P, item) - the published ones and the billed period's -
-- add up to the current Q (max(aggregate, 0) over all usage landed so far) and to the amount of
-- P's lines re-priced now; and for each (customer, P) with a commitment true-up, P's top-up plus
-- all its true-ups equals the top-up a re-bill of P would give now. Read from the public marts
-- (fct_invoice_lines shows published rows for published periods and the drafts otherwise). A
-- failure means late usage was billed twice, partly or not at all: the rows returned are the
-- (customer, period, item) whose billed total disagrees with the restatement (item NULL for
-- the commitment).

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoice_lines'}}}) }}

with

adjusted as (

    select * from {{ ref('int_late_usage_adjusted') }}
    where billing_period_start = {{ billing_period_start() }}

),

adjusted_usage_periods as (

    select distinct customer_id, usage_period_start
    from adjusted

),

-- Every line billed for the adjusted periods up to the billed period: P's own usage and
-- commitment lines, and the adjustments of P on later invoices.
billed_lines as (

    select lines.*
    from {{ ref('fct_invoice_lines') }} as lines
    inner join adjusted_usage_periods
        on lines.customer_id = adjusted_usage_periods.customer_id
        and lines.usage_period_start = adjusted_usage_periods.usage_period_start
    where lines.billing_period_start <= {{ billing_period_start() }}

),

billed_items as (

    select
        customer_id,
        usage_period_start,
        product_item_id,
        sum(coalesce(quantity, 0)) as billed_quantity,
        sum(amount) as billed_amount

    from billed_lines
    where product_item_id is not null
    group by customer_id, usage_period_start, product_item_id

),

billed_top_ups as (

    select
        customer_id,
        usage_period_start,
        sum(amount) as billed_amount

    from billed_lines
    where product_item_id is null
    group by customer_id, usage_period_start

),

current_usage as (

    select
        customer_id,
        product_item_id,
        billing_period_start as usage_period_start,
        case when quantity > 0 then quantity else 0 end as current_quantity

    from {{ ref('int_item_usage_aggregated') }}

),

restated_items as (

    select
        customer_id,
        usage_period_start,
        product_item_id,
        sum(amount) as restated_amount

    from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
        and usage_period_start < billing_period_start
    group by customer_id, usage_period_start, product_item_id

),

restated_subtotals as (

    select
        customer_id,
        usage_period_start,
        sum(amount) as restated_usage_subtotal

    from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
        and usage_period_start < billing_period_start
    group by customer_id, usage_period_start

),

commitments as (

    select * from {{ ref('stg_catalog__commitments') }}

),

checked_items as (

    select
        adjusted.customer_id,
        adjusted.usage_period_start,
        adjusted.product_item_id,
        -- no usage row for P now: the item is no longer live in P (a level carried back to
        -- 0), and a re-bill of P gives it no lines: 0
        coalesce(current_usage.current_quantity, 0) as expected_quantity,
        billed_items.billed_quantity,
        coalesce(restated_items.restated_amount, 0) as expected_amount,
        billed_items.billed_amount

    from adjusted
    left join billed_items
        on adjusted.customer_id = billed_items.customer_id
        and adjusted.usage_period_start = billed_items.usage_period_start
        and adjusted.product_item_id = billed_items.product_item_id
    left join current_usage
        on adjusted.customer_id = current_usage.customer_id
        and adjusted.usage_period_start = current_usage.usage_period_start
        and adjusted.product_item_id = current_usage.product_item_id
    left join restated_items
        on adjusted.customer_id = restated_items.customer_id
        and adjusted.usage_period_start = restated_items.usage_period_start
        and adjusted.product_item_id = restated_items.product_item_id
    where not adjusted.is_commitment_true_up

),

checked_top_ups as (

    select
        adjusted.customer_id,
        adjusted.usage_period_start,
        adjusted.product_item_id,
        cast(null as decimal(38, 12)) as expected_quantity,
        cast(null as decimal(38, 12)) as billed_quantity,
        {{ commitment_top_up(
            'commitments.minimum_amount',
            'coalesce(restated_subtotals.restated_usage_subtotal, 0)',
            'adjusted.minor_unit') }} as expected_amount,
        billed_top_ups.billed_amount

    from adjusted
    left join billed_top_ups
        on adjusted.customer_id = billed_top_ups.customer_id
        and adjusted.usage_period_start = billed_top_ups.usage_period_start
    left join restated_subtotals
        on adjusted.customer_id = restated_subtotals.customer_id
        and adjusted.usage_period_start = restated_subtotals.usage_period_start
    left join commitments
        on adjusted.customer_id = commitments.customer_id
        and commitments.effective_from <= adjusted.usage_period_start
        and (commitments.effective_to is null or commitments.effective_to > adjusted.usage_period_start)
    where adjusted.is_commitment_true_up

),

checked as (

    select * from checked_items
    union all
    select * from checked_top_ups

)

select *
from checked
where billed_amount is null
    or expected_amount is null
    or billed_amount <> expected_amount
    or (product_item_id is not null and (
        expected_quantity is null
        or billed_quantity is null
        or billed_quantity <> expected_quantity
    ))
