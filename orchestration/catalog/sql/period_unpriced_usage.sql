-- The (customer, item) pairs live in the period [?, ?) (CONTRACT.md section 4) with no rate in
-- effect in the customer's currency. An item is live when one of the period's events matches it
-- or, for a level meter (_meterline_check_items.is_level), when the level it carries into the
-- period is not 0: the sum of the values of the customer's events it matches before the period's
-- start (one aggregate over the level meters' events before the period, summed as integer parts
-- and 10^-12 units of the fractional parts, so no level can overflow here; the overflow check
-- names those).
with events as (
    select customer_id, meter_id, dimensions, event_id
    from raw.usage_events
    where event_at >= ?::timestamptz and event_at < ?::timestamptz
),
item_usage as (
    select e.customer_id, i.product_item_id,
           count(*) as event_count, min(e.event_id) as first_event_id
    from events as e
    join _meterline_check_items as i
      on e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
    group by all
),
carried as (
    select e.customer_id, i.product_item_id,
           count(*) as earlier_count, min(e.event_id) as first_earlier_event_id,
           sum(cast(trunc(e.value) as hugeint)) as integer_part,
           sum(cast((e.value - trunc(e.value)) * 1000000000000 as bigint)) as fraction_units
    from raw.usage_events as e
    join _meterline_check_items as i
      on i.is_level
     and e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
    where e.event_at < ?::timestamptz
    group by all
),
carried_in as (  -- a level that overflows HUGEINT in 10^-12 units (try gives NULL) is not 0
    select * from carried
    where try(integer_part * 1000000000000 + fraction_units) is distinct from 0
),
live as (
    select customer_id, product_item_id, coalesce(u.event_count, 0) as event_count,
           u.first_event_id, c.integer_part, c.fraction_units, c.earlier_count,
           c.first_earlier_event_id
    from item_usage as u
    full join carried_in as c using (customer_id, product_item_id)
)
select l.customer_id, c.currency, l.product_item_id, l.event_count, l.first_event_id,
       l.integer_part, l.fraction_units, l.earlier_count, l.first_earlier_event_id
from live as l
join _meterline_check_customers as c using (customer_id)
where not exists (
        select 1 from _meterline_check_rates as r
        where r.product_item_id = l.product_item_id
          and r.currency = c.currency
          and (r.customer_id is null or r.customer_id = l.customer_id))
order by l.customer_id, l.product_item_id
