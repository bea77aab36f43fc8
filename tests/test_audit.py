"""The audit trail on the demo (about 158,000 events, every aggregation and pricing model, filtered
items): `meterline demo` publishes the last full month, and for every published usage line the
events `marts.fct_billed_events` names re-aggregate, here in Python with decimal.Decimal, to
the line's quantity. No event is named by two lines, and no published event is left unnamed."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, run_meterline


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    home, cwd = root / "home", root / "cwd"
    cwd.mkdir()
    done = run_meterline(["demo"], home=home, catalog=REPO / "seeds", cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "published; documents in" in done.stderr
    # the command ends with os._exit after the atexit callbacks (orchestration/cli/main.py
    # entry): without them multiprocessing's resource tracker reported a leaked semaphore here
    assert "leaked semaphore" not in done.stderr, done.stderr[-1000:]
    return home


def _aggregate(aggregation: str, rows: list[tuple[Decimal, object, str, str | None]]) -> Decimal:
    """CONTRACT.md section 3, written again: rows are (value, event_at, event_id, unique)."""
    if aggregation == "sum":
        return sum((r[0] for r in rows), Decimal(0))
    if aggregation == "count":
        return Decimal(len(rows))
    if aggregation == "max":
        return max(r[0] for r in rows)
    if aggregation == "latest":
        return max(rows, key=lambda r: (r[1], r[2]))[0]
    if aggregation == "unique_count":
        return Decimal(len({r[3] for r in rows if r[3] is not None}))
    raise AssertionError(f"unknown aggregation {aggregation}")


US = timedelta(microseconds=1)
DIVISORS = {"day": 86_400_000_000, "hour": 3_600_000_000}


def _level(aggregation: str, time_unit: str | None, start: datetime, end: datetime,
           rows: list[tuple[Decimal, datetime]]) -> Decimal:
    """CONTRACT.md v1.2 section 3, written again for a level set: rows are (value, event_at) of
    every event of the set before the period's end, earlier periods' included."""
    carried = sum((v for v, at in rows if at < start), Decimal(0))
    changes: dict[datetime, Decimal] = defaultdict(Decimal)
    for v, at in rows:
        if start <= at < end:
            changes[at] += v  # events at the same instant act together
    if aggregation == "running_total":
        return carried + sum(changes.values(), Decimal(0))
    level, since, integral = carried, start, Decimal(0)
    for at in sorted(changes):
        integral += level * ((at - since) // US)
        level, since = level + changes[at], at
    integral += level * ((end - since) // US)
    divisor = DIVISORS.get(time_unit or "", (end - start) // US)
    with localcontext() as ctx:
        ctx.prec = 80
        return (integral / divisor).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)


def test_every_published_line_reaggregates_from_the_events_it_names(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        (period,) = con.execute("select billing_period_start from billing.published_periods"
                                ).fetchone()
        lines = con.execute("""
            select invoice_id, product_item_id, usage_period_start, meter_id,
                   sum(quantity)::varchar
            from billing.published_invoice_lines
            where billing_period_start = ? and line_type = 'usage'
            group by all
        """, [period]).fetchall()
        meters = dict(con.execute("select meter_id, aggregation || '|' || "
                                  "coalesce(unique_dimension, time_unit, '') from catalog.meters"
                                  ).fetchall())
        # level meters: every event of each (customer, item), whatever its period
        level_rows: dict[tuple, list] = defaultdict(list)
        for customer, item, value, event_at in con.execute("""
            select b.customer_id, b.product_item_id, e.value::varchar, e.event_at
            from marts.fct_billed_events b
            join raw.usage_events e using (event_id)
            join catalog.meters m on m.meter_id = e.meter_id
            where m.aggregation in ('time_weighted_sum', 'running_total')
                and b.product_item_id is not null
        """).fetchall():
            level_rows[(customer, item)].append((Decimal(value), event_at))
        events = con.execute("""
            select b.invoice_id, b.product_item_id, b.usage_period_start, e.value::varchar,
                   e.event_at, e.event_id, e.dimensions, b.line_type
            from marts.fct_billed_events b
            join raw.usage_events e using (event_id)
            join billing.published_invoices p using (invoice_id)
            where p.billing_period_start = ?
        """, [period]).fetchall()
    finally:
        con.close()
    assert len(lines) > 30 and len(events) > 10_000, "the demo month is not the demo's"
    named: dict[tuple, list] = defaultdict(list)
    for invoice_id, item, usage_start, value, event_at, event_id, dims, line_type in events:
        assert line_type == "usage", f"{event_id} names a {line_type} line of a published month"
        named[(invoice_id, item, usage_start)].append((Decimal(value), event_at, event_id, dims))
    checked = set()
    levels_checked = 0
    for invoice_id, item, usage_start, meter_id, quantity in lines:
        aggregation, dimension = meters[meter_id].split("|")
        if aggregation in ("time_weighted_sum", "running_total"):
            start = datetime(usage_start.year, usage_start.month, 1, tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
            customer = invoice_id.split("-", 2)[2]
            expected = max(_level(aggregation, dimension, start, end,
                                  level_rows[(customer, item)]), Decimal(0))
            assert Decimal(quantity) == expected, (invoice_id, item, aggregation)
            checked.add((invoice_id, item, usage_start))
            levels_checked += 1
            continue
        rows = [(v, at, eid, json.loads(d).get(dimension) if dimension else None)
                for v, at, eid, d in named.get((invoice_id, item, usage_start), [])]
        expected = max(_aggregate(aggregation, rows), Decimal(0)) if rows else Decimal(0)
        assert Decimal(quantity) == expected, (invoice_id, item, aggregation, len(rows))
        checked.add((invoice_id, item, usage_start))
    assert set(named) <= checked, f"events name lines that do not exist: {set(named) - checked}"
    assert {a for a, _ in (m.split("|") for m in meters.values())} == {
        "sum", "count", "unique_count", "max", "latest", "time_weighted_sum", "running_total"}
    assert levels_checked >= 10, "the demo's GB-month lines were not audited"
    # nothing counted twice: an event is named once (the view's key), by one line group
    assert sum(len(v) for v in named.values()) == len({e[5] for e in events})


def test_explain_accounts_for_a_published_demo_line(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        invoice_id, line_number, quantity = con.execute("""
            select invoice_id, line_number, quantity::varchar from billing.published_invoice_lines
            where line_type = 'usage' and quantity > 0 order by invoice_id, line_number limit 1
        """).fetchone()
    finally:
        con.close()
    shown = run_meterline(["explain", "--invoice", invoice_id, "--line", str(line_number)],
                          home=demo_home, catalog=REPO / "seeds", cwd=demo_home)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert invoice_id in shown.stdout and "event" in shown.stdout.lower()
    assert Decimal(quantity).normalize().to_eng_string() in shown.stdout.replace(",", "")


def test_explain_accounts_for_a_demo_gb_month_line_step_by_step(demo_home):
    """A published demo invoice has a GB-month line (backups, a time_weighted_sum meter), and
    `explain` works it out: the level carried in, the steps, the integral, the divisor and the
    line's own quantity; the figures it prints add up."""
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        invoice_id, line_number, quantity = con.execute("""
            select invoice_id, line_number, quantity::varchar from billing.published_invoice_lines
            where product_item_id = 'backups' and line_type = 'usage' and quantity > 0
            order by invoice_id limit 1
        """).fetchone()
    finally:
        con.close()
    shown = run_meterline(["explain", "--invoice", invoice_id, "--line", str(line_number),
                           "--format", "json"], home=demo_home, catalog=REPO / "seeds",
                          cwd=demo_home)
    assert shown.returncode == 0, shown.stderr[-2000:]
    (line,) = json.loads(shown.stdout)["lines"]
    level = line["level"]
    assert level["aggregation"] == "time_weighted_sum" and level["time_unit"] == "period"
    assert Decimal(level["quantity"]) == Decimal(quantity)
    assert level["step_count"] >= 20 and len(level["steps"]) == 10  # one event a day
    assert Decimal(level["carried_level"]) > 0 and level["carried_event_count"] > 0
    assert level["divisor_us"] == 31 * 86_400_000_000  # October, the whole month
    integral = Decimal(level["integral"])
    parts = [Decimal(level["carried_segment"]["level_x_duration"]),
             Decimal(level["steps_integral"])]
    assert sum(parts) == integral and level["matches_line"] is True
    with localcontext() as ctx:
        ctx.prec = 80
        assert (integral / level["divisor_us"]).quantize(
            Decimal("1e-12"), rounding=ROUND_HALF_UP) == Decimal(quantity)
    text = run_meterline(["explain", "--invoice", invoice_id, "--line", str(line_number)],
                         home=demo_home, catalog=REPO / "seeds", cwd=demo_home).stdout
    assert "carried into" in text and "one per distinct timestamp" in text
    assert f"= {Decimal(quantity).normalize()}" in text
