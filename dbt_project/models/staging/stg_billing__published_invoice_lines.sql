with

source as (

    select * from {{ source('billing', 'published_invoice_lines') }}

),

renamed as (

    select
        invoice_id,
        cast(line_number as integer) as line_number,
        customer_id,
        billing_period_start,
        billing_period_end,
        usage_period_start,
        usage_period_end,
        line_type,
        product_item_id,
        meter_id,
        description,
        cast(quantity as decimal(38, 12)) as quantity,
        cast(unit_price as decimal(38, 12)) as unit_price,
        cast(tier as integer) as tier,
        cast(amount as decimal(38, 4)) as amount,
        currency,
        rate_id

    from source

)

select * from renamed
