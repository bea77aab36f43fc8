-- Claim: every line of the billed period carries its invoice's customer and currency and ends
-- with the billed period, and every usage and minimum_commitment line bills exactly the billed
-- period (usage period = billing period; adjustments restate an earlier one, contract sections 5
-- and 8). A failure means a line sits on another customer's invoice, in another currency, or
-- bills the wrong month: the rows returned are those lines beside their invoice's values.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoice_lines'}}}) }}

with

lines as (

    select * from {{ ref('fct_invoice_lines') }}
    where billing_period_start = {{ billing_period_start() }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

checked as (

    select
        lines.invoice_id,
        lines.line_number,
        lines.line_type,
        lines.customer_id,
        invoices.customer_id as invoice_customer_id,
        lines.currency,
        invoices.currency as invoice_currency,
        lines.billing_period_end,
        lines.usage_period_start,
        lines.usage_period_end

    from lines
    inner join invoices
        on lines.invoice_id = invoices.invoice_id

)

select *
from checked
where customer_id <> invoice_customer_id
    or currency <> invoice_currency
    or billing_period_end <> {{ billing_period_end() }}
    or (line_type in ('usage', 'minimum_commitment') and (
        usage_period_start <> {{ billing_period_start() }}
        or usage_period_end <> {{ billing_period_end() }}
    ))
