"""The benchmark's price book and events, written set-based by DuckDB (no Python loop over
events), deterministic for a given size.

Price book (`write_catalog`): 1,000 USD customers `c0000`..`c0999`, four meters, one per
aggregation the issue names, and four items over them, one filtered:

- `calls` (count), item `calls`: graduated, 10,000 free, then 0.0004 (+5.00 flat fee) to 1M,
  then 0.00025;
- `transfer_gb` (sum), item `transfer`: per_unit 0.09 after 10 free units (`c0000`: 0.07, none
  free);
- `storage_gb` (max), item `storage_eu`: per_unit 0.023 of the `region=eu` events only (US
  storage is unbilled usage);
- `users` (unique_count of `user_id`), item `users`: package, 4.00 per 50 users.

Events (`write_events`): row k of N (k = 0..N-1) is derived from a source number s by hashing, so a
row is the same in every format and every run:
- customers are skewed (customer index = floor(1000 * u^3): `c0000` sends about 10% of all
  events, half the customers under 0.2% each); meters 55% calls, 25% transfer, 15% users, 5%
  storage; `region` us or eu on every event, `user_id` on users events;
- about 1% of rows are exact copies of an earlier row (s = k - 1000): duplicates;
- about 1 row in 100,000 repeats an earlier event id with another value: conflicting duplicates;
- about 3 rows in 10,000 are bad: an unknown customer, an unknown meter, or no timestamp;
- about 0.5% of events are dated in the previous month (late usage for an earlier period);
  everything else is spread over the billed month.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

PERIOD_START = "2026-10-01"
PERIOD_END = "2026-11-01"
PREVIOUS_START = "2026-09-01"
CUSTOMERS = 1000

CATALOG = {
    "customers.csv": [["customer_id", "customer_name", "currency", "active_from", "active_to"]]
    + [[f"c{i:04d}", f"Customer {i:04d}", "USD", "2025-01-01", ""] for i in range(CUSTOMERS)],
    "meters.csv": [
        ["meter_id", "display_name", "unit", "aggregation", "unique_dimension"],
        ["calls", "API calls", "call", "count", ""],
        ["transfer_gb", "Data transfer", "GB", "sum", ""],
        ["storage_gb", "Storage (peak)", "GB", "max", ""],
        ["users", "Active users", "user", "unique_count", "user_id"],
    ],
    "product_items.csv": [
        ["product_item_id", "display_name", "meter_id", "dimension_filter"],
        ["calls", "API calls", "calls", ""],
        ["transfer", "Data transfer", "transfer_gb", ""],
        ["storage_eu", "Storage EU (peak GB)", "storage_gb", "region=eu"],
        ["users", "Active users (packs of 50)", "users", ""],
    ],
    "rates.csv": [
        ["rate_id", "product_item_id", "customer_id", "currency", "pricing_model", "unit_price",
         "package_size", "free_units", "effective_from", "effective_to"],
        ["r_calls", "calls", "", "USD", "graduated", "", "", "", "2025-01-01", ""],
        ["r_transfer", "transfer", "", "USD", "per_unit", "0.09", "", "10", "2025-01-01", ""],
        ["r_transfer_c0000", "transfer", "c0000", "USD", "per_unit", "0.07", "", "",
         "2025-01-01", ""],
        ["r_storage_eu", "storage_eu", "", "USD", "per_unit", "0.023", "", "", "2025-01-01", ""],
        ["r_users", "users", "", "USD", "package", "4.00", "50", "", "2025-01-01", ""],
    ],
    "rate_tiers.csv": [
        ["rate_id", "tier", "up_to", "unit_price", "flat_fee"],
        ["r_calls", "1", "10000", "0", "0"],
        ["r_calls", "2", "1000000", "0.0004", "5.00"],
        ["r_calls", "3", "", "0.00025", "0"],
    ],
    "commitments.csv": [["customer_id", "minimum_amount", "currency", "effective_from",
                         "effective_to"]],
}

# One row per output row k; every field comes from the source number s (the event's identity).
_ROWS = """
with rows as (
    select k,
        case when k >= 1000 and hash(k, 'dup') % 100 = 0 then k - 1000
             when k >= 500 and hash(k, 'conflict') % 100000 = 1 then k - 500
             else k end as s,
        k >= 500 and hash(k, 'dup') % 100 <> 0 and hash(k, 'conflict') % 100000 = 1
            as conflicting,
        hash(k, 'bad') % 10000 as bad
    from range({start}, {stop}) t(k)
),
events as (
    select k, s, conflicting, bad,
        floor({customers} * pow(hash(s, 'customer') / 18446744073709551616.0, 3))::integer
            as customer_index,
        hash(s, 'meter') % 100 as meter_pick,
        hash(s, 'late') % 200 = 0 as late,
        hash(s, 'region') % 3 = 0 as in_eu
    from rows
)
select
    'e' || s as event_id,
    case when bad = 1 then 'nobody' else 'c' || lpad(customer_index::varchar, 4, '0') end
        as customer_id,
    case when bad = 2 then 'no_such_meter'
         when meter_pick < 55 then 'calls'
         when meter_pick < 80 then 'transfer_gb'
         when meter_pick < 95 then 'users'
         else 'storage_gb' end as meter,
    (case when meter_pick < 55 or (meter_pick >= 80 and meter_pick < 95) then 1
          when meter_pick < 80 then (hash(s, 'value') % 1000000)::decimal(18, 0) * 0.001
          else (hash(s, 'value') % 500000)::decimal(18, 0) * 0.01 end
     + case when conflicting then 1 else 0 end)::decimal(18, 3) as value,
    case when bad = 3 then null
         else (case when late then timestamptz '{previous} 00:00:00+00'
                    else timestamptz '{start_day} 00:00:00+00' end)
              + to_microseconds((hash(s, 'at') % ((case when late then
                    date '{start_day}' - date '{previous}' else
                    date '{end_day}' - date '{start_day}' end) * 86400000000))::bigint)
         end as timestamp,
    case when meter_pick >= 80 and meter_pick < 95
         then map(['region', 'user_id'], [case when in_eu then 'eu' else 'us' end,
                                          'u' || (hash(s, 'user') % 5000)::varchar])
         else map(['region'], [case when in_eu then 'eu' else 'us' end]) end as dimensions
from events
order by k
"""

_JSONL = """
select event_id, customer_id, meter, value,
       strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') as timestamp, dimensions
from ({rows})
"""


def write_catalog(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in CATALOG.items():
        with (folder / name).open("w", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
    return folder


def write_events(target: Path, start: int, stop: int, fmt: str) -> Path:
    """Rows ``start``..``stop - 1`` as one file: ``parquet`` (typed: DECIMAL value, TIMESTAMP
    WITH TIME ZONE, MAP dimensions) or ``jsonl`` (gzip; ISO timestamps, JSON numbers)."""
    rows = _ROWS.format(start=start, stop=stop, customers=CUSTOMERS, previous=PREVIOUS_START,
                        start_day=PERIOD_START, end_day=PERIOD_END)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("set preserve_insertion_order = true")
        if fmt == "parquet":
            con.execute(f"copy ({rows}) to '{target}' (format parquet, compression zstd, "
                        f"row_group_size 1000000)")
        elif fmt == "jsonl":
            con.execute(f"copy ({_JSONL.format(rows=rows)}) to '{target}' "
                        f"(format json, compression gzip)")
        else:
            raise ValueError(f"unknown format {fmt!r}")
    finally:
        con.close()
    return target
