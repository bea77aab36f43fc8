-- Claim: while the billed period is not published, fct_invoices shows exactly one invoice for
-- every customer that must get one (int_invoice_recipients_selected: active range overlaps the
-- period, usage in it, or late usage it restates) and none for any other customer (contract
-- section 4). A published period shows its published invoices, which never change. A failure
-- means the public mart lost, doubled or invented an invoice: the rows returned name the
-- customer with the counts found.

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

shown as (

    select customer_id, count(*) as shown_invoices
    from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}
    group by customer_id

),

compared as (

    select
        coalesce(recipients.customer_id, shown.customer_id) as customer_id,
        coalesce(recipients.expected_invoices, 0) as expected_invoices,
        coalesce(shown.shown_invoices, 0) as shown_invoices

    from recipients
    full outer join shown
        on recipients.customer_id = shown.customer_id

)

select *
from compared
where shown_invoices <> case when expected_invoices > 0 then 1 else 0 end
    and not exists (select 1 from published_periods)
