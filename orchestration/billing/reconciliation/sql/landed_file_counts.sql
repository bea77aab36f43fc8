-- Per landed file (and per file_sha256 found in raw without a raw.landed_files row): its stored
-- counts beside the rows counted in raw.usage_events, raw.duplicate_events and
-- raw.quarantined_events.
with landed as (
    select file_sha256, count(*) as n from raw.usage_events
    where not is_relanded group by file_sha256
),
duplicates as (
    select file_sha256, count(*) as n from raw.duplicate_events
    where not is_relanded group by file_sha256
),
quarantined as (
    select file_sha256, count(*) as n,
           count(*) filter (where resolved_at is not null) as resolved
    from raw.quarantined_events group by file_sha256
),
relanded as (
    select file_sha256, count(*) as n from (
        select file_sha256 from raw.usage_events where is_relanded
        union all
        select file_sha256 from raw.duplicate_events where is_relanded
    ) group by file_sha256
),
files as (
    select file_sha256 from raw.landed_files
    union select file_sha256 from landed
    union select file_sha256 from duplicates
    union select file_sha256 from quarantined
    union select file_sha256 from relanded
)
select files.file_sha256, f.source_file, f.file_sha256 is not null as is_recorded,
       f.rows_read, f.rows_landed, f.rows_duplicate, f.rows_quarantined,
       coalesce(landed.n, 0), coalesce(duplicates.n, 0), coalesce(quarantined.n, 0),
       coalesce(quarantined.resolved, 0), coalesce(relanded.n, 0)
from files
left join raw.landed_files as f on f.file_sha256 is not distinct from files.file_sha256
left join landed on landed.file_sha256 is not distinct from files.file_sha256
left join duplicates on duplicates.file_sha256 is not distinct from files.file_sha256
left join quarantined on quarantined.file_sha256 is not distinct from files.file_sha256
left join relanded on relanded.file_sha256 is not distinct from files.file_sha256
order by f.landed_at nulls last, f.source_file, files.file_sha256
