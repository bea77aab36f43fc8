"""Benchmark: land and bill one month of N events for the demo price book, through the real CLI.

    .venv/bin/python benchmarks/bench_billing.py --events 1000000

Generates the events with DuckDB (set-based, no Python loop) into a fresh home, then runs
`meterline ingest` and `meterline bill --period 2026-10` under `/usr/bin/time -v`, and appends the
figures (wall seconds, peak resident memory) to benchmarks/RESULTS.md. Reproduce any figure with
`/usr/bin/time -v meterline ...` on a home built the same way."""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PERIOD = "2026-10"


def generate(landing: Path, events: int, files: int) -> None:
    """Events spread over October 2026 for every active demo customer and billed meter."""
    with (REPO / "seeds" / "customers.csv").open() as fh:
        customers = [r["customer_id"] for r in csv.DictReader(fh)]
    with (REPO / "seeds" / "meters.csv").open() as fh:
        meters = [(r["meter_id"], r["aggregation"], r["unique_dimension"] or "")
                  for r in csv.DictReader(fh)]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create table customers as select unnest(?::varchar[]) as customer_id",
                [customers])
    con.execute("create table meters as select unnest(?::varchar[]) as meter_id, "
                "unnest(?::varchar[]) as unique_dimension",
                [[m[0] for m in meters], [m[2] for m in meters]])
    per_file = events // files
    for part in range(files):
        target = landing / f"bench_{part:02d}.jsonl.gz"
        con.execute(f"""
            copy (
                with numbered as (
                    select {part} * {per_file} + i as n from range({per_file}) t(i)
                ),
                picked as (
                    select n,
                        (select customer_id from customers
                         order by hash(customer_id, n % 97) limit 1) as customer_id,
                        hash(n, 'meter') % (select count(*) from meters) as meter_index,
                        timestamp '2026-10-01' + to_microseconds(
                            (hash(n, 'ts') % 2678400000000)::bigint) as ts
                    from numbered
                ),
                with_meter as (
                    select p.*, m.meter_id, m.unique_dimension
                    from picked p
                    join (select meter_id, unique_dimension,
                                 row_number() over (order by meter_id) - 1 as meter_index
                          from meters) m using (meter_index)
                )
                select
                    'bench-' || n as event_id,
                    customer_id,
                    meter_id as meter,
                    ((hash(n, 'v') % 100000) / 1000)::decimal(18, 3) as value,
                    strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') as timestamp,
                    case hash(n, 'r') % 2 when 0 then map(['region', 'user_id'],
                         ['us', 'u' || (hash(n, 'u') % 400)::varchar])
                         else map(['region', 'user_id'],
                                  ['eu', 'u' || (hash(n, 'u') % 400)::varchar])
                    end as dimensions
                from with_meter
            ) to '{target}' (format json, compression gzip)
        """)


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    done = subprocess.run(["/usr/bin/time", "-v", *args], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    hours, minutes, seconds = (float(g or 0) for g in wall.groups())
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return hours * 3600 + minutes * 60 + seconds, peak_kb, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    meterline = str(Path(sys.executable).with_name("meterline"))
    with tempfile.TemporaryDirectory(prefix="meterline-bench-") as tmp:
        home = Path(tmp) / "home"
        (home / "landing").mkdir(parents=True)
        started = time.monotonic()
        generate(home / "landing", args.events, args.files)
        generated = time.monotonic() - started
        env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
        env.update(METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(REPO / "seeds"))
        rows = []
        for label, command in (
            ("ingest (all files)", [meterline, "ingest"]),
            ("ingest again (nothing new)", [meterline, "ingest"]),
            (f"bill --period {PERIOD}", [meterline, "bill", "--period", PERIOD]),
            (f"bill --period {PERIOD} again", [meterline, "bill", "--period", PERIOD]),
            (f"bill --period {PERIOD} --publish",
             [meterline, "bill", "--period", PERIOD, "--publish"]),
            (f"bill --period {PERIOD} --publish again (nothing to do)",
             [meterline, "bill", "--period", PERIOD, "--publish"]),
        ):
            wall, peak_kb, out = timed(command, env)
            rows.append((label, wall, peak_kb))
            print(f"{label:32} {wall:7.1f} s  {peak_kb / 1024:7.0f} MiB", flush=True)
        size_mb = (home / "warehouse.duckdb").stat().st_size / 1e6
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        landed = con.execute("select count(*) from raw.usage_events").fetchone()[0]
        invoices = con.execute("select count(*), sum(line_count) from marts.fct_invoices "
                               "where billing_period_start = date '2026-10-01'").fetchone()
        # the seven reconciliation checks of each run, from their own timings (seconds, not money)
        checks = [r[0] for r in con.execute("""
            select sum(cast(json_extract_string(figures, '$.seconds_total') as double))
            from billing.reconciliation_results group by run_id order by min(checked_at)
        """).fetchall()]
        con.close()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n## {stamp}: {args.events:,} events in {args.files} .jsonl.gz files, one month\n",
        f"Machine: {os.cpu_count()} cores, {platform.python_version()}, "
        f"duckdb {duckdb.__version__}. "
        f"Generation {generated:.1f} s; {landed:,} events landed; "
        f"{invoices[0]} invoices, {invoices[1]} lines; warehouse {size_mb:.0f} MB. "
        f"The seven reconciliation checks took {', '.join(f'{c:.1f}' for c in checks)} s in "
        f"the three runs that built the month (inside the bill rows below).\n",
        "| command | wall s | peak RSS MiB |",
        "|---|---:|---:|",
        *[f"| `meterline {label}` | {wall:.1f} | {peak / 1024:.0f} |"
          for label, wall, peak in rows],
        "",
    ]
    with args.results.open("a") as fh:
        fh.write("\n".join(lines))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
