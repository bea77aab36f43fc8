with

source as (

    select * from {{ source('catalog', 'meters') }}

),

renamed as (

    select
        meter_id,
        display_name as meter_name,
        unit,
        aggregation,
        unique_dimension

    from source

)

select * from renamed
