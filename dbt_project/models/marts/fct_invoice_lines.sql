{{ config(materialized='view') }}

-- Contract section 5: every invoice line. A published period shows its published lines
-- (billing.published_invoice_lines, never changed); every other period its latest drafts.
-- A view, so publishing shows here at once: the mart is what the ledger and the drafts say at
-- the moment it is read, and publishing never rebuilds anything (docs/architecture.md).

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

    select {{ invoice_line_columns() }}
    from published_lines

    union all

    select {{ invoice_line_columns() }}
    from draft_lines

)

select
    {{ invoice_line_columns(typed=true) }}

from invoice_lines
