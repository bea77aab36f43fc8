-- The lines of one JSON Lines file ({{ lines }}) as stage rows of file $file_idx.
-- The six fields are read as JSON (the shape names them: event_id, customer_id, meter, value,
-- timestamp, dimensions). A required string field's kind: 'missing' when absent, JSON null or
-- '', 'string' for a JSON string, else 'other'.
insert into {{ stage }}
with l0 as (
    select ln, line,
           coalesce(case when json_valid(line) then json_type(line) = 'OBJECT' end,
                    false)
           -- DuckDB's parser takes trailing commas, JSON does not: a comma before a
           -- closing bracket outside strings (checked only on lines that have one); the second
           -- pattern is a JSON string literal, escapes included
           and not coalesce(regexp_matches(line, ',\s*[}\]]')
                            and regexp_matches(regexp_replace(line, '"(?:[^"\\]|\\.)*"',
                                                              '""', 'g'),
                                               ',\s*[}\]]'), false) as obj
    from {{ lines }}
    where not regexp_full_match(line, '[ \t]*')
), l1 as (
    select *,
           case when obj then from_json(line, '{"event_id":"JSON","customer_id":"JSON",'
                                              '"meter":"JSON","value":"JSON",'
                                              '"timestamp":"JSON","dimensions":"JSON"}')
           end as j0,
           case when obj then list_filter(json_keys(line), lambda k: k in (
                    'event_id', 'customer_id', 'meter', 'value', 'timestamp', 'dimensions'))
           end as known
    from l0
), p as (
    -- one of the fields named twice at the top level: ambiguous, so malformed
    select ln, line, is_obj, case when is_obj then j0 end as j
    from (select *, coalesce(len(known) = list_unique(known), false) as is_obj from l1)
), q as (
    select *,
           json_type(j.value) as vt, json_type(j.timestamp) as tt,
           -- the raw token of a JSON number under the key "value" (cross-checked against
           -- DuckDB's parse)
           case when json_type(j.value) in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE')
                then list_distinct(regexp_extract_all(
                    line, '"value"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)', 1))
           end as vtok
    from p
)
select $file_idx, ln, line, not is_obj,
       case when j.event_id is null or json_type(j.event_id) = 'NULL' then 'missing'
            when json_type(j.event_id) = 'VARCHAR' then
                case when json_extract_string(j.event_id, '$') = '' then 'missing'
                     else 'string' end
            else 'other' end,
       case when json_type(j.event_id) = 'VARCHAR' then json_extract_string(j.event_id, '$') end,
       case when j.customer_id is null or json_type(j.customer_id) = 'NULL' then 'missing'
            when json_type(j.customer_id) = 'VARCHAR' then
                case when json_extract_string(j.customer_id, '$') = '' then 'missing'
                     else 'string' end
            else 'other' end,
       case when json_type(j.customer_id) = 'VARCHAR'
            then json_extract_string(j.customer_id, '$') end,
       case when j.meter is null or json_type(j.meter) = 'NULL' then 'missing'
            when json_type(j.meter) = 'VARCHAR' then
                case when json_extract_string(j.meter, '$') = '' then 'missing'
                     else 'string' end
            else 'other' end,
       case when json_type(j.meter) = 'VARCHAR' then json_extract_string(j.meter, '$') end,
       case when vt is null or vt = 'NULL' then 'default'
            when vt = 'VARCHAR' then
                case when json_extract_string(j.value, '$') = '' then 'default'
                     else 'text' end
            when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE') then
                case when len(vtok) = 1 then 'text' else 'invalid' end
            else 'invalid' end,
       case when vt = 'VARCHAR' then json_extract_string(j.value, '$')
            when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE') and len(vtok) = 1
                then vtok[1] end,
       case when vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE')
            then from_json(line, '{"value":"DECIMAL(38,12)"}').value end,
       coalesce(vt in ('UBIGINT', 'BIGINT', 'HUGEINT', 'DOUBLE'), false),
       case when tt is null or tt = 'NULL' then 'missing'
            when tt = 'VARCHAR' then
                case when json_extract_string(j.timestamp, '$') = '' then 'missing'
                     else 'text' end
            when tt in ('UBIGINT', 'BIGINT') then 'epoch'
            else 'invalid' end,
       case when tt = 'VARCHAR' then json_extract_string(j.timestamp, '$')
            when tt in ('UBIGINT', 'BIGINT') then j.timestamp::varchar end,
       null,
       case when j.dimensions is null then 'none' else 'json' end,
       j.dimensions::varchar
from q
