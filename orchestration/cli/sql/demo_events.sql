-- One row per event: the stream (file), the fields, and a key k that seeds its randomness.
create temp table events as
with
api as (
    select 'jsonl' as stream, customer_id, month, off, 'api_calls' as meter,
           'api/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp
             + to_milliseconds((1000 * case when rnd(k || 'h') < 0.8
                                            then 8 * 3600 + rnd(k || 's') * 11 * 3600
                                            else rnd(k || 's') * 86400 end)::bigint)
             - to_minutes(off) as ts,
           to_json((50 + floor(pow(rnd(k || 'v'), 2) * 4000))::bigint) as value_json,
           null::json as dims
    from (select *, unnest(range(greatest(1, round(30 * size * mf * wf
                                 * (0.85 + 0.3 * rnd('napi/' || customer_id || day))))::bigint))
                    as i
          from cust_days)
),
compute as (
    select 'jsonl', customer_id, month, off, 'compute_hours',
           'cmp/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp + to_milliseconds((rnd(k || 's') * 86400000)::bigint),
           to_json(dec3(0.25 + pow(rnd(k || 'v'), 1.5) * 30 * size)),
           json_object('instance_type',
                       ['c6.large', 'm6.xlarge', 'g5.2xlarge'][1 + floor(rnd(k || 't') * 3)::int])
    from (select *, unnest(range((2 + floor(rnd('ncmp/' || customer_id || day) * 5))::bigint))
                    as i
          from cust_days)
),
transfer as (
    select 'jsonl', customer_id, month, off, 'data_transfer_gb',
           'xfer/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp + to_milliseconds((rnd(k || 's') * 86400000)::bigint),
           -- sent as a JSON string holding the number, as Stripe's meter events do
           to_json(dec2(0.5 + pow(rnd(k || 'v'), 2) * 120 * size)::varchar),
           json_object('region', case currency when 'EUR' then 'eu' when 'JPY' then 'ap'
                                               else 'us' end)
    from (select *, unnest(range((1 + floor(rnd('nxfer/' || customer_id || day) * 4))::bigint))
                    as i
          from cust_days)
),
users as (
    select 'jsonl', customer_id, month, off, 'active_users',
           'mau/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp
             + to_milliseconds((1000 * (7 * 3600 + rnd(k || 's') * 13 * 3600))::bigint)
             - to_minutes(off),
           null::json,
           case when rnd(k || 'anon') < 0.02 then json_object('client', 'anonymous')
                else json_object(
                    'user_id', 'u' || lpad(floor(rnd(k || 'u') * round(pool * mf))::bigint::varchar,
                                           4, '0'),
                    'client', ['web', 'ios', 'android'][1 + floor(rnd(k || 'c') * 3)::int])
           end
    from (select *, unnest(range(round(pool * mf * wf
                                 * (0.25 + 0.35 * rnd('nmau/' || customer_id || day)))::bigint))
                    as i
          from cust_days)
),
audit as (
    select 'jsonl', customer_id, month, off, 'audit_events',
           'aud/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp + to_milliseconds((rnd(k || 's') * 86400000)::bigint),
           null::json,
           json_object('action', ['login.policy.changed', 'key.rotated', 'member.invited',
                                  'export.created'][1 + floor(rnd(k || 'a') * 4)::int])
    from (select *, unnest(range(round(8 * size * wf
                                 * (0.5 + rnd('naud/' || customer_id || day)))::bigint)) as i
          from cust_days)
),
logins as (
    select 'csv', customer_id, month, off, 'logins',
           'login/' || customer_id || '/' || day || '/' || i as k,
           day::timestamp
             + to_milliseconds((1000 * (7 * 3600 + rnd(k || 's') * 12 * 3600))::bigint)
             - to_minutes(off),
           null::json,
           json_object('user_id',
                       'u' || lpad(floor(rnd(k || 'u') * round(pool * mf))::bigint::varchar,
                                   4, '0'),
                       'method', case when rnd(k || 'm') < 0.7 then 'saml' else 'oidc' end)
    from (select *, unnest(range(round(pool * mf * wf
                                 * (0.2 + 0.3 * rnd('nlogin/' || customer_id || day)))::bigint))
                    as i
          from cust_days)
),
storage as (
    select 'parquet', customer_id, month, off, 'storage_gb',
           'sto/' || customer_id || '/' || region || '/' || day || '/' || i as k,
           day::timestamp + to_hours(6 * i) + to_seconds((rnd(k || 's') * 600)::bigint),
           to_json(dec3((500 + 8000 * size * rnd('base/' || customer_id || region))
                        * (1 + 0.002 * day_index) * (0.97 + 0.06 * rnd(k || 'v')))),
           json_object('region', region)
    from (select *, unnest(range(4)) as i from cust_days)
    join regions using (customer_id)
),
seats as (
    select 'parquet', customer_id, month, off, 'seats',
           'seat/' || customer_id || '/' || day as k,
           day::timestamp + to_minutes(5) - to_minutes(off),
           to_json((5 + round(40 * size)
                    + floor(day_index / 30.0 * rnd('grow/' || customer_id) * 2))::bigint),
           null::json
    from cust_days
),
-- A level meter (time_weighted_sum, GB-months): each event is a signed change of the backup
-- volume held. A customer's first day in the generated months brings its initial volume; then
-- one change a day: mostly growth, a clean-up now and then.
backups as (
    select 'jsonl', customer_id, month, off, 'backup_gb',
           'bak/' || customer_id || '/' || day as k,
           day::timestamp + to_hours(2) + to_seconds((rnd(k || 's') * 3600)::bigint),
           to_json(case when first_day then dec3(800 + 5000 * size * rnd('bak0/' || customer_id))
                        when rnd(k || 'c') < 0.06 then -dec3(120 * size * (0.5 + rnd(k || 'v')))
                        else dec3(18 * size * rnd(k || 'v')) end),
           null::json
    from (select *, day = min(day) over (partition by customer_id) as first_day
          from cust_days)
),
-- A running_total meter: API keys created (+1) and revoked (-1); the first day brings the keys
-- the customer already holds. The level at each month's end is billed.
api_keys as (
    select 'jsonl', customer_id, month, off, 'api_keys',
           'key/' || customer_id || '/' || day as k,
           day::timestamp + to_hours(9) + to_seconds((rnd(k || 's') * 28800)::bigint),
           to_json(case when first_day then round(3 + 20 * size)::bigint
                        when rnd(k || 'c') < 0.35 then -1 else 1 end),
           null::json
    from (select *, day = min(day) over (partition by customer_id) as first_day
          from cust_days)
    where first_day or rnd('keyday/' || customer_id || '/' || day) < 0.25
),
all_events as (
    select * from api union all select * from compute union all select * from transfer
    union all select * from users union all select * from audit union all select * from logins
    union all select * from storage union all select * from seats
    union all select * from backups union all select * from api_keys
)
select stream, e.customer_id, month, e.off, meter, k,
       'evt_' || substr(md5(getvariable('seed') || '/' || k), 1, 24) as event_id,
       ts, value_json, dims
from all_events as e
join customers as c on c.customer_id = e.customer_id
where meter in (select meter_id from catalog_meters)
  -- inside the active range in UTC too (a local evening can be the next UTC day)
  and (c.active_from is null or ts >= c.active_from::timestamp)
  and (c.active_to is null or ts < c.active_to::timestamp)
  and ts >= (select min(month) from months)::timestamp
  and ts < (select max(month_end) from months)::timestamp
  and (getvariable('until') is null or ts < getvariable('until'));
