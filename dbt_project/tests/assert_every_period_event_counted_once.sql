-- Claim: in every period, each landed event is counted exactly once in meter usage, and exactly
-- once in either an item's usage or unbilled usage (never both, never neither). A failure means
-- an event was lost or double counted between raw.usage_events and the usage marts (e.g. an
-- event matching two product items): the rows returned are the periods whose counts disagree.

{{ config(meta={'dagster': {'ref': {'name': 'fct_meter_usage'}}}) }}

with

landed as (

    select usage_period_start as billing_period_start, count(*) as landed_events
    from {{ ref('stg_raw__usage_events') }}
    group by usage_period_start

),

metered as (

    select billing_period_start, sum(event_count) as metered_events
    from {{ ref('fct_meter_usage') }}
    group by billing_period_start

),

item_priced as (

    select billing_period_start, sum(event_count) as item_events
    from {{ ref('int_item_usage_aggregated') }}
    group by billing_period_start

),

unbilled as (

    select billing_period_start, sum(event_count) as unbilled_events
    from {{ ref('fct_unbilled_usage') }}
    group by billing_period_start

),

compared as (

    select
        coalesce(landed.billing_period_start, metered.billing_period_start) as billing_period_start,
        coalesce(landed.landed_events, 0) as landed_events,
        coalesce(metered.metered_events, 0) as metered_events,
        coalesce(item_priced.item_events, 0) as item_events,
        coalesce(unbilled.unbilled_events, 0) as unbilled_events

    from landed
    full outer join metered
        on landed.billing_period_start = metered.billing_period_start
    left join item_priced
        on coalesce(landed.billing_period_start, metered.billing_period_start) = item_priced.billing_period_start
    left join unbilled
        on coalesce(landed.billing_period_start, metered.billing_period_start) = unbilled.billing_period_start

)

select *
from compared
where landed_events <> metered_events
    or landed_events <> item_events + unbilled_events
