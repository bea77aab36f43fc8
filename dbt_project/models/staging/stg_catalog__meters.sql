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
        unique_dimension,
        -- level meters (contract v1.2 section 3): each event is a signed change of a level
        aggregation in ('time_weighted_sum', 'running_total') as is_level,
        -- time_weighted_sum only: period (the default), day or hour
        case
            when aggregation = 'time_weighted_sum' then coalesce(time_unit, 'period')
        end as time_unit

    from source

)

select * from renamed
