-- Level meters (CONTRACT.md section 3), per level set of the source rows (customer_id, set_id,
-- value, event_at: a set's events of the period) and of the carried rows (customer_id, set_id,
-- change_sum: its month sums before the period), recomputed step by step rather than
-- in closed form: the level holds from the period's first instant and from each distinct instant
-- of the set's events before the bound E (the period's end, or the run's instant in a month not
-- yet over) on, at the carried level plus a running sum of the changes over the instants (a
-- window); each step lasts until the next instant, the last until E; the integral is the sum of
-- level x duration. Values become exact integers of 10^-12 units (HUGEINT), durations are
-- microseconds, so the integral is an exact HUGEINT that Python divides; an overflow raises,
-- never rounds or wraps.
with source_rows as (
    select customer_id, set_id, value, event_at,
           cast(trunc(value) as hugeint) * 1000000000000
               + cast((value - trunc(value)) * 1000000000000 as hugeint) as units
    from ({{ source }}) as level_rows
),
carried_sums as (
    select customer_id, set_id, cast(sum(change_sum) as decimal(38, 12)) as carried_level
    from ({{ carried }}) as carried_rows
    group by customer_id, set_id
),
period_sums as (
    select customer_id, set_id,
           sum(value) filter (where event_at < $bound::timestamptz) as change_before_bound,
           count(*) as event_count
    from source_rows
    group by customer_id, set_id
),
level_sets as (
    select coalesce(c.customer_id, p.customer_id) as customer_id,
           coalesce(c.set_id, p.set_id) as set_id,
           coalesce(c.carried_level, 0) as carried_level,
           cast(trunc(coalesce(c.carried_level, 0)) as hugeint) * 1000000000000
               + cast((coalesce(c.carried_level, 0) - trunc(coalesce(c.carried_level, 0)))
                      * 1000000000000 as hugeint) as carried_units,
           cast(coalesce(c.carried_level, 0) + coalesce(p.change_before_bound, 0)
                as decimal(38, 12)) as closing_level,
           coalesce(p.event_count, 0) as event_count
    from carried_sums as c
    full outer join period_sums as p on p.customer_id = c.customer_id and p.set_id = c.set_id
),
-- the period's first instant, and each distinct instant of the period's events before E, with
-- the sum of the changes at that instant (events at one instant act together)
instants as (
    select customer_id, set_id, instant, sum(units) as change_units
    from (
        select customer_id, set_id, $start::timestamptz as instant, cast(0 as hugeint) as units
        from level_sets
        union all
        select customer_id, set_id, event_at, units
        from source_rows
        where event_at >= $start::timestamptz and event_at < $bound::timestamptz
    ) as changes
    group by customer_id, set_id, instant
),
steps as (
    select i.customer_id, i.set_id,
           s.carried_units + sum(i.change_units) over (
               partition by i.customer_id, i.set_id order by i.instant
               rows between unbounded preceding and current row) as level_units,
           epoch_us(coalesce(lead(i.instant) over (
               partition by i.customer_id, i.set_id order by i.instant), $bound::timestamptz))
               - epoch_us(i.instant) as duration_us
    from instants as i
    join level_sets as s on s.customer_id = i.customer_id and s.set_id = i.set_id
),
integrals as (
    select customer_id, set_id, count(*) as step_count,
           sum(level_units * duration_us) as integral_units
    from steps
    group by customer_id, set_id
)
select s.customer_id, s.set_id, s.carried_level, s.closing_level, s.event_count,
       coalesce(g.integral_units, 0) as integral_units, coalesce(g.step_count, 0) as step_count
from level_sets as s
left join integrals as g on g.customer_id = s.customer_id and g.set_id = s.set_id
order by s.customer_id, s.set_id
