-- Duplicates, step 2: every row of the batch that does not simply land ({{ wide }}: the rows of
-- {{ need }} with every field). A contested row is compared with the copy landed before ({{ seen }})
-- if there is one, else with the batch's first copy: identical is a duplicate, anything else a
-- conflicting_duplicate; that first copy lands. Rows breaking a rule are quarantined with the
-- first reason. Every row of the batch not in this table lands.
create or replace temp table {{ exc }} as
with ref as (
    select c.event_id, c.first_pos, c.has_existing,
        coalesce(u.customer_id, w.customer_id) as customer_id,
        coalesce(u.meter_id, w.meter_id) as meter_id,
        coalesce(u.value, w.value) as value,
        coalesce(u.event_at, w.event_at) as event_at,
        coalesce(u.dimensions, w.dimensions) as dimensions
    from {{ contested }} c
    join {{ wide }} w on w.pos = c.first_pos
    left join {{ seen }} u on u.event_id = c.event_id
), o as (
    select v.pos, v.phase, v.file_idx,
        case when not x.has_existing and v.pos = x.first_pos then 'landed'
             when v.customer_id = x.customer_id and v.meter_id = x.meter_id
                  and v.value = x.value and v.event_at = x.event_at
                  and v.dimensions = x.dimensions then 'duplicate'
             else 'quarantined' end as outcome
    from {{ wide }} v join ref x on x.event_id = v.event_id
    where v.reason is null
)
select pos, phase, file_idx, outcome,
    case when outcome = 'quarantined' then 'conflicting_duplicate' end as reason
from o where outcome <> 'landed'
union all
select pos, phase, file_idx, 'quarantined', reason
from {{ need }} where reason is not null
