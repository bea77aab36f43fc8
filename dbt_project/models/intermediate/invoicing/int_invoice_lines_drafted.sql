-- The billed period's draft invoice lines: the rated usage lines, then a minimum_commitment
-- top-up where the commitment in effect on the period's first day is above the usage subtotal
-- (the sum of the period's own rounded usage lines, never the adjustments), then the adjustment
-- lines for late usage of published periods (int_late_usage_adjusted: each item's adjustment,
-- then that period's commitment true-up). Lines are numbered from 1 per invoice: usage lines by
-- product_item_id then tier; the minimum_commitment line; adjustment lines by usage period then
-- product_item_id, each period's true-up after its item adjustments (contract section 5).

with

recipients as (

    select * from {{ ref('int_invoice_recipients_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

rated_usage as (

    select * from {{ ref('int_usage_rated') }}
    where billing_period_start = {{ billing_period_start() }}
        and usage_period_start = billing_period_start

),

late_usage_adjustments as (

    select * from {{ ref('int_late_usage_adjusted') }}
    where billing_period_start = {{ billing_period_start() }}

),

commitments_in_effect as (

    select * from {{ ref('stg_catalog__commitments') }} as commitments
    where {{ in_effect_on('commitments', billing_period_start()) }}

),

usage_lines as (

    select
        recipients.invoice_id,
        rated_usage.customer_id,
        rated_usage.billing_period_start,
        rated_usage.billing_period_end,
        rated_usage.billing_period_start as usage_period_start,
        rated_usage.billing_period_end as usage_period_end,
        'usage' as line_type,
        rated_usage.product_item_id,
        rated_usage.meter_id,
        coalesce(rated_usage.product_item_name, rated_usage.product_item_id)
            || case when rated_usage.tier is not null then ', tier ' || cast(rated_usage.tier as {{ text_type() }}) else '' end
            as description,
        rated_usage.quantity,
        rated_usage.unit_price,
        rated_usage.tier,
        rated_usage.amount,
        rated_usage.currency,
        rated_usage.rate_id,
        0 as line_group,
        0 as is_commitment_true_up

    from rated_usage
    inner join recipients
        on rated_usage.customer_id = recipients.customer_id

),

usage_subtotals as (

    select
        customer_id,
        sum(amount) as usage_subtotal

    from usage_lines
    group by customer_id

),

commitment_lines as (

    select
        recipients.invoice_id,
        recipients.customer_id,
        recipients.billing_period_start,
        recipients.billing_period_end,
        recipients.billing_period_start as usage_period_start,
        recipients.billing_period_end as usage_period_end,
        'minimum_commitment' as line_type,
        cast(null as {{ text_type() }}) as product_item_id,
        cast(null as {{ text_type() }}) as meter_id,
        'Minimum commitment top-up' as description,
        cast(null as {{ quantity_type() }}) as quantity,
        cast(null as {{ quantity_type() }}) as unit_price,
        cast(null as integer) as tier,
        case
            when commitments_in_effect.currency <> recipients.currency
                then {{ raise_billing_error("'customer ' || recipients.customer_id || ': commitment in ' || commitments_in_effect.currency || ', customer in ' || recipients.currency") }}
            else {{ commitment_top_up(
                'commitments_in_effect.minimum_amount',
                'coalesce(usage_subtotals.usage_subtotal, 0)',
                'recipients.minor_unit') }}
        end as amount,
        recipients.currency,
        cast(null as {{ text_type() }}) as rate_id,
        1 as line_group,
        0 as is_commitment_true_up

    from recipients
    inner join commitments_in_effect
        on recipients.customer_id = commitments_in_effect.customer_id
    left join usage_subtotals
        on recipients.customer_id = usage_subtotals.customer_id
    where commitments_in_effect.minimum_amount > coalesce(usage_subtotals.usage_subtotal, 0)

),

adjustment_lines as (

    select
        recipients.invoice_id,
        recipients.customer_id,
        recipients.billing_period_start,
        recipients.billing_period_end,
        late_usage_adjustments.usage_period_start,
        late_usage_adjustments.usage_period_end,
        'adjustment' as line_type,
        late_usage_adjustments.product_item_id,
        late_usage_adjustments.meter_id,
        'Adjustment for ' || substr(cast(late_usage_adjustments.usage_period_start as {{ text_type() }}), 1, 7) || ': '
            || case
                when late_usage_adjustments.is_commitment_true_up then 'minimum commitment true-up'
                else 'late usage of ' || coalesce(late_usage_adjustments.product_item_name, late_usage_adjustments.product_item_id)
            end as description,
        late_usage_adjustments.quantity,
        cast(null as {{ quantity_type() }}) as unit_price,
        cast(null as integer) as tier,
        late_usage_adjustments.amount,
        recipients.currency,
        late_usage_adjustments.rate_id,
        2 as line_group,
        case when late_usage_adjustments.is_commitment_true_up then 1 else 0 end as is_commitment_true_up

    from late_usage_adjustments
    inner join recipients
        on late_usage_adjustments.customer_id = recipients.customer_id

),

all_lines as (

    select * from usage_lines
    union all
    select * from commitment_lines
    union all
    select * from adjustment_lines

),

numbered as (

    select
        all_lines.*,
        row_number() over (
            partition by invoice_id
            order by line_group, usage_period_start, is_commitment_true_up, product_item_id, tier
        ) as line_number

    from all_lines

),

drafted as (

    select
        {{ invoice_line_columns(typed=true) }}

    from numbered

)

select * from drafted
