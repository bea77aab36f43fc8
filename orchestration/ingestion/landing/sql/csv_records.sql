-- The records of one CSV file (RFC 4180, "," and '"'), from its lines in {{ lines }}.
-- A line ends a record when the quotes seen so far are balanced (RFC 4180 quotes come in pairs),
-- so quoted fields may span lines: `quoted_records` groups them. When every line has balanced
-- quotes each line is one record (`line_records`, no windows). {{ records_of }} names the one
-- that is read; DuckDB plans only that one.
-- A field is '"(?:[^"]|"")*"|[^",\n]*'; a well-formed record is fields separated by ",".
create or replace temp table {{ records }} as
with q as (
    select ln, line,
           sum(strlen(line) - strlen(replace(line, '"', ''))) over (order by ln) % 2 = 0
               as closes
    from {{ lines }}
), r as (
    select *, coalesce(sum(closes::int) over (order by ln rows between unbounded
                                                preceding and 1 preceding), 0) as rec_id
    from q
), quoted_records as (
    select rec_id, string_agg(line, chr(10) order by ln) as rec,
           bool_or(closes) as complete
    from r group by rec_id
), line_records as (
    select ln as rec_id, line as rec, true as complete from {{ lines }}
), nb as (
    select *, row_number() over (order by rec_id) as n
    from {{ records_of }} where not regexp_full_match(rec, '[ \t]*')
), wf as (
    select *, complete and (not contains(rec, '"')
                            or regexp_full_match(rec, '(?:"(?:[^"]|"")*"|[^",\n]*)'
                                                      '(?:,(?:"(?:[^"]|"")*"|[^",\n]*))*'))
               as well_formed
    from nb
)
select n - 1 as row_number, rec, complete, well_formed,
       case when not contains(rec, '"') then string_split(rec, ',')
            when well_formed then
           list_transform(
               regexp_extract_all(',' || rec, ',("(?:[^"]|"")*"|[^",\n]*)', 1),
               lambda f: case when starts_with(f, '"')
                              then replace(f[2:-2], '""', '"') else f end)
       end as fields
from wf
