-- `meterline explain`: the level behind a level meter's line (CONTRACT.md v1.2 sections 3, 6).
--
-- The set: the customer's events of the meter that the item's filter matches ($filter_key null:
-- every event; else `key=value`, matched exactly and case-sensitively, an event without the key
-- not matching, as int_usage_events_matched does), landed by $landed_by (null: every landed
-- event). For the period [$period_start, $period_end), accruing up to $accrued_to (the end, or
-- the run's instant of a month-to-date draft):
--   carried: the sum of the values of the set's events before the start, and their number;
--   steps:   one per distinct instant of the period's events before $accrued_to, in time order:
--            the change there (events at one instant act together), the level from that instant
--            on, how long it held (to the next instant, or $accrued_to, in microseconds) and
--            level x duration (exact DECIMAL(38,12); past it DuckDB raises, never rounds).
-- The carried segment (from the start to the first step at the carried level) is not a step:
-- explain adds it in Python. Only this customer's events of this meter are read.
--
-- One row per shown step (the first 10), each with the summary; no step: one row, step columns
-- null.

with

set_events as materialized (

    select event_at, value, landed_at
    from raw.usage_events
    where customer_id = $customer_id
        and meter_id = $meter_id
        and event_at < $period_end::timestamptz
        and ($landed_by::timestamptz is null or landed_at <= $landed_by::timestamptz)
        and (
            $filter_key::varchar is null
            or json_extract_string(
                dimensions,
                '$."' || replace(replace($filter_key::varchar, '\', '\\'), '"', '\"') || '"'
            ) = $filter_value::varchar
        )

),

carried as (

    select
        cast(coalesce(sum(value), 0) as decimal(38, 12)) as carried_level,
        count(*) as carried_event_count
    from set_events
    where event_at < $period_start::timestamptz

),

instants as (

    select event_at as step_at, sum(value) as change, count(*) as event_count
    from set_events
    where event_at >= $period_start::timestamptz and event_at < $accrued_to::timestamptz
    group by event_at

),

steps as (

    select
        instants.step_at,
        instants.change,
        instants.event_count,
        cast(
            carried.carried_level + sum(instants.change) over (
                order by instants.step_at rows between unbounded preceding and current row
            )
            as decimal(38, 12)
        ) as level,
        epoch_us(coalesce(lead(instants.step_at) over (order by instants.step_at),
                          $accrued_to::timestamptz))
            - epoch_us(instants.step_at) as duration_us,
        row_number() over (order by instants.step_at) as step_number

    from instants
    cross join carried

),

weighted as (

    select steps.*, cast(steps.level * steps.duration_us as decimal(38, 12)) as level_x_duration
    from steps

),

summary as (

    select
        carried.carried_level,
        carried.carried_event_count,
        (select count(*) from weighted) as step_count,
        (select min(step_at) from weighted) as first_step_at,
        (select cast(coalesce(sum(level_x_duration), 0) as decimal(38, 12)) from weighted)
            as steps_integral,
        cast(carried.carried_level + (select coalesce(sum(change), 0) from instants)
             as decimal(38, 12)) as closing_level,
        (select count(*) from set_events where event_at >= $period_start::timestamptz)
            as period_event_count,
        (select count(*) from set_events
         where event_at >= $period_start::timestamptz
             and event_at >= $accrued_to::timestamptz) as events_not_accrued,
        -- the set's events that landed after $landed_after (the restated period's publication)
        (select count(*) from set_events
         where landed_at > $landed_after::timestamptz) as landed_after_count

    from carried

)

select
    summary.*,
    weighted.step_number,
    weighted.step_at,
    weighted.change,
    weighted.event_count,
    weighted.level,
    weighted.duration_us,
    weighted.level_x_duration

from summary
left join weighted
    on weighted.step_number <= 10
order by weighted.step_number
