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

from orchestration.catalog.read import Catalog
from orchestration.lib.sql import read_sql


def _month_end(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _as_instant(until: datetime | date | None) -> datetime | None:
    if until is None:
        return None
    if isinstance(until, datetime):
        return until if until.tzinfo else until.replace(tzinfo=UTC)
    return datetime.combine(until, time(0), tzinfo=UTC)


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
        con.execute(read_sql(__file__, "demo_setup.sql"))
        con.execute(read_sql(__file__, "demo_events.sql"))
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
