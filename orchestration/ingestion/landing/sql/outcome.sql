-- Reasons in contract order, then duplicates, then a landing_seq for every row written (the
-- candidates in {{ cand }}, the catalog in {{ customers }} and {{ meters }}; $base_seq is the
-- highest landing_seq written before).
create or replace temp table {{ out }} as
with r as (
    select c.*,
        case when phase = 0 then q_seq::hugeint
             else ((file_idx + 1)::hugeint << 64) + row_number end as ord,
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
), valid as (
    -- only rows that pass every rule take part: the first landed copy of an id wins
    select ord, event_id, customer_id, meter_id, value, event_at, dimensions
    from p where pre_reason is null
), firsts as (
    select event_id, min(ord) as first_ord from valid group by event_id
), ref as (
    -- the copy each id is compared with: the one landed before, else this run's first
    select f.event_id, f.first_ord, u.event_id is not null as has_existing,
        coalesce(u.customer_id, w.customer_id) as customer_id,
        coalesce(u.meter_id, w.meter_id) as meter_id,
        coalesce(u.value, w.value) as value,
        coalesce(u.event_at, w.event_at) as event_at,
        coalesce(u.dimensions, w.dimensions) as dimensions
    from firsts f
    join valid w on w.ord = f.first_ord
    left join raw.usage_events u on u.event_id = f.event_id
), o as (
    select v.ord,
        case when not x.has_existing and v.ord = x.first_ord then 'landed'
             when v.customer_id = x.customer_id and v.meter_id = x.meter_id
                  and v.value = x.value and v.event_at = x.event_at
                  and v.dimensions = x.dimensions then 'duplicate'
             else 'quarantined' end as outcome
    from valid v join ref x on x.event_id = v.event_id
), f as (
    select p.*,
        coalesce(o.outcome, 'quarantined') as outcome,
        case when o.outcome is null then p.pre_reason
             when o.outcome = 'quarantined' then 'conflicting_duplicate' end as reason
    from p left join o on o.ord = p.ord
), seqs as (
    -- a new landing_seq for each row written now (landed rows, quarantine rows of new files),
    -- dense and after everything landed before
    select ord, $base_seq + row_number() over (order by ord) as landing_seq
    from f where outcome = 'landed' or (phase = 1 and outcome = 'quarantined')
)
select f.*, seqs.landing_seq
from f left join seqs on seqs.ord = f.ord
