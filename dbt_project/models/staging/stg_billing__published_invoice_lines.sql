with

source as (

    select * from {{ source('billing', 'published_invoice_lines') }}

),

renamed as (

    select
        {{ invoice_line_columns(typed=true) }}

    from source

)

select * from renamed
