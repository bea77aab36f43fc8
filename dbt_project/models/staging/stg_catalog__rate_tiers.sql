with

source as (

    select * from {{ source('catalog', 'rate_tiers') }}

),

renamed as (

    select
        rate_id,
        cast(tier as integer) as tier,
        cast(up_to as {{ quantity_type() }}) as up_to,
        cast(unit_price as {{ quantity_type() }}) as unit_price,
        cast(coalesce(flat_fee, 0) as {{ quantity_type() }}) as flat_fee

    from source

)

select * from renamed
