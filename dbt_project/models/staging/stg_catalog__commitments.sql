with

source as (

    select * from {{ source('catalog', 'commitments') }}

),

renamed as (

    select
        customer_id,
        cast(minimum_amount as {{ quantity_type() }}) as minimum_amount,
        currency,
        cast(effective_from as date) as effective_from,
        cast(effective_to as date) as effective_to

    from source

)

select * from renamed
