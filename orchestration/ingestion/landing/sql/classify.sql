-- From the uniform stage rows ({{ stage }}) to typed fields and one failure flag per rule, with
-- each row's position in the run's landing order (its file's base in {{ files }} plus its
-- row_number; typed Parquet files are not staged here: stage_parquet.TypedSource).
-- A value string: sign, mantissa (at least one digit: checked on the groups), optional exponent
-- of at most 4 digits. A timestamp string: date, 'T' or ' ', time, optional fraction, then 'Z' or
-- an offset. Epoch milliseconds (digits only) are from $min_ms (10^12, 2001-09-09T01:46:40Z) to
-- $max_ms (253402300799999, 9999-12-31T23:59:59.999Z): below 10^12 they are almost surely epoch
-- seconds, so invalid_timestamp (and ts_low_epoch keeps the number, for the report's note).
create or replace temp table {{ cand }} as
with a as (
    select s.*,
        case when val_t = 'text'
             then regexp_extract(val_text,
                                 '^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,4}))?$',
                                 ['sg', 'ip', 'fp', 'ex']) end
            as vm0,
        case when ts_t = 'text' and regexp_full_match(ts_text, '[0-9]+') then 'epoch'
             else ts_t end as ts_k,
        case when ts_t = 'text'
             then regexp_extract(ts_text,
                                 '^([0-9]{4})-([0-9]{2})-([0-9]{2})'
                                 '[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})'
                                 '(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4})$',
                                 ['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'off']) end as tm0,
        case when dims_t = 'json' and json_valid(dims_json) then json_type(dims_json) end as dj
    from {{ stage }} s
), a2 as (
    -- regexp_extract gives '' for every group when the text does not match; a match has a
    -- digit in the mantissa, and always a year
    select *,
        case when vm0.ip <> '' or vm0.fp <> '' then vm0 end as vm,
        case when tm0.y <> '' then tm0 end as tm
    from a
), b as (
    select *,
        vm.ip || coalesce(vm.fp, '') as v_digits,
        length(vm.ip) + case when coalesce(vm.ex, '') = '' then 0 else vm.ex::integer end
            as v_p0,
        case when ts_k = 'epoch' and regexp_full_match(ts_text, '[0-9]+')
                  and length(ltrim(ts_text, '0')) <= 15
             then coalesce(nullif(ltrim(ts_text, '0'), ''), '0')::bigint end as ms,
        tm.y::integer as ty, tm.mo::integer as tmo, tm.d::integer as td,
        tm.h::integer as th, tm.mi::integer as tmi, tm.s::integer as tsec,
        case when tm.off = 'Z' then 0 else substr(tm.off, 2, 2)::integer end as toffh,
        case when tm.off = 'Z' then 0 else right(tm.off, 2)::integer end as toffm,
        case when starts_with(tm.off, '-') then -1 else 1 end as toffsign,
        case when dj = 'OBJECT' then from_json(dims_json, '"MAP(VARCHAR, JSON)"') end as dm
    from a2
), c as (
    select *,
        rtrim(ltrim(v_digits, '0'), '0') as vd,
        v_p0 - (length(v_digits) - length(ltrim(v_digits, '0'))) as vp,
        ty between 1 and 9999 and tmo between 1 and 12 and th <= 23 and tmi <= 59 and tsec <= 59
            and toffh <= 23 and toffm <= 59
            and td between 1 and case when tmo = 2 then
                    case when (ty % 4 = 0 and ty % 100 <> 0) or ty % 400 = 0 then 29 else 28 end
                when tmo in (4, 6, 9, 11) then 30 else 31 end as t_ok
    from b
), d as (
    select *,
        vm is not null and (vd = '' or (vp <= 26 and length(vd) - vp <= 12)) as v_fits
    from c
), e as (
    select *,
        case when val_t = 'default' then 1::decimal(38, 12)
             when v_fits and vd = '' then 0::decimal(38, 12)
             when v_fits then (
                 case when vm.sg = '-' then '-' else '' end ||
                 case when vp <= 0 then '0.' || repeat('0', -vp) || vd
                      when vp >= length(vd) then vd || repeat('0', vp - length(vd))
                      else substr(vd, 1, vp) || '.' || substr(vd, vp + 1) end
             )::decimal(38, 12)
        end as v_dec,
        case when ts_k = 'instant' then ts_instant
             when ts_k = 'epoch' and ms between $min_ms and $max_ms
                 then timezone('UTC', make_timestamp(ms * 1000))
             when ts_k = 'text' and t_ok then timezone('UTC', make_timestamp(
                 (make_date(ty, tmo, td) - date '1970-01-01')::bigint * 86400000000
                 + (th * 3600 + tmi * 60 + tsec)::bigint * 1000000
                 + rpad(substr(coalesce(tm.f, ''), 1, 6), 6, '0')::bigint
                 - toffsign * (toffh * 60 + toffm)::bigint * 60000000))
        end as ev_at,
        case when dims_t = 'none' or dj = 'NULL' then '{}'
             when dm is not null and coalesce(list_bool_and(list_transform(map_values(dm),
                      lambda x: coalesce(json_type(x) = 'VARCHAR', false))), true)
                 then to_json(map_from_entries(list_sort(list_transform(map_entries(dm),
                      lambda x: {'k': x.key, 'v': json_extract_string(x.value, '$')}))))::varchar
        end as dims
    from d
)
select
    fl.base + e.row_number as pos,
    1 as phase, e.file_idx, e.row_number, null::bigint as q_seq, raw_row,
    case when eid_t = 'string' then eid end as event_id,
    case when cust_t = 'string' then cust end as customer_id,
    case when meter_t = 'string' then meter end as meter_id,
    case when not coalesce(val_needs_check, false) or v_dec = val_check then v_dec end as value,
    ev_at as event_at,
    dims as dimensions,
    malformed as f_malformed,
    not malformed and 'missing' in (eid_t, cust_t, meter_t, ts_t) as f_missing,
    not (eid_t = 'string' and length(eid) <= 256) as f_event_id,
    not coalesce(val_t = 'default' or (v_dec is not null
                 and (not coalesce(val_needs_check, false) or v_dec = val_check)), false)
        as f_value,
    ev_at is null as f_timestamp,
    dims is null as f_dimensions,
    case when ts_k = 'epoch' and ms < $min_ms then ms end as ts_low_epoch
from e
join {{ files }} fl on fl.file_idx = e.file_idx
