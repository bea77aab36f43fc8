"""The explorers' month to date (issue 16): an `ingest` that lands events refreshes the open
months' drafts (month_to_date_job), so marts.fct_usage_daily and the estimate in
marts.fct_revenue_monthly follow the landed events without a `bill`; the estimate is exactly the
draft `bill` then builds from the same events. Real CLI, Dagster, dbt and DuckDB."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PINNED_NOW, run_meterline
from tests.handmade import CATALOG

pytestmark = pytest.mark.e2e

CURRENT = date.fromisoformat(PINNED_NOW[:7] + "-01")
PREVIOUS = date(CURRENT.year - (CURRENT.month == 1), (CURRENT.month - 2) % 12 + 1, 1)
CUR, PREV = CURRENT.strftime("%Y-%m"), PREVIOUS.strftime("%Y-%m")
REFRESH = {"METERLINE_INGEST_REFRESH": "on"}


def _event(event_id: str, customer: str, meter: str, at: str, value) -> dict:
    return {"event_id": event_id, "customer_id": customer, "meter": meter, "value": value,
            "timestamp": at}


# hm_usd calls: graduated 1..1000 @0.01; hm_eur seats: 9 EUR each, commitment 50 EUR
FIRST = [_event("p1", "hm_usd", "calls", f"{PREV}-10T12:00:00Z", 700),
         _event("c1", "hm_usd", "calls", f"{CUR}-01T00:30:00Z", 300),
         _event("c2", "hm_eur", "seats", f"{CUR}-01T00:10:00Z", 3)]
MORE = [_event("c3", "hm_usd", "calls", f"{CUR}-01T00:40:00Z", 200)]
LATE = [_event("p2", "hm_usd", "calls", f"{PREV}-28T23:00:00Z", 50)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "landing").mkdir(parents=True)
    (tmp_path / "catalog").mkdir()
    (tmp_path / "cwd").mkdir()
    for name, text in CATALOG.items():
        (tmp_path / "catalog" / name).write_text(text)
    return tmp_path


def _land(home: Path, name: str, events: list[dict]) -> None:
    (home / "home" / "landing" / name).write_text(
        "".join(json.dumps(event) + "\n" for event in events))


def _cli(home: Path, *args: str, env: dict | None = None):
    done = run_meterline(list(args), home=home / "home", catalog=home / "catalog",
                         cwd=home / "cwd", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _query(home: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(home / "home" / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _revenue(home: Path) -> list[tuple]:
    return _query(home, "select revenue_month, customer_id, product_item_id, currency, "
                  "amount::varchar, adjustment_amount::varchar, published_amount, is_estimate, "
                  "invoice_id, line_count from marts.fct_revenue_monthly order by all")


def _day(home: Path, customer: str, day: date) -> list[tuple]:
    return _query(home, "select product_item_id, aggregation, event_count, quantity::varchar "
                  "from marts.fct_usage_daily where customer_id = ? and usage_date = ? "
                  "order by all", [customer, day])


def test_ingest_refreshes_the_open_months_and_the_estimate_is_the_bills_draft(home):
    # landing only: nothing is drafted, the explorers' marts do not exist yet
    _land(home, "first.jsonl", FIRST)
    done = _cli(home, "ingest")
    assert "refreshing" not in done.stderr

    # the next ingest lands this month's events only: it refreshes this month, and not the
    # previous one (an event never changes an earlier month's draft)
    _land(home, "more.jsonl", MORE)
    done = _cli(home, "ingest", env=REFRESH)
    assert f"{CUR} refreshed" in done.stderr, done.stderr
    assert f"refreshing {PREV}" not in done.stderr
    assert {row[0] for row in _revenue(home)} == {CURRENT}

    # a late event of the previous month (not published) refreshes it and this month
    _land(home, "late.jsonl", LATE)
    done = _cli(home, "ingest", env=REFRESH)
    assert f"{PREV} refreshed" in done.stderr and f"{CUR} refreshed" in done.stderr, done.stderr
    revenue = _revenue(home)
    by_key = {(row[0], row[1], row[2]): row for row in revenue}
    # 300 + 200 calls this month at 0.01; 700 + 50 calls last month
    assert by_key[(CURRENT, "hm_usd", "calls_item")][4] == "5.0000"
    assert by_key[(PREVIOUS, "hm_usd", "calls_item")][4] == "7.5000"
    # 3 seats x 9 EUR, topped up to the 50 EUR commitment (no item)
    assert by_key[(CURRENT, "hm_eur", "seats_item")][4] == "27.0000"
    assert by_key[(CURRENT, "hm_eur", None)][4] == "23.0000"
    assert all(row[7] is True and row[6] is None for row in revenue)  # estimates, unpublished
    assert _day(home, "hm_usd", CURRENT) == [("calls_item", "sum", 2, "500.000000000000")]
    # the readers' snapshot serves them too (the explorers read it while a writer runs)
    snap = duckdb.connect(str(home / "home" / "snapshot" / "warehouse.duckdb"), read_only=True)
    try:
        assert snap.execute("select count(*) from marts.fct_revenue_monthly").fetchone()[0] \
            == len(revenue)
    finally:
        snap.close()

    # `bill` drafts exactly the estimate from the same events
    _cli(home, "bill", "--period", CUR)
    assert _revenue(home) == revenue

    # an ingest that lands nothing new refreshes nothing
    done = _cli(home, "ingest", env=REFRESH)
    assert "refreshing" not in done.stderr


def test_the_sensor_refreshes_the_open_months_after_an_ingest_it_did_not_start(tmp_path,
                                                                                home_env):
    """The landing sensor's ingest (or the UI's) is followed by month_to_date_refresh: a request
    per open month, run as the daemon would; an ingest the CLI started, or one that landed
    nothing, asks for nothing."""
    import dagster as dg

    from orchestration.definitions import defs
    from tests.handmade import make_home

    home, cat, _ = make_home(tmp_path)
    instance = home_env(home, cat)
    ingest = defs.resolve_job_def("ingest_job")
    sensor = defs.resolve_sensor_def("month_to_date_refresh")

    def tick(tags: dict) -> object:
        result = ingest.execute_in_process(
            instance=instance, tags=tags,
            run_config={"ops": {"landed_events": {"config": {"paths": []}}}})
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        success = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success[0].dagster_event,
            dagster_instance=instance, dagster_run=run, repository_def=defs.get_repository_def())
        return sensor(context)

    requests = tick({"meterline/source": "sensor"})
    assert [r.partition_key for r in requests] == [PREV, CUR]  # nothing published yet
    assert all(r.tags["meterline/source"] == "sensor" for r in requests)
    refresh = defs.resolve_job_def(sensor.job_name)
    for request in requests:
        result = refresh.execute_in_process(instance=instance, partition_key=request.partition_key,
                                            tags=request.tags, raise_on_error=False)
        assert result.success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        months = {row[0] for row in con.execute(
            "select distinct revenue_month from marts.fct_revenue_monthly").fetchall()}
    finally:
        con.close()
    assert months == {PREVIOUS, CURRENT}

    # nothing new in landing/: nothing to refresh
    assert isinstance(tick({"meterline/source": "sensor"}), dg.SkipReason)
    # the CLI's own ingest refreshes the months itself
    (home / "landing" / "more.jsonl").write_text(json.dumps(MORE[0]) + "\n")
    skipped = tick({"meterline/source": "cli"})
    assert isinstance(skipped, dg.SkipReason) and "CLI" in skipped.skip_message
