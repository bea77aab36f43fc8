-- Claim: the lines of every invoice of the billed period are numbered in the contract's order
-- (contract section 5): usage lines by product_item_id then tier, then the minimum_commitment
-- line, then adjustment lines by usage period, each period's item adjustments by product_item_id
-- before its commitment true-up. A failure means an invoice shows its lines out of order: the
-- rows returned are the lines whose number is not their position in that order.

{{ config(meta={'dagster': {'ref': {'name': 'fct_invoice_lines'}}}) }}

with

lines as (

    select * from {{ ref('fct_invoice_lines') }}
    where billing_period_start = {{ billing_period_start() }}

),

positioned as (

    select
        invoice_id,
        line_number,
        line_type,
        usage_period_start,
        product_item_id,
        tier,
        row_number() over (
            partition by invoice_id
            order by
                case line_type
                    when 'usage' then 0
                    when 'minimum_commitment' then 1
                    when 'adjustment' then 2
                    else 3
                end,
                case when line_type = 'adjustment' then usage_period_start end nulls first,
                product_item_id nulls last,
                tier nulls first,
                line_number
        ) as contract_position

    from lines

)

select *
from positioned
where line_number <> contract_position
