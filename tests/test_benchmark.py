"""The benchmark's own claims, at a size a test can afford (benchmarks/, issue 14):

- its hand-written close floor and Meterline agree on every invoice total to the cent, on events
  with skew, duplicates, conflicting duplicates, bad rows and late events;
- billing again after 1% more events gives, row for row, what one build of all the events
  gives (the second `bill` may reuse work, never change the answer).

Real CLI, real dbt, real DuckDB; the clock is pinned after October's grace period."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import generate  # noqa: E402

EVENTS = 40_000
PINNED_NOW = "2026-11-03T00:00:00Z"
# what a bill decides; landing times and run ids differ between two homes by design
MART_COLUMNS = {
    "fct_meter_usage": "customer_id, meter_id, billing_period_start, billing_period_end, "
                       "quantity, event_count",
    "fct_unbilled_usage": "customer_id, meter_id, billing_period_start, billing_period_end, "
                          "quantity, event_count",
    "fct_invoices": "invoice_id, customer_id, billing_period_start, billing_period_end, "
                    "currency, subtotal, total, line_count, status",
    "fct_invoice_lines": "invoice_id, line_number, customer_id, billing_period_start, "
                         "billing_period_end, usage_period_start, usage_period_end, line_type, "
                         "product_item_id, meter_id, description, quantity, unit_price, tier, "
                         "amount, currency, rate_id",
    "fct_billed_events": "event_id, customer_id, meter_id, event_at, usage_period_start, "
                         "product_item_id, invoice_id, line_type",
}


def _meterline(home: Path, catalog: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env.update(METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(catalog),
               METERLINE_NOW=PINNED_NOW)
    done = subprocess.run([str(Path(sys.executable).with_name("meterline")), *args], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _floor(target: Path, *files: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "floors.py"), "close",
                    str(target), *map(str, files)], check=True)
    return json.loads(target.read_text())


def _rows(home: Path, period: str = "2026-10-01") -> dict[str, list[tuple]]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {table: con.execute(
            f"select {columns} from marts.{table} where "
            f"{'usage_period_start' if table == 'fct_billed_events' else 'billing_period_start'}"
            f" = date '{period}' order by all").fetchall()
            for table, columns in MART_COLUMNS.items()}
    finally:
        con.close()


def _totals(rows: dict[str, list[tuple]]) -> dict[str, str]:
    return {r[1]: f"{r[6]:.2f}" for r in rows["fct_invoices"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    catalog = generate.write_catalog(folder / "catalog")
    main = generate.write_events(folder / "files" / "events_000.parquet", 0, EVENTS, "parquet")
    more = generate.write_events(folder / "files" / "events_more.parquet", EVENTS,
                                 EVENTS + EVENTS // 100, "parquet")
    return folder, catalog, main, more


def test_the_events_have_what_the_benchmark_promises(files):
    _, _, main, more = files
    con = duckdb.connect()
    stats = con.execute(f"""
        select count(*), count(distinct event_id), count(*) filter (where timestamp is null),
               count(*) filter (where customer_id = 'nobody'),
               count(*) filter (where meter = 'no_such_meter'),
               count(*) filter (where timestamp < timestamptz '2026-10-01 00:00:00+00'),
               count(distinct meter), max(customer_count) * 1.0 / count(*)
        from read_parquet(['{main}', '{more}'])
        cross join (select max(n) as customer_count from (
            select count(*) as n from read_parquet(['{main}', '{more}']) group by customer_id))
    """).fetchone()
    rows, ids, no_time, nobody, no_meter, late, meters, top_share = stats
    assert rows == 40_400
    assert 0.005 < (rows - ids) / rows < 0.02  # about 1% repeat an earlier id
    assert no_time > 0 and nobody > 0 and no_meter > 0
    assert 0.002 < late / rows < 0.01  # about 0.5% dated in September
    assert meters == 5  # four real meters and the unknown one
    assert 0.05 < float(top_share) < 0.2  # skewed: the largest customer sends about 10%


def test_meterline_equals_the_close_floor_and_billing_again_equals_one_full_build(
        files, tmp_path):
    folder, catalog, main, more = files
    incremental = tmp_path / "incremental"
    (incremental / "landing").mkdir(parents=True)
    os.link(main, incremental / "landing" / main.name)
    _meterline(incremental, catalog, "ingest")
    _meterline(incremental, catalog, "bill", "--period", "2026-10")
    first = _rows(incremental)
    assert _totals(first) == _floor(tmp_path / "floor.json", main)
    assert len(first["fct_invoices"]) == generate.CUSTOMERS

    os.link(more, incremental / "landing" / more.name)
    _meterline(incremental, catalog, "ingest")
    _meterline(incremental, catalog, "bill", "--period", "2026-10")
    again = _rows(incremental)
    assert _totals(again) == _floor(tmp_path / "floor_more.json", main, more)
    assert _totals(again) != _totals(first)  # the 1% file changed some invoices

    full = tmp_path / "full"
    (full / "landing").mkdir(parents=True)
    for path in (main, more):
        os.link(path, full / "landing" / path.name)
    _meterline(full, catalog, "ingest")
    _meterline(full, catalog, "bill", "--period", "2026-10")
    rebuilt = _rows(full)
    for table in MART_COLUMNS:
        assert again[table] == rebuilt[table], table
    assert len(rebuilt["fct_billed_events"]) > 30_000
