with

source as (

    select * from {{ source('catalog', 'customers') }}

),

renamed as (

    select
        customer_id,
        customer_name,
        currency,
        cast(active_from as date) as active_from,
        cast(active_to as date) as active_to

    from source

)

select * from renamed
