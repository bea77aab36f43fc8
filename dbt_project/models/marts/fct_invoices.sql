{{ config(materialized='view') }}

-- Contract section 5: every invoice. A published period shows its published invoices
-- (billing.published_invoices, with invoice_number and issued_at); every other period its
-- latest drafts (status 'draft', no number yet).
-- A view, so publishing shows here at once: the mart is what the ledger and the drafts say at
-- the moment it is read, and publishing never rebuilds anything (docs/architecture.md).

with

published_periods as (

    select billing_period_start from {{ ref('stg_billing__published_periods') }}

),

published_invoices as (

    select * from {{ ref('stg_billing__published_invoices') }}
    where billing_period_start in (select billing_period_start from published_periods)

),

draft_invoices as (

    select * from {{ ref('int_invoices_drafted') }}
    where billing_period_start not in (select billing_period_start from published_periods)

),

invoices as (

    select
        invoice_id, customer_id, billing_period_start, billing_period_end, currency,
        subtotal, total, line_count, status, invoice_number, issued_at,
        -- a period is published only once it is over: its usage accrued to its end
        {{ instant_from_microseconds(utc_date_microseconds('billing_period_end')) }}
            as usage_accrued_to
    from published_invoices

    union all

    select
        invoice_id, customer_id, billing_period_start, billing_period_end, currency,
        subtotal, total, line_count, status, invoice_number, issued_at, usage_accrued_to
    from draft_invoices

)

select
    invoice_id,
    customer_id,
    billing_period_start,
    billing_period_end,
    currency,
    cast(subtotal as {{ money_type() }}) as subtotal,
    cast(total as {{ money_type() }}) as total,
    cast(line_count as integer) as line_count,
    status,
    invoice_number,
    issued_at,
    cast(usage_accrued_to as {{ timestamp_tz_type() }}) as usage_accrued_to

from invoices
