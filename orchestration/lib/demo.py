"""Demo usage for the demo price book (``seeds/``), generated set-based in DuckDB.

No Python loop over events: every stream is one SQL statement over ``range()``/``unnest``,
with deterministic pseudo-randomness from ``md5_number(seed || key)``, written out with
``COPY ... TO``. The same seed, catalog and months always give byte-identical files, so running
the demo again lands nothing new (ingest recognises files by content).

What the files hold (only meters present in the catalog are generated):
- ``usage_YYYY-MM.jsonl.gz`` per month: ``api_calls`` (integer batches, ISO timestamps with
  the customer's UTC offset and milliseconds), ``compute_hours`` (3-decimal values, epoch
  millisecond timestamps), ``data_transfer_gb`` (values as JSON strings, as Stripe sends
  them), ``active_users`` (``user_id`` dimension from a per-customer pool, a few anonymous
  events without it) and ``audit_events`` (a meter no product item prices: unbilled usage).
  The last month's file also carries the deliberately bad rows: events of a customer not in
  the price book, of a meter not in it, a truncated JSON line, and a few exact re-sends
  (duplicates).
- ``idp_logins_<first>_to_<last>.csv``: ``logins`` from the identity provider (no value, so
  each counts 1; ``dimensions`` JSON-encoded), plus two rows with an empty timestamp.
- ``infra_snapshots_<first>_to_<last>.parquet``: ``storage_gb`` samples every 6 hours per
  region (``us``/``eu`` priced by the filtered items, ``ap`` unbilled) and a daily ``seats``
  snapshot; DECIMAL values, TIMESTAMP WITH TIME ZONE, MAP(VARCHAR, VARCHAR) dimensions.

Customers get events only inside their active range, on a weekday/weekend and office-hours
pattern scaled by a per-customer size and a per-month factor.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import duckdb

from orchestration.lib.catalog import Catalog

def _month_end(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _as_instant(until: datetime | date | None) -> datetime | None:
    if until is None:
        return None
    if isinstance(until, datetime):
        return until if until.tzinfo else until.replace(tzinfo=UTC)
    return datetime.combine(until, time(0), tzinfo=UTC)


SETUP_SQL = [
    "create or replace temp macro rnd(k) as "
    "((md5_number(getvariable('seed') || '/' || k) % 1000000)::double / 1000000.0)",
    "create or replace temp macro dec3(x) as (floor((x) * 1000)::bigint * 0.001::decimal(4, 3))",
    "create or replace temp macro dec2(x) as (floor((x) * 100)::bigint * 0.01::decimal(3, 2))",
    # an instant (a naive UTC timestamp) as ISO text in the writer's UTC offset
    """create or replace temp macro iso_at(ts, off) as (
        strftime(ts + to_minutes(off), '%Y-%m-%dT%H:%M:%S.%g')
        || case when off = 0 then 'Z'
                else (case when off < 0 then '-' else '+' end)
                     || lpad((abs(off) // 60)::varchar, 2, '0') || ':'
                     || lpad((abs(off) % 60)::varchar, 2, '0') end)""",
    """create temp table customers as
    select customer_id, currency, active_from, active_to,
           0.35 + 2.4 * rnd('size/' || customer_id) as size,
           list_extract(offsets, 1 + floor(rnd('tz/' || customer_id) * len(offsets))::int) as off
    from (select *, case currency when 'EUR' then [60, 120] when 'JPY' then [540]
                                  else [0, -300, -420] end as offsets
          from catalog_customers)""",
    """create temp table days as
    select month, day::date as day,
           date_diff('day', date '2026-01-01', day::date) as day_index,
           case when isodow(day) in (6, 7) then 0.35 else 1.0 end as wf
    from (select month, unnest(generate_series(month::timestamp,
                                               (month_end - interval 1 day)::timestamp,
                                               interval 1 day)) as day
          from months)""",
    """create temp table cust_days as
    select c.*, d.month, d.day, d.day_index, d.wf,
           0.75 + 0.5 * rnd('month/' || c.customer_id || '/' || d.month) as mf,
           6 + round(110 * pow(c.size, 1.2)) as pool
    from customers as c
    join days as d
      on (c.active_from is null or d.day >= c.active_from)
     and (c.active_to is null or d.day < c.active_to)""",
    # storage regions: the customer's home region always, a second one sometimes; JPY
    # customers also store in 'ap', which no product item prices (unbilled usage)
    """create temp table regions as
    select customer_id, region from customers,
           unnest(case currency when 'EUR' then ['eu', 'us'] when 'JPY' then ['us', 'ap']
                                else ['us', 'eu'] end) with ordinality as r(region, n)
    where n = 1 or currency = 'JPY' or rnd('region/' || customer_id) < 0.5""",
]

# One row per event: the stream (file), the fields, and a key k that seeds its randomness.
EVENTS_SQL = """
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
all_events as (
    select * from api union all select * from compute union all select * from transfer
    union all select * from users union all select * from audit union all select * from logins
    union all select * from storage union all select * from seats
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
  and (getvariable('until') is null or ts < getvariable('until'))
"""

# JSON Lines: one object per event, fields in the usual order, optional ones left out.
JSONL_LINES_SQL = """
create temp table jsonl_lines as
select month, ts as sort_at, event_id as sort_id,
       '{"event_id": ' || to_json(event_id) || ', "customer_id": ' || to_json(customer_id)
       || ', "meter": ' || to_json(meter)
       || coalesce(', "value": ' || value_json::varchar, '')
       || ', "timestamp": '
       || case when meter = 'compute_hours'
               then epoch_ms(ts)::varchar  -- the scheduler sends epoch milliseconds
               else to_json(iso_at(ts, off))::varchar end
       || coalesce(', "dimensions": ' || dims::varchar, '')
       || '}' as line
from events where stream = 'jsonl'
"""


def generate_events(landing_dir: Path, catalog: Catalog, months: list[date], seed: int = 7,
                    until: datetime | date | None = None) -> list[Path]:
    """Write demo event files for ``months`` (first days) into ``landing_dir``.

    ``until`` (an instant, or a date meaning 00:00 UTC) drops events at or after it, e.g. to
    stop a month-to-date at today; the default generates whole months. Returns the paths
    written, sorted. Deterministic for a given seed, catalog and arguments."""
    if not months:
        return []
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    firsts = sorted({m.replace(day=1) for m in months})
    until_at = _as_instant(until)
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("set enable_progress_bar = false")
        con.execute("create temp table months (month date, month_end date)")
        con.executemany("insert into months values (?, ?)",
                        [(m, _month_end(m)) for m in firsts])
        con.execute("create temp table catalog_customers (customer_id varchar, currency varchar,"
                    " active_from date, active_to date)")
        rows = []
        for row in catalog.customers:
            rows.append((row["customer_id"], row["currency"], _date_or_none(row["active_from"]),
                         _date_or_none(row["active_to"])))
        if rows:
            con.executemany("insert into catalog_customers values (?, ?, ?, ?)", rows)
        con.execute("create temp table catalog_meters (meter_id varchar)")
        meters = [(row["meter_id"],) for row in catalog.meters if row["meter_id"]]
        if meters:
            con.executemany("insert into catalog_meters values (?)", meters)
        con.execute("set variable seed = ?", [str(seed)])
        # naive UTC, like the generated instants
        con.execute("set variable until = ?::timestamp",
                    [None if until_at is None
                     else until_at.astimezone(UTC).replace(tzinfo=None)])
        for statement in SETUP_SQL:
            con.execute(statement)
        con.execute(EVENTS_SQL)
        con.execute(JSONL_LINES_SQL)
        _add_bad_jsonl_lines(con, firsts[-1], str(seed))
        written = _write_files(con, landing_dir, firsts)
    finally:
        con.close()
    return sorted(written)


def _date_or_none(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _add_bad_jsonl_lines(con: duckdb.DuckDBPyConnection, last_month: date, seed: str) -> None:
    """The handful of rows that quarantine (or count as duplicates) in the demo, in the last
    month's file. A fixed set, so it is not a loop over events."""
    if not con.execute("select count(*) from jsonl_lines where month = ?", [last_month]
                       ).fetchone()[0]:
        return
    day = f"{last_month:%Y-%m}-03"
    bad = [
        # a trial customer that is not in the price book yet: unknown_customer
        (f"{day} 09:30:00", '{"event_id": "evt_trial_zeta_0001", "customer_id": "trial_zeta", '
         f'"meter": "api_calls", "value": 1200, "timestamp": "{day}T09:30:00Z"}}'),
        (f"{day} 09:45:00", '{"event_id": "evt_trial_zeta_0002", "customer_id": "trial_zeta", '
         f'"meter": "api_calls", "value": 800, "timestamp": "{day}T09:45:00Z"}}'),
        # a meter the product team is trialling, not in meters.csv yet: unknown_meter
        (f"{day} 15:00:00", '{"event_id": "evt_gpu_beta_0001", "customer_id": "acme_corp", '
         f'"meter": "gpu_seconds", "value": 3600, "timestamp": "{day}T10:00:00-05:00"}}'),
        # a line cut off mid-write: malformed_row
        (f"{day} 16:00:00", '{"event_id": "evt_cut_off_0001", "customer_id": "globex", '
         '"meter": "api_ca'),
    ]
    con.executemany("insert into jsonl_lines values (?, ?::timestamp, ?, ?)",
                    [(last_month, at, f"~bad{i}", line) for i, (at, line) in enumerate(bad)])
    # three events re-sent by a client retry: identical copies, counted as duplicates
    con.execute("""
        insert into jsonl_lines
        select month, sort_at + interval 2 minute, sort_id || '~resent', line
        from jsonl_lines
        where month = ? and not starts_with(sort_id, '~')
        order by md5(? || sort_id) limit 3""", [last_month, seed])


def _write_files(con: duckdb.DuckDBPyConnection, landing_dir: Path, firsts: list[date]
                 ) -> list[Path]:
    written: list[Path] = []
    for month in firsts:
        if not con.execute("select count(*) from jsonl_lines where month = ?", [month]
                           ).fetchone()[0]:
            continue
        path = landing_dir / f"usage_{month:%Y-%m}.jsonl.gz"
        # One text column written without quoting: each value is one JSON line as built.
        con.execute(f"""
            copy (select line from jsonl_lines where month = '{month.isoformat()}'
                  order by sort_at, sort_id)
            to '{_sql_path(path)}'
            (format csv, header false, quote '', escape '', delimiter '\t', compression gzip)""")
        written.append(path)
    span = f"{firsts[0]:%Y-%m}_to_{firsts[-1]:%Y-%m}"
    if con.execute("select count(*) from events where stream = 'csv'").fetchone()[0]:
        path = landing_dir / f"idp_logins_{span}.csv"
        con.execute(f"""
            copy (
                select event_id, customer_id, meter, null::varchar as value,
                       iso_at(ts, off) as timestamp, dims::varchar as dimensions
                from (select event_id, customer_id, meter, ts, off, dims
                      from events where stream = 'csv'
                      union all
                      -- two rows the identity provider exported without a time: missing_field
                      select 'evt_idp_no_time_' || row_number() over (order by k),
                             customer_id, meter, null, off, dims
                      from (select * from events
                            where stream = 'csv' and month = '{firsts[-1].isoformat()}'
                            order by k limit 2))
                order by ts nulls last, event_id)
            to '{_sql_path(path)}' (format csv, header true)""")
        written.append(path)
    if con.execute("select count(*) from events where stream = 'parquet'").fetchone()[0]:
        path = landing_dir / f"infra_snapshots_{span}.parquet"
        con.execute(f"""
            copy (
                select event_id, customer_id, meter,
                       cast(value_json::varchar as decimal(18, 3)) as value,
                       ts::timestamptz as timestamp,
                       case when dims is null then null
                            else map_from_entries([(dim_key, dims->>dim_key)
                                                  for dim_key in json_keys(dims)])
                       end as dimensions
                from events where stream = 'parquet'
                order by ts, event_id)
            to '{_sql_path(path)}' (format parquet)""")
        written.append(path)
    return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
