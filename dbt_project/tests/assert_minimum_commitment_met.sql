-- Claim: on a draft invoice of a customer with a commitment in effect on the billed period's
-- first day, the period's own usage lines plus its minimum_commitment line total at least that
-- commitment (rounded to the minor unit), and it has a minimum_commitment line exactly when its
-- usage lines total less (contract section 3). Adjustment lines for late usage of earlier periods
-- play no part (section 8): they may even make the invoice total negative. A failure means a
-- top-up is missing, wrong or spurious: the rows returned name the invoice.

{{ config(meta={'dagster': {'ref': {'name': 'int_invoices_drafted'}}}) }}

with

drafts as (

    select * from {{ ref('int_invoices_drafted') }}
    where billing_period_start = {{ billing_period_start() }}

),

lines as (

    select
        invoice_id,
        sum(case when line_type = 'usage' then amount else 0 end) as usage_amount,
        sum(case when line_type = 'minimum_commitment' then amount else 0 end) as commitment_amount,
        sum(case when line_type = 'minimum_commitment' then 1 else 0 end) as commitment_lines

    from {{ ref('int_invoice_lines_drafted') }}
    where billing_period_start = {{ billing_period_start() }}
    group by invoice_id

),

commitments as (

    select * from {{ ref('stg_catalog__commitments') }}
    where effective_from <= {{ billing_period_start() }}
        and (effective_to is null or effective_to > {{ billing_period_start() }})

),

recipients as (

    select * from {{ ref('int_invoice_recipients_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

checked as (

    select
        drafts.invoice_id,
        drafts.total,
        coalesce(lines.usage_amount, 0) as usage_amount,
        coalesce(lines.usage_amount, 0) + coalesce(lines.commitment_amount, 0) as usage_and_top_up_amount,
        coalesce(lines.commitment_lines, 0) as commitment_lines,
        {{ round_to_minor_unit('commitments.minimum_amount', 'recipients.minor_unit') }} as minimum_amount

    from drafts
    inner join recipients
        on drafts.invoice_id = recipients.invoice_id
    left join lines
        on drafts.invoice_id = lines.invoice_id
    left join commitments
        on drafts.customer_id = commitments.customer_id

)

select *
from checked
where (minimum_amount is null and commitment_lines > 0)
    or (minimum_amount is not null and (
        usage_and_top_up_amount < minimum_amount
        or commitment_lines > 1
        or (commitment_lines = 1) <> (usage_amount < minimum_amount)
    ))
