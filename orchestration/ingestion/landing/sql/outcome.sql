-- Reasons in contract order, then duplicates, then a landing_seq for every row written (the
-- candidates in {{ cand }}, the catalog in {{ customers }} and {{ meters }}; $base_seq is the
-- highest landing_seq written before). The outcome table is narrow (a row's order, outcome,
-- reason and landing_seq, with the few fields the run's counts need): the writes join it back
-- to the candidates by the same order expression, so no wide row is copied once more.
create or replace temp table {{ out }} as
with r as (
    select c.phase, c.file_idx, c.row_number, c.q_seq, c.event_id, c.customer_id, c.meter_id,
        c.value, c.event_at, c.dimensions, c.f_malformed, c.f_missing, c.f_event_id, c.f_value,
        c.f_timestamp, c.f_dimensions,
        {{ ord_c }} as ord,
        m.aggregation, k.customer_id as known_customer
    from {{ cand }} c
    left join {{ meters }} m on m.meter_id = c.meter_id
    left join {{ customers }} k on k.customer_id = c.customer_id
), p as (
    select r.*,
        case when f_malformed then 'malformed_row'
             when f_missing then 'missing_field'
             when f_event_id then 'invalid_event_id'
             when f_value then 'invalid_value'
             when value < 0 and aggregation is not null and aggregation <> 'sum'
                 then 'negative_value'
             when f_timestamp then 'invalid_timestamp'
             when f_dimensions then 'invalid_dimensions'
             when known_customer is null then 'unknown_customer'
             when aggregation is null then 'unknown_meter'
        end as pre_reason
    from r
), ids as (
    -- only rows that pass every rule take part: the first landed copy of an id wins. Per id of
    -- the batch: its first row and how many valid rows carry it (narrow: id and order only)
    select event_id, min(ord) as first_ord, count(*) as copies
    from p where pre_reason is null group by event_id
), seen as (
    -- the events landed before with an id of this batch: a semi join on the id alone (the
    -- batch's ids are the build side)
    select u.event_id, u.customer_id, u.meter_id, u.value, u.event_at, u.dimensions
    from raw.usage_events u
    where u.event_id in (select event_id from ids)
), contested as (
    -- ids landed before or carried by several rows of the batch (about 1% of them): only their
    -- rows are compared, field by field; every other valid row is the only copy of its id
    select i.event_id, i.first_ord, s.event_id is not null as has_existing
    from ids i left join (select distinct event_id from seen) s on s.event_id = i.event_id
    where i.copies > 1 or s.event_id is not null
), contested_rows as (
    select p.ord, p.event_id, p.customer_id, p.meter_id, p.value, p.event_at, p.dimensions
    from p join contested c on c.event_id = p.event_id
    where p.pre_reason is null
), ref as (
    -- the copy each contested id is compared with: the one landed before, else this run's first
    select c.event_id, c.first_ord, c.has_existing,
        coalesce(u.customer_id, w.customer_id) as customer_id,
        coalesce(u.meter_id, w.meter_id) as meter_id,
        coalesce(u.value, w.value) as value,
        coalesce(u.event_at, w.event_at) as event_at,
        coalesce(u.dimensions, w.dimensions) as dimensions
    from contested c
    join contested_rows w on w.ord = c.first_ord
    left join seen u on u.event_id = c.event_id
), o as (
    select v.ord,
        case when not x.has_existing and v.ord = x.first_ord then 'landed'
             when v.customer_id = x.customer_id and v.meter_id = x.meter_id
                  and v.value = x.value and v.event_at = x.event_at
                  and v.dimensions = x.dimensions then 'duplicate'
             else 'quarantined' end as outcome
    from contested_rows v join ref x on x.event_id = v.event_id
), f as (
    select p.ord, p.phase, p.file_idx, p.q_seq, p.event_at,
        case when p.pre_reason is not null then 'quarantined'
             else coalesce(o.outcome, 'landed') end as outcome,
        case when p.pre_reason is not null then p.pre_reason
             when o.outcome = 'quarantined' then 'conflicting_duplicate' end as reason
    from p left join o on o.ord = p.ord
), seqs as (
    -- a new landing_seq for each row written now (landed rows, quarantine rows of new files),
    -- dense and after everything landed before
    select ord, $base_seq + row_number() over (order by ord) as landing_seq
    from f where outcome = 'landed' or (phase = 1 and outcome = 'quarantined')
)
select f.ord, f.phase, f.file_idx, f.q_seq, f.event_at, f.outcome, f.reason, seqs.landing_seq
from f left join seqs on seqs.ord = f.ord
