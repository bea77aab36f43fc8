-- Per (customer, meter) of the period: the aggregate of the events no item matches, recomputed
-- (for a level meter, the level of those events, carried in or changed in the period), beside
-- the fct_unbilled_usage rows of that key (a full outer join).
with recomputed as (
    {{ recomputed }}
),
fct as (
    select customer_id, meter_id, count(*) as fct_rows, sum(event_count) as event_count,
           min(quantity) as quantity
    from marts.fct_unbilled_usage
    where billing_period_start = $period
    group by customer_id, meter_id
)
select coalesce(r.customer_id, f.customer_id), coalesce(r.meter_id, f.meter_id),
       r.aggregation, coalesce(r.event_count, 0), r.quantity, r.customer_id is not null,
       r.carried_level, coalesce(f.fct_rows, 0), f.event_count, f.quantity
from recomputed as r
full outer join fct as f on f.customer_id = r.customer_id and f.meter_id = r.meter_id
order by all
