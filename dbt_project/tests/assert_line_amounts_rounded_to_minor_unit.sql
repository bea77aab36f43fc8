-- Claim: every line amount of the billed period is already in the currency's minor unit (2
-- decimals for USD, 0 for JPY, 3 for KWD...), so invoice totals need no more rounding (contract
-- section 4). A failure means a line carries sub-minor-unit amounts: the rows returned are
-- those lines with the minor unit they should have been rounded to.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoice_lines'}}}) }}

with

lines as (

    select * from {{ ref('fct_invoice_lines') }}
    where billing_period_start = {{ billing_period_start() }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

)

select
    lines.invoice_id,
    lines.line_number,
    lines.amount,
    lines.currency,
    currencies.minor_unit

from lines
left join currencies
    on lines.currency = currencies.currency
where currencies.minor_unit is null
    or lines.amount <> {{ round_to_minor_unit('lines.amount', 'currencies.minor_unit') }}
