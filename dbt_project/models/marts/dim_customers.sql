-- The explorers' customers (docs/contract.md E19): the price book's customers as billing knows
-- them, one row each.

with

customers as (

    select * from {{ ref('stg_catalog__customers') }}

)

select
    customer_id,
    customer_name,
    currency,
    active_from,
    active_to

from customers
