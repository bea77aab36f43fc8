-- Claim: every invoice of the billed period has subtotal = total = the sum of its rounded lines,
-- and line_count = its number of lines (contract section 4: no tax, discounts or credits in v1).
-- A failure means an invoice shows an amount its lines do not add up to: the rows returned are
-- the invoices whose header disagrees with their lines. Nothing of that period may be published.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoices'}}}) }}

with

invoices as (

    select * from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

line_totals as (

    select
        invoice_id,
        sum(amount) as lines_amount,
        count(*) as line_count

    from {{ ref('fct_invoice_lines') }}
    where billing_period_start = {{ billing_period_start() }}
    group by invoice_id

)

select
    invoices.invoice_id,
    invoices.subtotal,
    invoices.total,
    invoices.line_count,
    line_totals.lines_amount,
    line_totals.line_count as lines_counted

from invoices
full outer join line_totals
    on invoices.invoice_id = line_totals.invoice_id
where invoices.invoice_id is null
    or invoices.total <> coalesce(line_totals.lines_amount, 0)
    or invoices.subtotal <> invoices.total
    or invoices.line_count <> coalesce(line_totals.line_count, 0)
