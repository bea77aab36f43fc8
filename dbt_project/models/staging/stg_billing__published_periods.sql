with

source as (

    select * from {{ source('billing', 'published_periods') }}

),

renamed as (

    select
        billing_period_start,
        published_at,
        cast(invoice_count as integer) as invoice_count,
        catalog_fingerprint

    from source

)

select * from renamed
