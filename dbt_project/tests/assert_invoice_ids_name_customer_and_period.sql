-- Claim: every invoice of the billed period is named for its customer and period,
-- INV-YYYYMM-<customer_id> (contract section 5), ends on the first day of the next month, and is
-- in a currency with a minor unit in the ISO 4217 seed (contract section 4). A failure means an
-- invoice header names the wrong customer, period or currency: the rows returned are those
-- invoices with the id, end and minor unit they should have.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoices'}}}) }}

with

invoices as (

    select * from {{ ref('fct_invoices') }}
    where billing_period_start = {{ billing_period_start() }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

checked as (

    select
        invoices.invoice_id,
        invoices.customer_id,
        invoices.billing_period_end,
        invoices.currency,
        {{ invoice_id('invoices.customer_id') }} as expected_invoice_id,
        {{ billing_period_end() }} as expected_billing_period_end,
        currencies.minor_unit

    from invoices
    left join currencies
        on invoices.currency = currencies.currency

)

select *
from checked
where invoice_id <> expected_invoice_id
    or billing_period_end <> expected_billing_period_end
    or minor_unit is null
