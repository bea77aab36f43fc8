-- One draft invoice per selected customer of the billed period, lines or not: totals are the
-- sum of its rounded lines (no tax, discounts or credits in v1: subtotal = total); invoice_number
-- and issued_at are assigned only when the invoice is published. usage_accrued_to is what the
-- period's usage accrues up to: its end, or the run's instant for a month-to-date draft (level
-- meters accrue up to it). Added after the model first shipped: a home's existing drafts get the
-- column empty (NULL) instead of failing the run.

{{ config(on_schema_change='append_new_columns') }}

with

recipients as (

    select * from {{ ref('int_invoice_recipients_selected') }}
    where billing_period_start = {{ billing_period_start() }}

),

lines as (

    select * from {{ ref('int_invoice_lines_drafted') }}
    where billing_period_start = {{ billing_period_start() }}

),

line_totals as (

    select
        invoice_id,
        sum(amount) as lines_amount,
        count(*) as line_count

    from lines
    group by invoice_id

),

drafted as (

    select
        recipients.invoice_id,
        recipients.customer_id,
        recipients.billing_period_start,
        recipients.billing_period_end,
        recipients.currency,
        cast(coalesce(line_totals.lines_amount, 0) as {{ money_type() }}) as subtotal,
        cast(coalesce(line_totals.lines_amount, 0) as {{ money_type() }}) as total,
        cast(coalesce(line_totals.line_count, 0) as integer) as line_count,
        'draft' as status,
        cast(null as {{ text_type() }}) as invoice_number,
        cast(null as {{ timestamp_tz_type() }}) as issued_at,
        {{ billed_period_accrued_to() }} as usage_accrued_to

    from recipients
    left join line_totals
        on recipients.invoice_id = line_totals.invoice_id

)

select * from drafted
