-- Temp macros and tables the demo's event streams draw from (orchestration/cli/demo_events.py).
create or replace temp macro rnd(k) as ((md5_number(getvariable('seed') || '/' || k) % 1000000)::double / 1000000.0);

create or replace temp macro dec3(x) as (floor((x) * 1000)::bigint * 0.001::decimal(4, 3));

create or replace temp macro dec2(x) as (floor((x) * 100)::bigint * 0.01::decimal(3, 2));

create or replace temp macro iso_at(ts, off) as (
        strftime(ts + to_minutes(off), '%Y-%m-%dT%H:%M:%S.%g')
        || case when off = 0 then 'Z'
                else (case when off < 0 then '-' else '+' end)
                     || lpad((abs(off) // 60)::varchar, 2, '0') || ':'
                     || lpad((abs(off) % 60)::varchar, 2, '0') end);

create temp table customers as
    select customer_id, currency, active_from, active_to,
           0.35 + 2.4 * rnd('size/' || customer_id) as size,
           list_extract(offsets, 1 + floor(rnd('tz/' || customer_id) * len(offsets))::int) as off
    from (select *, case currency when 'EUR' then [60, 120] when 'JPY' then [540]
                                  else [0, -300, -420] end as offsets
          from catalog_customers);

create temp table days as
    select month, day::date as day,
           date_diff('day', date '2026-01-01', day::date) as day_index,
           case when isodow(day) in (6, 7) then 0.35 else 1.0 end as wf
    from (select month, unnest(generate_series(month::timestamp,
                                               (month_end - interval 1 day)::timestamp,
                                               interval 1 day)) as day
          from months);

create temp table cust_days as
    select c.*, d.month, d.day, d.day_index, d.wf,
           0.75 + 0.5 * rnd('month/' || c.customer_id || '/' || d.month) as mf,
           6 + round(110 * pow(c.size, 1.2)) as pool
    from customers as c
    join days as d
      on (c.active_from is null or d.day >= c.active_from)
     and (c.active_to is null or d.day < c.active_to);

create temp table regions as
    select customer_id, region from customers,
           unnest(case currency when 'EUR' then ['eu', 'us'] when 'JPY' then ['us', 'ap']
                                else ['us', 'eu'] end) with ordinality as r(region, n)
    where n = 1 or currency = 'JPY' or rnd('region/' || customer_id) < 0.5;
