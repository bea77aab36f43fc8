-- Upper bounds of the figures the build computes for the level meters (int_level_usage_periods)
-- of the candidate (customer, meter) pairs in _meterline_check_level_groups, per level set (an
-- item's events, '' for those no item matches, NULL for all the meter's events) and period, for
-- every period from the set's first event to the current month (?, a first day): a level carries.
-- The levels are exact: each period's change is summed as integer parts and 10^-12 units of the
-- fractional parts (HUGEINT, no overflow), the carried level is their running sum, and only the
-- result becomes a DOUBLE. The period's own weighted changes are DOUBLE sums, each widened by
-- 10^-6 x the sum of the absolute values it adds up (above any rounding of a DOUBLE sum of fewer
-- than 10^9 terms), so a bound below a limit proves the exact figure is too. A period is bounded
-- by its whole length, also the current one (its usage accrues to the run's instant, never
-- beyond). Durations in microseconds; "v x held" is a change times the time from its instant to
-- the period's end.
--   level_hi         |level| carried into the period and carried out of it (exact, in DOUBLE)
--   level_acc_hi     the period's positive or negative changes, and the sizes of the earlier
--                    periods' changes summed into the carried level: what the 128-bit
--                    accumulators of a DECIMAL sum hold
--   integral_hi      |level x duration| over the period: carried x length + sum of v x held
--   term_hi          its parts: carried x length, sum of v x held, each v x held
--   integral_acc_hi  the period's positive or negative v x held, as accumulated
--   sets_*_hi        (meter rows) the sums over the meter's level sets of their bounds
with events as (
    select e.customer_id, e.meter_id, coalesce(i.product_item_id, '') as level_set, e.event_id,
           e.value, cast(e.value as double) as v,
           cast(date_trunc('month', e.event_at at time zone 'UTC') as date) as period_start,
           epoch_us(date_trunc('month', e.event_at at time zone 'UTC') + interval 1 month)
               - epoch_us(e.event_at) as held_us
    from raw.usage_events as e
    join _meterline_check_level_groups as g
      on e.customer_id = g.customer_id and e.meter_id = g.meter_id
    left join _meterline_check_items as i
      on i.is_level
     and e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
),
sums as (  -- one pass: each set's rows and the meter's own (level_set NULL)
    select customer_id, meter_id, level_set, period_start, count(*) as event_count,
           sum(cast(trunc(value) as hugeint)) as chg_integer,
           sum(cast((value - trunc(value)) * 1000000000000 as bigint)) as chg_units,
           coalesce(sum(v) filter (where v > 0), 0) as chg_pos,
           coalesce(sum(v) filter (where v < 0), 0) as chg_neg,
           sum(v * held_us) as w, sum(abs(v) * held_us) as w_abs,
           coalesce(sum(v * held_us) filter (where v > 0), 0) as w_pos,
           coalesce(sum(v * held_us) filter (where v < 0), 0) as w_neg,
           max(abs(v) * held_us) as term_max,
           first(event_id order by abs(value) desc, event_id) as largest_event,
           max(abs(value)) as largest_value
    from events
    group by grouping sets ((customer_id, meter_id, level_set, period_start),
                            (customer_id, meter_id, period_start))
),
sets as (
    select customer_id, meter_id, level_set, min(period_start) as first_period,
           greatest(max(period_start), ?::date) as last_period
    from sums
    group by customer_id, meter_id, level_set
),
spine as (
    select customer_id, meter_id, level_set,
           cast(unnest(generate_series(cast(first_period as timestamp),
                                       cast(last_period as timestamp), interval 1 month))
                as date) as period_start
    from sets
),
filled as (
    select sp.customer_id, sp.meter_id, sp.level_set, sp.period_start,
           epoch_us(cast(sp.period_start as timestamp) + interval 1 month)
               - epoch_us(cast(sp.period_start as timestamp)) as length_us,
           coalesce(s.event_count, 0) as event_count,
           coalesce(s.chg_integer, 0) as chg_integer, coalesce(s.chg_units, 0) as chg_units,
           coalesce(cast(s.chg_integer as double) + cast(s.chg_units as double) / 1e12, 0)
               as chg,
           coalesce(s.chg_pos, 0) as chg_pos, coalesce(s.chg_neg, 0) as chg_neg,
           coalesce(s.w, 0) as w, coalesce(s.w_abs, 0) as w_abs,
           coalesce(s.w_pos, 0) as w_pos, coalesce(s.w_neg, 0) as w_neg,
           coalesce(s.term_max, 0) as term_max, s.largest_event, s.largest_value
    from spine as sp
    left join sums as s
      on s.customer_id = sp.customer_id and s.meter_id = sp.meter_id
     and s.level_set is not distinct from sp.level_set and s.period_start = sp.period_start
),
carried as (
    select *,
           coalesce(sum(chg_integer) over earlier, 0) as c_integer,
           coalesce(sum(chg_units) over earlier, 0) as c_units,
           coalesce(sum(abs(chg)) over earlier, 0) as c_acc
    from filled
    window earlier as (partition by customer_id, meter_id, level_set order by period_start
                       rows between unbounded preceding and 1 preceding)
),
levels as (
    select *,
           cast(c_integer as double) + cast(c_units as double) / 1e12 as c,
           cast(c_integer + chg_integer as double) + cast(c_units + chg_units as double) / 1e12
               as closing
    from carried
),
bounds as (
    select *,
           greatest(abs(c), abs(closing)) as level_hi,
           greatest(chg_pos, -chg_neg, c_acc) as level_acc_hi,
           abs(c * length_us + w) + 1e-6 * (abs(c) * length_us + w_abs) as integral_hi,
           greatest(abs(c) * length_us, abs(w) + 1e-6 * w_abs, term_max) as term_hi,
           greatest(w_pos, -w_neg) as integral_acc_hi
    from levels
),
set_sums as (
    select customer_id, meter_id, period_start, sum(level_hi) as sets_level_hi,
           sum(integral_hi) as sets_integral_hi
    from bounds
    where level_set is not null
    group by customer_id, meter_id, period_start
)
select b.customer_id, b.meter_id, b.level_set, m.aggregation, b.period_start, b.event_count,
       b.level_hi, b.level_acc_hi, b.integral_hi, b.term_hi, b.integral_acc_hi,
       coalesce(t.sets_level_hi, 0), coalesce(t.sets_integral_hi, 0),
       b.largest_event, b.largest_value
from bounds as b
join _meterline_check_meter_aggs as m on m.meter_id = b.meter_id
left join set_sums as t
  on b.level_set is null and t.customer_id = b.customer_id and t.meter_id = b.meter_id
 and t.period_start = b.period_start
order by b.customer_id, b.meter_id, b.level_set nulls first, b.period_start
