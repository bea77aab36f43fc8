-- Level meters (contract v1.2 section 3: time_weighted_sum, running_total), per customer, meter,
-- level set and period. A level set is an item's events (product_item_id) or the meter's events
-- that no item matches (product_item_id NULL); the meter's own level is the sum of its sets'
-- (int_meter_usage_aggregated). Each event's value is a signed change that holds from its instant
-- on, so for a period [s, e) and the set's events:
--   carried_in      the sum of the values of the set's events before s
--   level at E      carried_in + the period's changes before E          (running_total)
--   integral        carried_in x (E - s) + sum of value x (E - t) over the period's events
--                   before E, in units x microseconds, exact                (time_weighted_sum)
-- E is the period's end, or the run's instant in a month not yet over (month-to-date accrual).
-- A month that is over takes its sums from int_level_month_sums (kept incrementally: never a
-- scan of earlier events); only the months not yet over at the run's instant read their events.
-- The carried level is a running sum over the per-month rows. A set has a row for every period
-- with one of its events, and for every period up to the current month into which it carries a
-- non-zero level (event_count 0).

with

month_sums as (

    select * from {{ ref('int_level_month_sums') }}

),

run_instant as (

    select
        {{ epoch_microseconds(run_instant()) }} as run_us,
        {{ utc_month_start(run_instant()) }} as current_month

),

-- Every month from the first level event's to the current month (or the last event's, if later),
-- with its bounds in microseconds: E is the end, or the run's instant while the month is not
-- over (never before the start).
months as (

    {{ month_series(
        '(select min(billing_period_start) from month_sums)',
        '(select greatest(max(month_sums.billing_period_start), max(run_instant.current_month))'
        ~ ' from month_sums cross join run_instant)') }}

),

month_bounds as (

    select
        month_start,
        month_end,
        start_us,
        end_us,
        case
            when run_us >= end_us then end_us
            when run_us <= start_us then start_us
            else run_us
        end as bound_us,
        month_start <= current_month as is_due

    from (
        select
            months.month_start,
            {{ add_months('months.month_start', 1) }} as month_end,
            {{ utc_date_microseconds('months.month_start') }} as start_us,
            {{ utc_date_microseconds(add_months('months.month_start', 1)) }} as end_us,
            run_instant.run_us,
            run_instant.current_month
        from months
        cross join run_instant
    ) as month_edges

),

-- The months not over at the run's instant (its month and any later one), from their events:
-- the changes before the bound and their weighted sum up to it.
open_events as (

    select
        events.customer_id,
        events.meter_id,
        coalesce(events.product_item_id, '') as level_set,
        events.usage_period_start,
        events.aggregation,
        events.value,
        {{ epoch_microseconds('events.event_at') }} as event_us

    from {{ ref('int_usage_events_matched') }} as events
    cross join run_instant
    where events.is_level
        and events.usage_period_start >= run_instant.current_month

),

open_sums as (

    select
        open_events.customer_id,
        open_events.meter_id,
        open_events.level_set,
        open_events.usage_period_start as billing_period_start,
        sum(case when open_events.event_us < month_bounds.bound_us then open_events.value else 0 end)
            as change_before_bound,
        sum(
            case
                when open_events.aggregation = 'time_weighted_sum'
                    and open_events.event_us < month_bounds.bound_us
                    then open_events.value * (month_bounds.bound_us - open_events.event_us)
                else 0
            end
        ) as weighted_changes

    from open_events
    inner join month_bounds
        on open_events.usage_period_start = month_bounds.month_start
    group by
        open_events.customer_id,
        open_events.meter_id,
        open_events.level_set,
        open_events.usage_period_start

),

-- Every month's own sums: a month over takes the whole month's (its bound is its end).
period_sums as (

    select
        month_sums.customer_id,
        month_sums.meter_id,
        month_sums.level_set,
        month_sums.billing_period_start,
        month_sums.period_change,
        case
            when month_bounds.bound_us = month_bounds.end_us then month_sums.period_change
            else coalesce(open_sums.change_before_bound, 0)
        end as change_before_bound,
        case
            when month_bounds.bound_us = month_bounds.end_us then month_sums.weighted_to_end
            else coalesce(open_sums.weighted_changes, 0)
        end as weighted_changes,
        month_sums.event_count

    from month_sums
    inner join month_bounds
        on month_sums.billing_period_start = month_bounds.month_start
    left join open_sums
        on month_sums.customer_id = open_sums.customer_id
        and month_sums.meter_id = open_sums.meter_id
        and month_sums.level_set = open_sums.level_set
        and month_sums.billing_period_start = open_sums.billing_period_start

),

level_sets as (

    select
        period_sums.customer_id,
        period_sums.meter_id,
        period_sums.level_set,
        min(period_sums.billing_period_start) as first_period,
        -- a set runs on to the current month (its level may carry), or to its last event's month
        greatest(max(period_sums.billing_period_start), max(run_instant.current_month))
            as last_period

    from period_sums
    cross join run_instant
    group by period_sums.customer_id, period_sums.meter_id, period_sums.level_set

),

spine as (

    select
        level_sets.customer_id,
        level_sets.meter_id,
        level_sets.level_set,
        month_bounds.month_start as billing_period_start,
        month_bounds.month_end as billing_period_end,
        month_bounds.start_us,
        month_bounds.end_us,
        month_bounds.bound_us,
        month_bounds.is_due

    from level_sets
    inner join month_bounds
        on month_bounds.month_start >= level_sets.first_period
        and month_bounds.month_start <= level_sets.last_period

),

filled as (

    select
        spine.*,
        coalesce(period_sums.period_change, 0) as period_change,
        coalesce(period_sums.change_before_bound, 0) as change_before_bound,
        coalesce(period_sums.weighted_changes, 0) as weighted_changes,
        coalesce(period_sums.event_count, 0) as event_count

    from spine
    left join period_sums
        on spine.customer_id = period_sums.customer_id
        and spine.meter_id = period_sums.meter_id
        and spine.level_set = period_sums.level_set
        and spine.billing_period_start = period_sums.billing_period_start

),

carried as (

    select
        filled.*,
        coalesce(
            sum(period_change) over (
                partition by customer_id, meter_id, level_set
                order by billing_period_start
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) as carried_in

    from filled

),

meters as (

    select * from {{ ref('stg_catalog__meters') }}

),

levels as (

    select
        carried.customer_id,
        carried.meter_id,
        nullif(carried.level_set, '') as product_item_id,
        carried.billing_period_start,
        carried.billing_period_end,
        meters.aggregation,
        meters.time_unit,
        cast(carried.carried_in as {{ quantity_type() }}) as carried_level,
        cast(carried.carried_in + carried.change_before_bound as {{ quantity_type() }})
            as closing_level,
        -- time_weighted_sum only (a running_total's integral is never needed, and could overflow)
        cast(
            case
                when meters.aggregation = 'time_weighted_sum'
                    then carried.carried_in * (carried.bound_us - carried.start_us)
                        + carried.weighted_changes
                else 0
            end
            as {{ quantity_type() }}
        ) as level_integral,
        cast(
            case meters.time_unit
                when 'day' then 86400000000
                when 'hour' then 3600000000
                else carried.end_us - carried.start_us
            end
            as bigint
        ) as divisor_microseconds,
        {{ instant_from_microseconds('carried.bound_us') }} as usage_accrued_to,
        cast(carried.event_count as bigint) as event_count

    from carried
    inner join meters
        on carried.meter_id = meters.meter_id
    where carried.event_count > 0
        or (carried.carried_in <> 0 and carried.is_due)

)

select
    *,
    case aggregation
        when 'running_total' then closing_level
        else {{ quotient_rounded_12('level_integral', 'divisor_microseconds') }}
    end as quantity

from levels
