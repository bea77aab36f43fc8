-- Claim: the lines of every invoice of the billed period are numbered 1, 2, ..., n with no gap
-- and no repeat (contract section 5). A failure means an invoice shows missing or duplicate
-- line numbers: the rows returned are those invoices with their min, max and counts.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoice_lines'}}}) }}

select
    invoice_id,
    min(line_number) as first_line_number,
    max(line_number) as last_line_number,
    count(*) as line_count,
    count(distinct line_number) as distinct_line_numbers

from {{ ref('fct_invoice_lines') }}
where billing_period_start = {{ billing_period_start() }}
group by invoice_id
having min(line_number) <> 1
    or max(line_number) <> count(*)
    or count(distinct line_number) <> count(*)
