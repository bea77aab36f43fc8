-- Per (customer, meter) of the period: the aggregate recomputed from the raw events (and, for a
-- level meter, from its level: a row even without an event of the period when a level is
-- carried in) beside the fct_meter_usage rows of that key (a full outer join: either side may be
-- missing).
with recomputed as (
    {{ recomputed }}
),
fct as (
    select customer_id, meter_id, count(*) as fct_rows,
           sum(event_count) as event_count, min(quantity) as quantity,
           count(distinct quantity) as quantities,
           bool_and(billing_period_end = $end_date) as end_ok
    from marts.fct_meter_usage
    where billing_period_start = $period
    group by customer_id, meter_id
)
select coalesce(r.customer_id, f.customer_id) as customer_id,
       coalesce(r.meter_id, f.meter_id) as meter_id, r.aggregation,
       coalesce(r.event_count, 0), r.quantity, r.customer_id is not null, r.carried_level,
       coalesce(f.fct_rows, 0), f.event_count, f.quantity, f.quantities, f.end_ok
from recomputed as r
full outer join fct as f
  on f.customer_id = r.customer_id and f.meter_id = r.meter_id
order by all
