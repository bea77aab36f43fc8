-- Claim: in the billed period, every customer that must get an invoice
-- (int_invoice_recipients_selected: active range overlaps the period, usage in it, or late usage
-- it restates) has exactly one draft invoice and no other customer has one (contract section 4);
-- while the period is not published, fct_invoices shows exactly those drafts. A published period
-- shows its published invoices, which never change. A failure means a customer is missing an
-- invoice, has two, or has one it should not: the rows returned name the customer with the
-- counts found.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoices'}}}) }}

with

published_periods as (

    select billing_period_start from {{ ref('stg_billing__published_periods') }}
    where billing_period_start = {{ billing_period_start() }}

),

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

),

customers as (

    select customer_id from recipients
    union
    select customer_id from drafts
    union
    select customer_id from shown

),

compared as (

    select
        customers.customer_id,
        case when recipients.expected_invoices > 0 then 1 else 0 end as expected_invoices,
        coalesce(drafts.draft_invoices, 0) as draft_invoices,
        coalesce(shown.shown_invoices, 0) as shown_invoices

    from customers
    left join recipients
        on customers.customer_id = recipients.customer_id
    left join drafts
        on customers.customer_id = drafts.customer_id
    left join shown
        on customers.customer_id = shown.customer_id

)

select *
from compared
where draft_invoices <> expected_invoices
    or shown_invoices > 1
    or (shown_invoices <> expected_invoices and not exists (select 1 from published_periods))
