-- Contract section 5: usage that no product item prices, per customer, meter and period (all
-- usage landed so far), aggregated with the meter's aggregation over only those events.

with

unbilled_usage as (

    select * from {{ ref('int_unbilled_usage_aggregated') }}

)

select
    customer_id,
    meter_id,
    billing_period_start,
    billing_period_end,
    cast(quantity as {{ quantity_type() }}) as quantity,
    cast(event_count as bigint) as event_count

from unbilled_usage
