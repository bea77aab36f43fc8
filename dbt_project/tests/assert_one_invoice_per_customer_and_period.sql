-- Claim: in the billed period, every customer that must get an invoice (active range overlaps
-- the period, or usage in it) has exactly one invoice, and no other customer has one (contract
-- section 4). A failure means a customer is missing an invoice, has two, or has one it should
-- not: the rows returned name the customer with the counts found.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoices'}}}) }}

with

recipients as (

    select customer_id, count(*) as expected_invoices
    from {{ ref('int_invoice_recipients_selected') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id

),

drafts as (

    select customer_id, count(*) as draft_invoices
    from {{ ref('int_invoices_drafted') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id

),

shown as (

    select customer_id, count(*) as shown_invoices
    from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id

)

select
    coalesce(recipients.customer_id, drafts.customer_id) as customer_id,
    recipients.expected_invoices,
    drafts.draft_invoices,
    shown.shown_invoices

from recipients
full outer join drafts
    on recipients.customer_id = drafts.customer_id
left join shown
    on coalesce(recipients.customer_id, drafts.customer_id) = shown.customer_id
where recipients.customer_id is null
    or drafts.customer_id is null
    or drafts.draft_invoices <> 1
    or shown.shown_invoices > 1
