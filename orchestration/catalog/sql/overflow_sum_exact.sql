with events as (
    select e.customer_id, e.meter_id, e.event_id, e.value, e.dimensions,
           cast(date_trunc('month', e.event_at at time zone 'UTC') as date) as period_start
    from raw.usage_events as e
    join _meterline_check_overflow_groups as g
      on e.customer_id = g.customer_id and e.meter_id = g.meter_id
)
select ev.customer_id, ev.meter_id, ev.period_start, i.product_item_id, count(*),
       coalesce(sum(case when ev.value > 0 then trunc(ev.value) end), 0),
       coalesce(sum(case when ev.value > 0
                         then cast((ev.value - trunc(ev.value)) * 1000000000000 as bigint) end), 0),
       coalesce(sum(case when ev.value < 0 then trunc(ev.value) end), 0),
       coalesce(sum(case when ev.value < 0
                         then cast((ev.value - trunc(ev.value)) * 1000000000000 as bigint) end), 0),
       arg_max(ev.event_id, abs(ev.value)), max(abs(ev.value))
from events as ev
left join _meterline_check_items as i
  on ev.meter_id = i.meter_id
 and (i.filter_key is null
      or json_extract_string(ev.dimensions,
             '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
group by all
order by all
