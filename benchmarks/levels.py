"""Benchmark of level meters (issue 15): N events of two level meters over 12 months, billed.

    .venv/bin/python benchmarks/levels.py --events 10000000

Price book: the 1,000 customers of benchmarks/generate.py and two level meters,
`storage_gb` (time_weighted_sum per period: GB-months; items `storage_eu` / `storage_us` by
region, per_unit 0.021 / 0.023 after 10 free) and `instances` (time_weighted_sum per hour:
instance-hours; item `instance_hours`, per_unit 0.0125). Events (one Parquet file, typed, written
set-based by DuckDB): skewed customers, spread over November 2025 to October 2026, each a signed
change (storage: +0.5..+50 GB, one in four a deletion of up to 40 GB; instances: +1 or -1).

The run, every command under `/usr/bin/time -v`: `meterline ingest`, `bill --period 2026-10`
(October's levels carry eleven months of changes), then `bill --period 2026-10` again; then
`ingest` of 1% more events (November's first two days), `bill --period 2026-10` once more (the
usage layer adds only the new events) and `bill --period 2026-11` (twelve months carried in,
accrued to the run's instant). The floor
is one hand-written DuckDB query from the Parquet file to October's invoice totals by another
method (the level's steps: a window over each customer's distinct instants); the totals are
compared with Meterline's to the cent. Figures are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, timed  # the benchmark's own module, beside this file

NOW = "2026-11-03T00:00:00Z"
CUSTOMERS = 1000
FIRST, END = "2025-11-01", "2026-11-01"

CATALOG = {
    "customers.csv": [["customer_id", "customer_name", "currency"]]
    + [[f"c{i:04d}", f"Customer {i:04d}", "USD"] for i in range(CUSTOMERS)],
    "meters.csv": [
        ["meter_id", "display_name", "unit", "aggregation", "unique_dimension", "time_unit"],
        ["storage_gb", "Storage", "GB-month", "time_weighted_sum", "", "period"],
        ["instances", "Instances", "instance-hour", "time_weighted_sum", "", "hour"],
    ],
    "product_items.csv": [
        ["product_item_id", "display_name", "meter_id", "dimension_filter"],
        ["storage_eu", "Storage EU (GB-months)", "storage_gb", "region=eu"],
        ["storage_us", "Storage US (GB-months)", "storage_gb", "region=us"],
        ["instance_hours", "Instance hours", "instances", ""],
    ],
    "rates.csv": [
        ["rate_id", "product_item_id", "customer_id", "currency", "pricing_model", "unit_price",
         "package_size", "free_units", "effective_from", "effective_to"],
        ["r_eu", "storage_eu", "", "USD", "per_unit", "0.021", "", "10", "2025-01-01", ""],
        ["r_us", "storage_us", "", "USD", "per_unit", "0.023", "", "10", "2025-01-01", ""],
        ["r_inst", "instance_hours", "", "USD", "per_unit", "0.0125", "", "0", "2025-01-01",
         ""],
    ],
    "rate_tiers.csv": [["rate_id", "tier", "up_to", "unit_price", "flat_fee"]],
    "commitments.csv": [["customer_id", "minimum_amount", "currency", "effective_from",
                         "effective_to"]],
}

EVENTS = f"""
select '{{prefix}}' || k as event_id,
    'c' || lpad(floor({CUSTOMERS} * pow(hash(k, 'c') / 18446744073709551616.0, 3))::integer
                ::varchar, 4, '0') as customer_id,
    case when hash(k, 'm') % 10 < 7 then 'storage_gb' else 'instances' end as meter,
    case when hash(k, 'm') % 10 >= 7 then (case when hash(k, 'd') % 3 = 0 then -1 else 1 end)
         when hash(k, 'd') % 4 = 0 then -((hash(k, 'v') % 40000)::decimal(18, 0) * 0.001)
         else (500 + hash(k, 'v') % 49500)::decimal(18, 0) * 0.001
    end::decimal(18, 3) as value,
    timestamptz '{{first}} 00:00:00+00'
        + to_microseconds((hash(k, 't') % ((date '{{end}}' - date '{{first}}') * 86400000000))
                          ::bigint) as timestamp,
    map(['region'], [case when hash(k, 'r') % 3 = 0 then 'eu' else 'us' end]) as dimensions
from range(0, {{events}}) t(k)
"""

# October's totals by the level's steps (not Meterline's closed form): per (customer, item),
# the carried level, then each distinct instant's level held until the next instant.
FLOOR = """
with ev as (
    select customer_id, meter, value, epoch_us(timestamp) as t,
           case when meter = 'instances' then 'instance_hours'
                else 'storage_' || dimensions['region'] end as item
    from read_parquet($file)
),
bounds as (select epoch_us(timestamptz '2026-10-01 00:00:00+00') as s,
                  epoch_us(timestamptz '2026-11-01 00:00:00+00') as e),
carried as (select customer_id, item, sum(value) as level from ev, bounds where t < s
            group by all),
steps as (select customer_id, item, t, sum(value) as change from ev, bounds
          where t >= s and t < e group by all
          union all select customer_id, item, s, 0 from carried, bounds),
levels as (select customer_id, item, t,
                  coalesce(c.level, 0) + sum(change) over (partition by customer_id, item
                                                           order by t) as level,
                  coalesce(lead(t) over (partition by customer_id, item order by t), e) - t
                      as held
           from steps left join carried c using (customer_id, item), bounds),
integrals as (select customer_id, item, sum(level * held::hugeint) as integral
              from levels group by all)
select customer_id, item, integral::varchar from integrals
"""
DIVISOR = {"instance_hours": 3_600_000_000, "storage_eu": 2_678_400_000_000,
           "storage_us": 2_678_400_000_000}
PRICE = {"storage_eu": ("0.021", 10), "storage_us": ("0.023", 10),
         "instance_hours": ("0.0125", 0)}


def floor_totals(path: Path) -> dict[str, str]:
    """The hand-written floor: exact integer integrals in DuckDB, then Python Decimal."""
    from decimal import ROUND_HALF_UP, Decimal, localcontext

    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        rows = con.execute(FLOOR, {"file": str(path)}).fetchall()
    finally:
        con.close()
    totals: dict[str, Decimal] = {}
    with localcontext() as ctx:
        ctx.prec = 80
        for customer, item, integral in rows:
            q = (Decimal(integral) / DIVISOR[item]).quantize(Decimal("1e-12"), ROUND_HALF_UP)
            price, free = PRICE[item]
            amount = (max(max(q, 0) - free, 0) * Decimal(price)).quantize(Decimal("0.01"),
                                                                            ROUND_HALF_UP)
            totals[customer] = totals.get(customer, Decimal(0)) + amount
    return {c: str(v) for c, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--keep", action="store_true",
                        help="keep the home (its dbt target/run_results.json has each model's "
                             "time) and print where it is")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meterline-levels-"))
    try:
        catalog = work / "catalog"
        catalog.mkdir()
        for name, rows in CATALOG.items():
            with (catalog / name).open("w", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerows(rows)
        home = work / "home"
        (home / "landing").mkdir(parents=True)
        events = home / "landing" / "levels.parquet"
        started = time.monotonic()
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        # the year, then 1% more: changes of November's first two days (the run's month)
        more = work / "more.parquet"
        for path, count, prefix, first, end in ((events, args.events, "l", FIRST, END),
                                                (more, args.events // 100, "n", END,
                                                 "2026-11-03")):
            query = EVENTS.format(events=count, prefix=prefix, first=first, end=end)
            con.execute(f"copy ({query}) to '{path}' "
                        "(format parquet, compression zstd, row_group_size 1000000)")
        con.close()
        print(f"generated {args.events:,} events in {time.monotonic() - started:.1f} s")
        meterline = str(Path(sys.executable).with_name("meterline"))
        env = dict(os.environ, METERLINE_INGEST_REFRESH="off",  # landing timed alone
                   METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(catalog),
                   METERLINE_NOW=NOW)
        python = sys.executable
        floor_script = [python, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
                        "import levels; print(json.dumps(levels.floor_totals(sys.argv[2])))",
                        str(Path(__file__).resolve().parent), str(events)]
        floor = timed("floor: October's totals by the level's steps (DuckDB)", floor_script, env)
        expected = json.loads(floor.stdout)
        rows = [timed("ingest (12 months of level events)", [meterline, "ingest"], env),
                timed("bill --period 2026-10", [meterline, "bill", "--period", "2026-10"], env),
                timed("bill --period 2026-10 (again)", [meterline, "bill", "--period",
                                                         "2026-10"], env)]
        shutil.move(more, home / "landing" / more.name)
        rows += [timed("ingest (1% more: November's first two days)", [meterline, "ingest"], env),
                 timed("bill --period 2026-10 (after the 1%)",
                       [meterline, "bill", "--period", "2026-10"], env),
                 timed("bill --period 2026-11 (12 months carried in, month to date)",
                       [meterline, "bill", "--period", "2026-11"], env)]
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        got = dict(con.execute("select customer_id, cast(total as decimal(38, 2))::varchar "
                               "from marts.fct_invoices where billing_period_start = "
                               "date '2026-10-01' and total <> 0").fetchall())
        usage_rows = con.execute("select count(*) from marts.fct_meter_usage").fetchone()[0]
        con.close()
        expected = {c: v for c, v in expected.items() if v not in ("0", "0.00")}
        wrong = {c: (expected.get(c), got.get(c)) for c in set(expected) | set(got)
                 if expected.get(c) != got.get(c)}
        if wrong:
            sys.exit(f"October totals differ from the floor for {len(wrong)} customers, e.g. "
                     f"{dict(list(wrong.items())[:5])}")
        bill = rows[1].wall
        versions = ", ".join(f"{name} {metadata.version(name)}"
                             for name in ("duckdb", "dbt-core", "dbt-duckdb", "dagster"))
        lines = [
            f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M UTC}: level meters, {args.events:,} events "
            "over 12 months (benchmarks/levels.py)\n",
            f"Machine: {len(os.sched_getaffinity(0))} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, {versions}.",
            "",
            f"- October's invoice totals equal the floor's to the cent ({len(got)} invoices "
            "with a non-zero total); "
            f"{usage_rows:,} rows in marts.fct_meter_usage (every customer-meter-month with a "
            "level).",
            f"- bill / floor: {bill / floor.wall:.1f}x; after 1% more events, the bill costs "
            f"{rows[4].wall / bill:.0%} of the first, and November's (twelve months carried in) "
            f"{rows[5].wall / bill:.0%}.",
            "",
            "| command | wall s | peak RSS MiB |",
            "|---|---:|---:|",
            f"| {floor.label} | {floor.wall:.1f} | {floor.peak_mib:.0f} |",
            *[f"| `meterline {t.label}` | {t.wall:.1f} | {t.peak_mib:.0f} |" for t in rows],
            "",
        ]
        with args.results.open("a") as fh:
            fh.write("\n".join(lines))
        print("\n".join(lines))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
