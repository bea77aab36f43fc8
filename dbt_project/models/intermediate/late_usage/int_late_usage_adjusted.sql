-- The adjustments the billed period carries for late usage of published periods (contract
-- section 8), one row per adjustment line:
--   - per (customer, published period P, product item) of int_late_usage_selected: P's lines
--     for the item re-priced by int_usage_rated with all usage landed so far (same rates and
--     tiers, each line rounded as usual) minus what was already billed for the item and P (P's
--     published usage lines plus the adjustments of it published since). Both sides are in minor
--     units, so the difference needs no more rounding; it may be 0.00 or negative. `quantity` is
--     the change in Q since the item was last billed for P, so that P's usage and adjustment
--     lines for the item add up to the current Q.
--   - per (customer, P) with such adjustments and a commitment in effect on P's first day, a
--     commitment true-up: the top-up a re-bill of P would give now (the commitment against ALL
--     of P's usage lines re-priced) minus P's published top-up and the true-ups published since.

with

selected as (

    select * from {{ ref('int_late_usage_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

recipients as (

    select * from {{ ref('int_invoice_recipients_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

restated_lines as (

    select * from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
        and usage_period_start < billing_period_start

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

),

published_lines as (

    select * from {{ ref('stg_billing__published_invoice_lines') }}
    where billing_period_start in (select billing_period_start from published_periods)

),

commitments as (

    select * from {{ ref('stg_catalog__commitments') }}

),

meters as (

    select * from {{ ref('stg_catalog__meters') }}

),

-- P's lines for each item, re-priced now: the current Q and the sum of the rounded lines.
restated_items as (

    select
        customer_id,
        usage_period_start,
        product_item_id,
        max(product_item_name) as product_item_name,
        max(rate_id) as rate_id,
        max(billable_quantity) as restated_quantity,
        sum(amount) as restated_amount

    from restated_lines
    group by customer_id, usage_period_start, product_item_id

),

-- What was billed so far for each item and P: P's usage lines and the item's adjustments of P.
billed_items as (

    select
        customer_id,
        usage_period_start,
        product_item_id,
        sum(coalesce(quantity, 0)) as billed_quantity,
        sum(amount) as billed_amount

    from published_lines
    where product_item_id is not null
        and line_type in ('usage', 'adjustment')
    group by customer_id, usage_period_start, product_item_id

),

item_adjustments as (

    select
        recipients.invoice_id,
        selected.customer_id,
        recipients.currency,
        recipients.minor_unit,
        selected.usage_period_start,
        selected.usage_period_end,
        false as is_commitment_true_up,
        selected.product_item_id,
        restated_items.product_item_name,
        selected.meter_id,
        restated_items.rate_id,
        selected.late_event_count,
        coalesce(restated_items.restated_quantity, 0) as restated_quantity,
        coalesce(billed_items.billed_quantity, 0) as billed_quantity,
        coalesce(restated_items.restated_quantity, 0) - coalesce(billed_items.billed_quantity, 0)
            as quantity,
        -- every selected item has re-priced lines (its events exist, and int_rates_resolved
        -- stopped on one without a rate): anything else is a bug, never a silent omission. But
        -- a late event of a level meter can take P's carried level back to 0: the item is no
        -- longer live in P (no usage row) and re-prices to no lines, 0 (section 8).
        case
            when restated_items.product_item_id is null and coalesce(meters.is_level, false)
                then 0
            when restated_items.product_item_id is null
                then {{ raise_billing_error("'customer ' || selected.customer_id || ', product item ' || selected.product_item_id || ', period ' || cast(selected.usage_period_start as " ~ text_type() ~ ") || ': late usage was not re-priced'") }}
            else restated_items.restated_amount
        end as restated_amount,
        coalesce(billed_items.billed_amount, 0) as billed_amount

    from selected
    inner join recipients
        on selected.customer_id = recipients.customer_id
    left join restated_items
        on selected.customer_id = restated_items.customer_id
        and selected.usage_period_start = restated_items.usage_period_start
        and selected.product_item_id = restated_items.product_item_id
    left join billed_items
        on selected.customer_id = billed_items.customer_id
        and selected.usage_period_start = billed_items.usage_period_start
        and selected.product_item_id = billed_items.product_item_id
    left join meters
        on selected.meter_id = meters.meter_id

),

restated_periods as (

    select distinct
        customer_id,
        usage_period_start,
        usage_period_end

    from selected

),

-- A re-bill of P now: the sum of all of P's rounded usage lines, every item re-priced.
restated_subtotals as (

    select
        customer_id,
        usage_period_start,
        sum(amount) as restated_usage_subtotal

    from restated_lines
    group by customer_id, usage_period_start

),

-- The top-up billed so far for P: its minimum_commitment line and the true-ups published since.
billed_top_ups as (

    select
        customer_id,
        usage_period_start,
        sum(amount) as billed_top_up

    from published_lines
    where line_type = 'minimum_commitment'
        or (line_type = 'adjustment' and product_item_id is null)
    group by customer_id, usage_period_start

),

commitment_true_ups as (

    select
        recipients.invoice_id,
        restated_periods.customer_id,
        recipients.currency,
        recipients.minor_unit,
        restated_periods.usage_period_start,
        restated_periods.usage_period_end,
        true as is_commitment_true_up,
        cast(null as {{ text_type() }}) as product_item_id,
        cast(null as {{ text_type() }}) as product_item_name,
        cast(null as {{ text_type() }}) as meter_id,
        cast(null as {{ text_type() }}) as rate_id,
        cast(null as bigint) as late_event_count,
        cast(null as {{ quantity_type() }}) as restated_quantity,
        cast(null as {{ quantity_type() }}) as billed_quantity,
        cast(null as {{ quantity_type() }}) as quantity,
        case
            when commitments.currency <> recipients.currency
                then {{ raise_billing_error("'customer ' || recipients.customer_id || ', period ' || cast(restated_periods.usage_period_start as " ~ text_type() ~ ") || ': commitment in ' || commitments.currency || ', customer in ' || recipients.currency") }}
            else {{ commitment_top_up(
                'commitments.minimum_amount',
                'coalesce(restated_subtotals.restated_usage_subtotal, 0)',
                'recipients.minor_unit') }}
        end as restated_amount,
        coalesce(billed_top_ups.billed_top_up, 0) as billed_amount

    from restated_periods
    inner join recipients
        on restated_periods.customer_id = recipients.customer_id
    inner join commitments
        on restated_periods.customer_id = commitments.customer_id
        and {{ in_effect_on('commitments', 'restated_periods.usage_period_start') }}
    left join restated_subtotals
        on restated_periods.customer_id = restated_subtotals.customer_id
        and restated_periods.usage_period_start = restated_subtotals.usage_period_start
    left join billed_top_ups
        on restated_periods.customer_id = billed_top_ups.customer_id
        and restated_periods.usage_period_start = billed_top_ups.usage_period_start

),

adjustments as (

    select * from item_adjustments
    union all
    select * from commitment_true_ups

)

select
    {{ billing_period_start() }} as billing_period_start,
    {{ billing_period_end() }} as billing_period_end,
    invoice_id,
    customer_id,
    currency,
    cast(minor_unit as integer) as minor_unit,
    usage_period_start,
    usage_period_end,
    is_commitment_true_up,
    product_item_id,
    product_item_name,
    meter_id,
    rate_id,
    cast(late_event_count as bigint) as late_event_count,
    cast(restated_quantity as {{ quantity_type() }}) as restated_quantity,
    cast(billed_quantity as {{ quantity_type() }}) as billed_quantity,
    cast(quantity as {{ quantity_type() }}) as quantity,
    cast(restated_amount as {{ money_type() }}) as restated_amount,
    cast(billed_amount as {{ money_type() }}) as billed_amount,
    cast(restated_amount - billed_amount as {{ money_type() }}) as amount

from adjustments
