"""The floors Meterline is measured against: what DuckDB alone does with the same files.

    python benchmarks/floors.py copy DB FILE...        the bare copy of Parquet into a table
    python benchmarks/floors.py read-jsonl DB FILE...  DuckDB's bare typed read of JSON Lines
    python benchmarks/floors.py close OUT.json FILE... one query from files to invoice totals

Each is one process, timed from outside with `/usr/bin/time -v` like Meterline's commands, with
DuckDB's default settings (80% of memory, every core): the best DuckDB does unconstrained.

The close floor follows the contract for the benchmark's price book (benchmarks/generate.py):
rows missing a field or naming an unknown customer or meter are dropped (quarantined); the first
valid copy of an event_id in landing order (file path, then row) wins, later copies are dropped
(duplicates and conflicting duplicates); the month's events are aggregated per customer and item
(count, sum, max of the `region=eu` events, distinct `user_id`); Q = max(aggregate, 0); every
line is rounded once, half away from zero, to cents; a total is the sum of its lines; a customer
without usage has a total of 0.00. It writes {customer_id: total as a string}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

CLOSE = """
with source as (
    select *, filename as source_file, file_row_number
    from read_parquet($files, filename = true, file_row_number = true)
),
valid as (
    select * from source
    where event_id is not null and event_id <> '' and timestamp is not null
      and customer_id in (select customer_id from customers)
      and meter in ('calls', 'transfer_gb', 'storage_gb', 'users')
),
landed as (
    select * from valid
    qualify row_number() over (partition by event_id order by source_file, file_row_number) = 1
),
usage as (
    select customer_id,
        count(*) filter (where meter = 'calls') as calls_q,
        greatest(coalesce(sum(value) filter (where meter = 'transfer_gb'), 0), 0) as transfer_q,
        count(*) filter (where meter = 'transfer_gb') > 0 as transfer_used,
        greatest(coalesce(max(value) filter (where meter = 'storage_gb'
                                             and dimensions['region'] = 'eu'), 0), 0)
            as storage_q,
        count(*) filter (where meter = 'users') > 0 as users_used,
        count(distinct dimensions['user_id']) filter (where meter = 'users') as users_q
    from landed
    where timestamp >= timestamptz '2026-10-01 00:00:00+00'
      and timestamp < timestamptz '2026-11-01 00:00:00+00'
    group by customer_id
),
lines as (
    select customer_id,
        -- graduated calls: tier 1 free to 10,000; tier 2 to 1,000,000 at 0.0004 + 5.00; tier 3
        case when calls_q > 10000 then round(
            (least(calls_q, 1000000) - 10000) * 0.0004::decimal(38, 12) + 5.00, 2) else 0 end
        + case when calls_q > 1000000 then round(
            (calls_q - 1000000) * 0.00025::decimal(38, 12), 2) else 0 end as calls_amount,
        case when not transfer_used then 0
             when customer_id = 'c0000' then round(transfer_q * 0.07, 2)
             else round(greatest(transfer_q - 10, 0) * 0.09, 2) end as transfer_amount,
        round(storage_q * 0.023, 2) as storage_amount,
        case when users_used then ((users_q + 49) // 50) * 4.00 else 0 end
            as users_amount
    from usage
)
select customers.customer_id,
    cast(coalesce(calls_amount + transfer_amount + storage_amount + users_amount, 0)
         as decimal(38, 2))::varchar as total
from customers
left join lines using (customer_id)
order by customers.customer_id
"""


def main() -> None:
    command, target, *files = sys.argv[1:]
    con = duckdb.connect(target if command != "close" else ":memory:")
    con.execute("set TimeZone = 'UTC'")
    if command == "copy":
        con.execute("create or replace table events as select * from read_parquet(?)", [files])
    elif command == "read-jsonl":
        con.execute("""
            create or replace table events as select * from read_json(?,
                format = 'newline_delimited',
                columns = {event_id: 'VARCHAR', customer_id: 'VARCHAR', meter: 'VARCHAR',
                           value: 'DECIMAL(38, 12)', timestamp: 'TIMESTAMPTZ',
                           dimensions: 'MAP(VARCHAR, VARCHAR)'})
        """, [files])
    elif command == "close":
        con.execute("create table customers as select 'c' || lpad(i::varchar, 4, '0') "
                    "as customer_id from range(1000) t(i)")
        totals = dict(con.execute(CLOSE, {"files": files}).fetchall())
        Path(target).write_text(json.dumps(totals, indent=0, sort_keys=True))
    else:
        sys.exit(f"unknown floor {command!r}")
    con.close()


if __name__ == "__main__":
    main()
