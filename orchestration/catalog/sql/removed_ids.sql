with pairs as materialized (  -- one pass over the landed events
    select customer_id, meter_id, count(*) as n, min(event_id) as first_event_id,
           min(event_at) as first_at, max(event_at) as last_at
    from raw.usage_events
    group by customer_id, meter_id
),
removed as (
    select 'customers.csv' as file, 'customer_id' as field, customer_id as id, pairs.*
    from pairs
    where not exists (select 1 from _meterline_check_customers as c
                      where c.customer_id = pairs.customer_id)
    union all
    select 'meters.csv', 'meter_id', meter_id, pairs.*
    from pairs
    where not exists (select 1 from _meterline_check_meters as m
                      where m.meter_id = pairs.meter_id)
)
select file, field, id, sum(n), min(first_event_id), strftime(min(first_at), '%Y-%m'),
       strftime(max(last_at), '%Y-%m')
from removed
group by file, field, id
order by file, id
