with {{ restated }}
package_items as (
    select distinct i.* from _meterline_check_items as i
    join _meterline_check_price_rates as r
      on r.product_item_id = i.product_item_id and r.pricing_model = 'package'
),
matched as (
    select e.customer_id, i.product_item_id, e.event_id, e.event_at, e.value, m.aggregation,
           cast(date_trunc('month', e.event_at at time zone 'UTC') as date) as usage_period_start,
           case when m.unique_dimension is not null
                then json_extract_string(e.dimensions, '$."' || replace(replace(
                         m.unique_dimension, '\', '\\'), '"', '\"') || '"') end as unique_value
    from raw.usage_events as e
    join package_items as i
      on e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
    join _meterline_check_meter_aggs as m on m.meter_id = e.meter_id
    where (e.event_at >= ?::timestamptz and e.event_at < ?::timestamptz)
          {{ or_restated }}
),
ranked as (
    select *, row_number() over (partition by customer_id, product_item_id, usage_period_start
                                 order by event_at desc, event_id desc) as latest_rank
    from matched
),
aggregated as (
    select customer_id, product_item_id, usage_period_start, any_value(aggregation) as aggregation,
           count(*) as event_count,
           sum(case when aggregation = 'sum' then trunc(value) end) as int_sum,
           sum(case when aggregation = 'sum'
                    then cast((value - trunc(value)) * 1000000000000 as bigint) end) as frac_sum,
           count(distinct unique_value) as distinct_count,
           max(value) as max_value,
           max(case when latest_rank = 1 then value end) as latest_value
    from ranked
    group by customer_id, product_item_id, usage_period_start
),
quantities as (
    select *,
           cast(case aggregation
               when 'sum' then try(cast(int_sum as decimal(38, 12))
                                   + cast(frac_sum as decimal(38, 0))
                                     * cast(0.000000000001 as decimal(38, 12)))
               when 'count' then event_count
               when 'unique_count' then distinct_count
               when 'max' then max_value
               when 'latest' then latest_value
           end as decimal(38, 12)) as quantity
    from aggregated
),
rated as (
    select q.*, r.rate_id, r.rate_row, r.pricing_model, r.package_size,
           r.free_units
    from quantities as q
    join _meterline_check_customers as c on c.customer_id = q.customer_id
    join _meterline_check_price_rates as r
      on r.product_item_id = q.product_item_id and r.currency = c.currency
     and (r.customer_id is null or r.customer_id = q.customer_id)
     and r.effective_from <= q.usage_period_start
     and (r.effective_to is null or q.usage_period_start < r.effective_to)
    qualify row_number() over (
        partition by q.customer_id, q.product_item_id, q.usage_period_start
        order by case when r.customer_id is not null then 0 else 1 end, r.rate_id) = 1
),
counted as (
    select *,
           case when chargeable_quantity / package_size < 1000000000000000
                then try(cast(ceil(chargeable_quantity / package_size) as decimal(38, 0)))
           end as estimate
    from (
        select *,
               case when billable_quantity > free_units then billable_quantity - free_units
                    else cast(0 as decimal(38, 12)) end as chargeable_quantity
        from (select *, case when quantity > 0 then quantity else 0 end as billable_quantity
              from rated
              where pricing_model = 'package' and package_size > 0 and quantity is not null)
    )
)
select customer_id, product_item_id, usage_period_start, rate_id, rate_row, quantity,
       package_size, chargeable_quantity
from counted
where estimate is not null
  and (try((estimate - 1) * (package_size)) is null
       or ((estimate - 1) * (package_size) < chargeable_quantity
           and try(estimate * (package_size)) is null))
order by customer_id, product_item_id, usage_period_start
