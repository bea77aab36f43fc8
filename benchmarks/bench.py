"""Benchmark: one month of N events through the real CLI, against what DuckDB alone does.

    .venv/bin/python benchmarks/bench.py --events 1000000      # also 10000000, 100000000

With --landing-only only the landing commands run (the copy floor, the fixed cost of ingest, the
ingest of the files, then of a 100,000-event file into that home): about 10 minutes at 100M
events where the whole run takes well over an hour.

With --workdir the generated files are kept there and reused by the next run with the same
--workdir (100M events: about 1.2 GB of Parquet and 2 GB of JSON Lines gzip).

In one run, on the same files (benchmarks/generate.py: 1,000 customers, four meters, skew,
duplicates, bad rows, late events; Parquet and JSON Lines gzip):

1. the floors (benchmarks/floors.py): the bare copy of the Parquet files into a DuckDB table,
   DuckDB's bare typed read of the JSON Lines files, and one hand-written query from the files
   to the invoice totals (the close floor), for the main files and again with the 1% file;
2. a Parquet home: `meterline ingest`, `bill --period 2026-10`, a second `ingest` of a file of 1%
   more events and the `bill` after it, an `ingest` of a 100,000-event file, `invoices` and
   `explain` while a `bill` runs, then `bill --publish`; the October totals are compared with the
   close floor's to the cent after each of the first two bills; then the readers' snapshot that
   every writing step publishes is built once more on its own and timed;
3. a JSON Lines home: `meterline ingest` of the same events (landing only).

Every command runs under `/usr/bin/time -v` (wall time, peak RSS), so any figure can be
reproduced with the same public tool; the figures, the ratios to the floors and the disk used are
appended to benchmarks/RESULTS.md with the machine and versions. The clock is pinned
(METERLINE_NOW=2026-11-03T00:00:00Z: October's grace period is over). Meterline runs with its
default engine settings unless METERLINE_MEMORY_LIMIT / METERLINE_THREADS / METERLINE_TEMP_DIR
are set; the floors with DuckDB's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate  # the benchmark's own module, beside this file

REPO = Path(__file__).resolve().parents[1]
FLOORS = Path(__file__).resolve().parent / "floors.py"
PERIOD = "2026-10"
NOW = "2026-11-03T00:00:00Z"
ROWS_PER_FILE = 10_000_000


@dataclass
class Timed:
    label: str
    wall: float
    peak_mib: float
    stdout: str


def timed(label: str, args: list[str], env: dict[str, str], *, check: bool = True) -> Timed:
    done = subprocess.run(["/usr/bin/time", "-v", *args], env=env, capture_output=True,
                          text=True, check=False)
    if check and done.returncode != 0:
        sys.exit(f"{label}: {' '.join(args)} failed:\n{done.stdout[-3000:]}\n"
                 f"{done.stderr[-4000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    hours, minutes, seconds = (float(g or 0) for g in wall.groups())
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    result = Timed(label, hours * 3600 + minutes * 60 + seconds, peak_kb / 1024, done.stdout)
    print(f"{label:58} {result.wall:8.1f} s {result.peak_mib:8.0f} MiB", flush=True)
    return result


def spark_nodes(home: Path, top: int = 6) -> str:
    """The dbt nodes of the last Spark build that took longest (dbt's run_results.json)."""
    results = json.loads((home / "spark" / "dbt" / "run_results.json").read_text())["results"]
    slowest = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:top]
    total = sum(r["execution_time"] for r in results)
    return (", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f} s"
                      for r in slowest)
            + f" ({len(results)} nodes, {total:.0f} s in all)")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def october_totals(home: Path) -> dict[str, str]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("select customer_id, cast(total as decimal(38, 2))::varchar "
                           "from marts.fct_invoices where billing_period_start = date "
                           "'2026-10-01'").fetchall()
    finally:
        con.close()
    return dict(rows)


def compare(label: str, home: Path, floor: Path) -> str:
    expected = json.loads(floor.read_text())
    got = october_totals(home)
    wrong = {c: (expected.get(c), got.get(c)) for c in sorted(set(expected) | set(got))
             if expected.get(c) != got.get(c)}
    if wrong:
        sys.exit(f"{label}: invoice totals differ from the close floor for {len(wrong)} "
                 f"customers, e.g. {dict(list(wrong.items())[:5])}")
    total = sum(int(v.replace(".", "")) for v in got.values())
    return f"{len(got)} invoices equal to the cent (sum {total // 100:,}.{total % 100:02d} USD)"


def _generated(target: Path, start: int, stop: int, fmt: str) -> Path:
    """Rows start..stop-1 as ``target``, generated unless a run with the same --workdir made
    them already (the generator is deterministic; a stamp beside the file says it is complete)."""
    stamp = target.with_name(target.name + f".rows-{start}-{stop}")
    if target.exists() and stamp.exists():
        return target
    stamp.unlink(missing_ok=True)
    generate.write_events(target, start, stop, fmt)
    stamp.touch()
    return target


def make_files(work: Path, events: int, formats: list[str]) -> dict[str, tuple[list[Path], Path]]:
    """{format: (main files, the 1% file)}: rows 0..N-1 in files of 10M rows, then N..1.01N
    (a 100,000-event file follows, made by main)."""
    extra = max(events // 100, 1)
    files: dict[str, tuple[list[Path], Path]] = {}
    for fmt in formats:
        suffix = ".parquet" if fmt == "parquet" else ".jsonl.gz"
        folder = work / "files" / fmt
        main = [_generated(folder / f"events_{part:03d}{suffix}", start,
                           min(start + ROWS_PER_FILE, events), fmt)
                for part, start in enumerate(range(0, events, ROWS_PER_FILE))]
        more = _generated(folder / "more" / f"events_more{suffix}", events, events + extra, fmt)
        files[fmt] = (main, more)
    return files


def link_into(landing: Path, paths: list[Path]) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for path in paths:
        target = landing / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet,jsonl",
                        help="parquet runs every command; jsonl lands only (default: both)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where files and homes go (default: a temporary folder, removed)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--landing-only", action="store_true",
                        help="only the landing commands: the copy floor, the fixed cost of "
                        "ingest, ingest of the files and of a 100,000-event file into the home")
    parser.add_argument("--spark", action="store_true",
                        help="also bill the Parquet month on Spark (METERLINE_ENGINE=spark, "
                        "local[2]; docs/spark.md) in a home of its own, beside DuckDB")
    args = parser.parse_args()
    formats = args.formats.split(",")
    python = sys.executable
    meterline = str(Path(python).with_name("meterline"))
    own_work = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="meterline-bench-")) if own_work else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[Timed, str]] = []
    notes: list[str] = []
    try:
        started = time.monotonic()
        catalog = generate.write_catalog(work / "catalog")
        files = make_files(work, args.events, formats)
        notes.append(f"Generation {time.monotonic() - started:.0f} s; files: " + ", ".join(
            f"{fmt} {sum(p.stat().st_size for p in [*main, more]) / 1e9:.2f} GB"
            for fmt, (main, more) in files.items()))
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("METERLINE_", "DAGSTER_"))
                    or k in ("METERLINE_MEMORY_LIMIT", "METERLINE_THREADS", "METERLINE_TEMP_DIR")}

        floors: dict[str, Timed] = {}
        if "parquet" in files:
            main, more = files["parquet"]
            floors["copy"] = timed("floor: bare copy of the Parquet files into DuckDB",
                                   [python, str(FLOORS), "copy", str(work / "floor.duckdb"),
                                    *map(str, main)], base_env)
            if not args.landing_only:
                floors["close"] = timed("floor: hand-written query, files to invoice totals",
                                        [python, str(FLOORS), "close", str(work / "floor.json"),
                                         *map(str, main)], base_env)
                timed("floor: the same with the 1% file", [python, str(FLOORS), "close",
                      str(work / "floor_more.json"), *map(str, main), str(more)], base_env)
            (work / "floor.duckdb").unlink()
        if "jsonl" in files:
            main, _ = files["jsonl"]
            floors["read_jsonl"] = timed("floor: DuckDB's typed read of the JSON Lines files",
                                         [python, str(FLOORS), "read-jsonl",
                                          str(work / "floor_jsonl.duckdb"), *map(str, main)],
                                         base_env)
            (work / "floor_jsonl.duckdb").unlink()

        def home_env(home: Path) -> dict[str, str]:
            # landing is timed alone: the explorers' refresh of the open months after an
            # ingest (docs/contract.md E19) is a month_to_date bill, which `bill` is timed as
            return dict(base_env, METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(catalog),
                        METERLINE_NOW=NOW, METERLINE_INGEST_REFRESH="off")

        def run(label, home, *command, floor=None, check=True):
            result = timed(label, [meterline, *command], home_env(home), check=check)
            ratio = f"{result.wall / floors[floor].wall:.1f}x {floor}" if floor in floors else ""
            rows.append((result, ratio))
            return result

        # the fixed cost of a command (process, Dagster and dbt start-up): a 1,000-event month,
        # once in a throwaway home first (the first commands after an install also compile
        # Python's bytecode and parse the dbt project: a cost paid once, shown apart)
        # every home starts empty (a --workdir reused keeps only the generated files)
        for old in ("home_fixed_cost", "home_parquet", "home_jsonl"):
            shutil.rmtree(work / old, ignore_errors=True)
        tiny = work / "home_fixed_cost"
        generate.write_events(tiny / "landing" / "events.parquet", 0, 1000, "parquet")
        first = work / "home_first_run"
        shutil.rmtree(first, ignore_errors=True)
        shutil.copytree(tiny / "landing", first / "landing")
        run("ingest (1,000 events, a new home's first command: once after an install)", first,
            "ingest")
        if not args.landing_only:
            run(f"bill --period {PERIOD} (1,000 events, a new home's first bill)", first,
                "bill", "--period", PERIOD)
        shutil.rmtree(first)
        run("ingest (1,000 events: the fixed cost)", tiny, "ingest")
        if not args.landing_only:
            run(f"bill --period {PERIOD} (1,000 events: the fixed cost)", tiny, "bill",
                "--period", PERIOD)
        if "parquet" in files and args.landing_only:
            main, _ = files["parquet"]
            home = work / "home_parquet"
            link_into(home / "landing", main)
            run("ingest (Parquet)", home, "ingest", floor="copy")
            start = args.events + max(args.events // 100, 1)
            small = _generated(work / "files" / "parquet" / "small" / "events_100k.parquet",
                               start, start + 100_000, "parquet")
            link_into(home / "landing", [small])
            run("ingest (a 100,000-event file into the home)", home, "ingest")
            notes.append(f"Landing only (--landing-only). Parquet home on disk: "
                         f"{du(home) / 1e9:.2f} GB (warehouse "
                         f"{(home / 'warehouse.duckdb').stat().st_size / 1e9:.2f} GB)")
        elif "parquet" in files:
            main, more = files["parquet"]
            home = work / "home_parquet"
            link_into(home / "landing", main)
            ingest = run("ingest (Parquet)", home, "ingest", floor="copy")
            bill = run(f"bill --period {PERIOD}", home, "bill", "--period", PERIOD,
                       floor="close")
            notes.append("After the first bill: " + compare("bill", home, work / "floor.json"))
            link_into(home / "landing", [more])
            more_ingest = run("ingest (the 1% file)", home, "ingest")
            more_bill = run(f"bill --period {PERIOD} after 1% more", home, "bill", "--period",
                            PERIOD, floor="close")
            again = more_ingest.wall + more_bill.wall
            notes.append(f"1% more events: landing them and billing again took {again:.1f} s, "
                         f"{again / (ingest.wall + bill.wall):.0%} of the first ingest and bill "
                         f"({again / bill.wall:.0%} of the first bill alone)")
            notes.append("After the 1% file: " + compare("bill", home,
                                                          work / "floor_more.json"))
            # a 100,000-event file into the home (the target: under 10 s at 100M events)
            start = args.events + max(args.events // 100, 1)
            small = _generated(work / "files" / "parquet" / "small" / "events_100k.parquet",
                               start, start + 100_000, "parquet")
            link_into(home / "landing", [small])
            run("ingest (a 100,000-event file into the home)", home, "ingest")
            writer = subprocess.Popen([meterline, "bill", "--period", PERIOD], env=home_env(home),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(3)
                run("invoices --period 2026-10 (during a bill)", home, "invoices", "--period",
                    PERIOD, "--format", "json")
                run("explain --invoice INV-202610-c0000 --line 1 (during a bill)", home,
                    "explain", "--invoice", "INV-202610-c0000", "--line", "1")
            finally:
                writer.wait()
            run(f"bill --period {PERIOD} --publish", home, "bill", "--period", PERIOD,
                "--publish", floor="close")
            # the readers' snapshot every writing step publishes, built once more on its own
            (home / "snapshot" / "warehouse.duckdb.source.json").unlink(missing_ok=True)
            readers_view = timed(
                "readers' snapshot (built at the end of every writing step)",
                [python, "-c", "import sys; from orchestration.lib import snapshot; "
                 "snapshot.publish(sys.argv[1], sys.argv[2])",
                 str(home / "warehouse.duckdb"), str(home / "snapshot" / "warehouse.duckdb")],
                home_env(home))
            notes.append(f"Readers' snapshot (built at the end of every writing step; here once "
                         f"more on its own): {readers_view.wall:.1f} s, "
                         f"{readers_view.peak_mib:.0f} MiB peak, "
                         f"{readers_view.wall / bill.wall:.1%} of the close; "
                         f"{(home / 'snapshot' / 'warehouse.duckdb').stat().st_size / 1e6:.1f} MB")
            notes.append(f"Parquet home on disk after publishing: {du(home) / 1e9:.2f} GB "
                         f"(warehouse {(home / 'warehouse.duckdb').stat().st_size / 1e9:.2f} GB;"
                         f" landing files are hard links to the generated ones)")
        if args.spark and "parquet" in files and not args.landing_only:
            main, _ = files["parquet"]
            home = work / "home_spark"
            shutil.rmtree(home, ignore_errors=True)
            link_into(home / "landing", main)
            run("ingest (Parquet; the home billed on Spark)", home, "ingest", floor="copy")
            spark_env = {"METERLINE_ENGINE": "spark"}
            result = timed(f"bill --period {PERIOD} on Spark local[2]",
                           [meterline, "bill", "--period", PERIOD],
                           dict(home_env(home), **spark_env))
            rows.append((result, f"{result.wall / floors['close'].wall:.1f}x close"))
            notes.append("On Spark: " + compare("bill on Spark", home, work / "floor.json"))
            notes.append("On Spark, the slowest dbt nodes of the bill: " + spark_nodes(home))
            notes.append(f"Spark home on disk: {du(home) / 1e9:.2f} GB, of which Spark's "
                         f"files {du(home / 'spark') / 1e9:.2f} GB (the Parquet copies of the "
                         f"sources, Spark's tables and their export to DuckDB); peak RSS is "
                         f"Meterline's and dbt's processes, not Spark's JVM (a grandchild; "
                         f"its heap is capped by spark.driver.memory, 2g)")
        if "jsonl" in files:
            main, _ = files["jsonl"]
            home = work / "home_jsonl"
            link_into(home / "landing", main)
            run("ingest (JSON Lines, gzip)", home, "ingest", floor="read_jsonl")

        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        versions = ", ".join(f"{name} {metadata.version(name)}"
                             for name in ("duckdb", "dbt-core", "dbt-duckdb", "dagster"))
        memory = os.environ.get("METERLINE_MEMORY_LIMIT", "default")
        lines = [
            f"\n## {stamp}: {args.events:,} events, 1,000 customers, four meters "
            f"(benchmarks/bench.py{' --landing-only' if args.landing_only else ''})\n",
            f"Machine: {len(os.sched_getaffinity(0))} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, {versions}; METERLINE_MEMORY_LIMIT {memory}.",
            "",
            *[f"- {note}" for note in notes],
            "",
            "| command | wall s | peak RSS MiB | ratio to floor |",
            "|---|---:|---:|---:|",
            *[f"| {name} | {t.wall:.1f} | {t.peak_mib:.0f} | |" for name, t in (
                ("floor: " + key, value) for key, value in floors.items())],
            *[f"| `meterline {t.label}` | {t.wall:.1f} | {t.peak_mib:.0f} | {ratio} |"
              for t, ratio in rows],
            "",
        ]
        with args.results.open("a") as fh:
            fh.write("\n".join(lines))
        print("\n".join(lines))
        print(f"appended to {args.results}")
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
