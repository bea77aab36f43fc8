with

source as (

    select * from {{ source('billing', 'published_invoices') }}

),

renamed as (

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
        issued_at

    from source

)

select * from renamed
