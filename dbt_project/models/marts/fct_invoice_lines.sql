-- Contract section 5: every invoice line. A published period shows its published lines
-- (billing.published_invoice_lines, never changed); every other period its latest drafts.

with

published_periods as (

    select billing_period_start from {{ ref('stg_billing__published_periods') }}

),

published_lines as (

    select * from {{ ref('stg_billing__published_invoice_lines') }}
    where billing_period_start in (select billing_period_start from published_periods)

),

draft_lines as (

    select * from {{ ref('int_invoice_lines_drafted') }}
    where billing_period_start not in (select billing_period_start from published_periods)

),

invoice_lines as (

    select
        invoice_id, line_number, customer_id, billing_period_start, billing_period_end,
        usage_period_start, usage_period_end, line_type, product_item_id, meter_id, description,
        quantity, unit_price, tier, amount, currency, rate_id
    from published_lines

    union all

    select
        invoice_id, line_number, customer_id, billing_period_start, billing_period_end,
        usage_period_start, usage_period_end, line_type, product_item_id, meter_id, description,
        quantity, unit_price, tier, amount, currency, rate_id
    from draft_lines

)

select
    invoice_id,
    cast(line_number as integer) as line_number,
    customer_id,
    billing_period_start,
    billing_period_end,
    usage_period_start,
    usage_period_end,
    line_type,
    product_item_id,
    meter_id,
    description,
    cast(quantity as decimal(38, 12)) as quantity,
    cast(unit_price as decimal(38, 12)) as unit_price,
    cast(tier as integer) as tier,
    cast(amount as decimal(38, 4)) as amount,
    currency,
    rate_id

from invoice_lines
