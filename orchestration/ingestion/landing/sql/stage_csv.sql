-- The records of one CSV file ({{ records }}, row 0 the header) as stage rows of file
-- $file_idx. $width is the header's field count; $event_id ... $dimensions the 1-based position
-- of each known column in the header, NULL when the header does not name it (its cell is then
-- NULL, as a missing field). A record with another field count, or broken quoting, is malformed.
insert into {{ stage }}
with r as (
    select *, not coalesce(well_formed and len(fields) = $width, false) as bad
    from {{ records }} where row_number > 0
)
select $file_idx, row_number, rec, bad,
       case when not bad then
           case when coalesce(fields[$event_id], '') = '' then 'missing' else 'string' end end,
       case when not bad then fields[$event_id] end,
       case when not bad then
           case when coalesce(fields[$customer_id], '') = '' then 'missing' else 'string' end end,
       case when not bad then fields[$customer_id] end,
       case when not bad then
           case when coalesce(fields[$meter], '') = '' then 'missing' else 'string' end end,
       case when not bad then fields[$meter] end,
       case when not bad then
           case when coalesce(fields[$value], '') = '' then 'default' else 'text' end end,
       case when not bad then fields[$value] end,
       null, false,
       case when not bad then
           case when coalesce(fields[$timestamp], '') = '' then 'missing' else 'text' end end,
       case when not bad then fields[$timestamp] end,
       null,
       case when not bad then
           case when coalesce(fields[$dimensions], '') = '' then 'none' else 'json' end end,
       case when not bad then fields[$dimensions] end
from r
