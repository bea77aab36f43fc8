with

source as (

    select * from {{ source('raw', 'usage_events') }}

),

renamed as (

    select
        event_id,
        customer_id,
        meter_id,
        cast(value as {{ quantity_type() }}) as value,
        event_at,
        {{ utc_month_start('event_at') }} as usage_period_start,
        {{ add_months(utc_month_start('event_at'), 1) }} as usage_period_end,
        dimensions,
        source_file,
        row_number as source_row_number,
        file_sha256,
        ingest_run_id,
        landed_at,
        landing_seq,
        is_relanded

    from source

)

select * from renamed
