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
)
select u.customer_id, c.currency, u.product_item_id, u.event_count, u.first_event_id
from item_usage as u
join _meterline_check_customers as c using (customer_id)
where not exists (
        select 1 from _meterline_check_rates as r
        where r.product_item_id = u.product_item_id
          and r.currency = c.currency
          and (r.customer_id is null or r.customer_id = u.customer_id))
order by u.customer_id, u.product_item_id
