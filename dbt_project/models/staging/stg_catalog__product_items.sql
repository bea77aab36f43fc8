with

source as (

    select * from {{ source('catalog', 'product_items') }}

),

renamed as (

    select
        product_item_id,
        display_name as product_item_name,
        meter_id,
        dimension_filter,
        -- `key=value`, split at the FIRST '=' (the value may hold more); empty = every event
        case
            when dimension_filter is not null
                then substr(dimension_filter, 1, position('=' in dimension_filter) - 1)
        end as filter_key,
        case
            when dimension_filter is not null
                then substr(dimension_filter, position('=' in dimension_filter) + 1)
        end as filter_value

    from source

)

select * from renamed
