-- Claim: the explorers' revenue of the billed period is exactly its invoices: per invoice, the
-- revenue rows sum to the invoice total, count its lines, and say estimate exactly while the
-- invoice is a draft. A failure means marts.fct_revenue_monthly shows money the invoices do not
-- (or the other way round): the rows returned are the invoices that disagree.

{{ config(meta={'dagster': {'ref': {'name': 'fct_revenue_monthly'}}}) }}

with

invoices as (

    select * from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

revenue as (

    select
        invoice_id,
        sum(amount) as amount,
        sum(line_count) as line_count,
        min(case when is_estimate then 1 else 0 end) as all_estimates,
        max(case when is_estimate then 1 else 0 end) as any_estimate

    from {{ ref('fct_revenue_monthly') }}
    where revenue_month = {{ billing_period_start() }}
    group by invoice_id

)

select
    coalesce(invoices.invoice_id, revenue.invoice_id) as invoice_id,
    invoices.total,
    invoices.line_count,
    invoices.status,
    revenue.amount as revenue_amount,
    revenue.line_count as revenue_line_count

from invoices
full outer join revenue
    on invoices.invoice_id = revenue.invoice_id
where invoices.invoice_id is null
    or coalesce(revenue.amount, 0) <> invoices.total
    or coalesce(revenue.line_count, 0) <> invoices.line_count
    or (revenue.invoice_id is not null and invoices.status = 'draft' and revenue.all_estimates = 0)
    or (revenue.invoice_id is not null and invoices.status = 'published' and revenue.any_estimate = 1)
