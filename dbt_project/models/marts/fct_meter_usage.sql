-- Contract section 5: meter usage per customer, meter and period over all usage landed so far
-- (late usage included). `quantity` is the raw aggregate: a sum meter may be negative.

with

meter_usage as (

    select * from {{ ref('int_meter_usage_aggregated') }}

)

select
    customer_id,
    meter_id,
    billing_period_start,
    billing_period_end,
    cast(quantity as {{ quantity_type() }}) as quantity,
    cast(event_count as bigint) as event_count

from meter_usage
