{{ config(materialized='view') }}

-- The explorers' revenue (docs/contract.md E19): per customer, product item, currency and
-- revenue month, the month's invoice amount for the item. A published month shows its published
-- lines (adjustments for late usage of earlier months count in the month whose invoice bills
-- them); any other month its latest draft: the month-to-date estimate, priced by the same
-- models as invoices from the usage landed so far (`is_estimate`). `product_item_id` is NULL
-- for a minimum-commitment top-up. A view over the invoice marts, so a publication shows here at
-- once. Amounts are never summed across currencies.

with

lines as (

    select * from {{ ref('fct_invoice_lines') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

per_item as (

    select
        lines.billing_period_start as revenue_month,
        lines.customer_id,
        lines.product_item_id,
        lines.currency,
        lines.invoice_id,
        sum(lines.amount) as amount,
        sum(case when lines.line_type = 'adjustment' then lines.amount else 0 end)
            as adjustment_amount,
        count(*) as line_count

    from lines
    group by
        lines.billing_period_start,
        lines.customer_id,
        lines.product_item_id,
        lines.currency,
        lines.invoice_id

)

select
    per_item.revenue_month,
    per_item.customer_id,
    per_item.product_item_id,
    per_item.currency,
    cast(per_item.amount as {{ money_type() }}) as amount,
    cast(per_item.adjustment_amount as {{ money_type() }}) as adjustment_amount,
    cast(case when invoices.status = 'published' then per_item.amount end as {{ money_type() }})
        as published_amount,
    invoices.status <> 'published' as is_estimate,
    per_item.invoice_id,
    invoices.invoice_number,
    invoices.usage_accrued_to,
    cast(per_item.line_count as bigint) as line_count

from per_item
inner join invoices
    on per_item.invoice_id = invoices.invoice_id
