-- Duplicates, step 1: which ids need a closer look ({{ keys }}: every row of the batch, narrow).
-- Only valid rows take part (the first landed copy of an id wins). The landed events sharing an
-- id with a valid row of the batch: one semi join on the id alone.
create or replace temp table {{ seen }} as
select u.event_id, u.customer_id, u.meter_id, u.value, u.event_at, u.dimensions
from raw.usage_events u
where u.event_id in (select event_id from {{ keys }} where reason is null);

-- the ids landed before or carried by several valid rows of the batch (about 1% of them), with
-- the position of the batch's first copy: only their rows are compared, field by field; every
-- other valid row is the only copy of its id and lands
create or replace temp table {{ contested }} as
with ids as (
    select event_id, min(pos) as first_pos, count(*) as copies
    from {{ keys }} where reason is null group by event_id
)
select i.event_id, i.first_pos, s.event_id is not null as has_existing
from ids i left join {{ seen }} s on s.event_id = i.event_id
where i.copies > 1 or s.event_id is not null;

-- the rows read whole: every row that breaks a rule, and the valid rows of a contested id
create or replace temp table {{ need }} as
select k.pos, k.phase, k.file_idx, k.reason
from {{ keys }} k
where k.reason is not null
   or k.event_id in (select event_id from {{ contested }});
