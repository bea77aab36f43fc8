{{ config(
    materialized=usage_layer_materialization(),
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'meter_id', 'level_set', 'billing_period_start'],
    on_schema_change='append_new_columns',
    pre_hook="{{ usage_layer_reset() }}",
) }}

-- Level meters: each level set's own sums per month, over every event landed so far, whatever
-- the run's instant (they add up from run to run, so the carried level of a month never needs a
-- scan of the events before it). A level set is an item's events (level_set = its id) or the
-- meter's events no item matches (level_set ''). For the month [s, e):
--   period_change    the sum of the values of the month's events
--   weighted_to_end  the sum of value x (e - t) over them, in units x microseconds (exact;
--                    time_weighted_sum meters only, 0 for running_total)
-- Incremental (macros/usage_layer.sql): a run adds the sums of the events landed since the last
-- to the rows of their months (delete+insert), or rebuilds from every event when the catalog
-- changed.

with

events as (

    select
        customer_id,
        meter_id,
        coalesce(product_item_id, '') as level_set,
        usage_period_start as billing_period_start,
        value,
        case
            when aggregation = 'time_weighted_sum'
                then value * (
                    {{ utc_date_microseconds('usage_period_end') }}
                    - {{ epoch_microseconds('event_at') }}
                )
            else 0
        end as weighted_to_end,
        landing_seq

    from {{ ref('int_usage_events_matched') }}
    where is_level
        and {{ landed_since_last_build() }}

),

added as (

    select
        customer_id,
        meter_id,
        level_set,
        billing_period_start,
        sum(value) as period_change,
        sum(weighted_to_end) as weighted_to_end,
        count(*) as event_count,
        max(landing_seq) as through_landing_seq

    from events
    group by customer_id, meter_id, level_set, billing_period_start

),

{% if usage_layer_adds() %}
held as (

    select
        held_rows.customer_id,
        held_rows.meter_id,
        held_rows.level_set,
        held_rows.billing_period_start,
        held_rows.period_change,
        held_rows.weighted_to_end,
        held_rows.event_count,
        held_rows.through_landing_seq

    from {{ this }} as held_rows
    inner join added
        on held_rows.customer_id = added.customer_id
        and held_rows.meter_id = added.meter_id
        and held_rows.level_set = added.level_set
        and held_rows.billing_period_start = added.billing_period_start

),

both_sums as (

    select * from added
    union all
    select * from held

),
{% else %}
both_sums as (

    select * from added

),
{% endif %}

merged as (

    select
        customer_id,
        meter_id,
        level_set,
        billing_period_start,
        cast(sum(period_change) as {{ quantity_type() }}) as period_change,
        cast(sum(weighted_to_end) as {{ quantity_type() }}) as weighted_to_end,
        cast(sum(event_count) as bigint) as event_count,
        max(through_landing_seq) as through_landing_seq

    from both_sums
    group by customer_id, meter_id, level_set, billing_period_start

)

select
    *,
    {{ usage_catalog_fingerprint() }} as catalog_fingerprint

from merged
