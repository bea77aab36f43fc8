with

source as (

    select * from {{ source('catalog', 'rates') }}

),

renamed as (

    select
        rate_id,
        product_item_id,
        customer_id,
        currency,
        pricing_model,
        cast(unit_price as {{ quantity_type() }}) as unit_price,
        cast(package_size as {{ quantity_type() }}) as package_size,
        cast(coalesce(free_units, 0) as {{ quantity_type() }}) as free_units,
        cast(effective_from as date) as effective_from,
        cast(effective_to as date) as effective_to,
        customer_id is not null as is_customer_rate

    from source

)

select * from renamed
