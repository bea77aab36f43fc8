"""The explorers as a person uses them (issue 16): on a real demo home, `meterline serve` in a
subprocess, the operator token issued by `meterline token operator`, the pages in Debian's
headless Chromium (Playwright; skipped without it unless METERLINE_REQUIRE_BROWSER=1).

Checked: every operator page is 401 until the login form takes the token; the overview's
this-month-against-last-month figures equal `marts.fct_revenue_monthly` queried on the readers'
snapshot; the usage page draws a Plotly chart whose table equals `marts.fct_usage_daily`; and
the demo's promise: drop a new event file into landing/, run `ingest` alone (it refreshes the
open months' drafts, docs/contract.md E19; every page answering while it runs), and the page
shows this month's usage grown and this month's estimate, without a `bill`. Screenshots in
test-artifacts/."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import duckdb
import pytest

from orchestration.lib import clock, periods
from orchestration.lib.readers import format_money, format_quantity
from tests.conftest import meterline_bin, run_meterline
from tests.test_browser import (  # noqa: F401  (fixtures: Debian's chromium, one browser)
    browser,
    chromium_path,
    free_port,
    screenshot,
)
from tests.web_serve import Demo, make_demo, serve_env, serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the dev extra installs it; chromium_path skips
    Browser = Page = None

PAGES = ["/operator/", "/operator/usage", "/operator/revenue", "/operator/quarantine",
         "/operator/unbilled"]
CUSTOMER, METER, ITEM = "acme_corp", "api_calls", "api_calls"
NEW_VALUES = (Decimal("1000"), Decimal("234.5"))  # the new file's events, this UTC day


@pytest.fixture(scope="module")
def demo(chromium_path: str, tmp_path_factory) -> Demo:  # noqa: F811
    """`meterline demo` in a new home (about 3-4 minutes)."""
    return make_demo(tmp_path_factory.mktemp("explorers"))


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[str]:
    """`meterline serve` on a free port; its base URL once /healthz answers."""
    port = free_port()
    with serving(demo, port) as (base, log_path):
        text = log_path.read_text()
        assert f"http://127.0.0.1:{port}/operator/" in text and "no operator token yet" in text
        yield base


@pytest.fixture(scope="module")
def token(demo: Demo, server: str) -> str:
    """Issued after the server started: it reads the hash on every request."""
    done = run_meterline(["token", "operator"], home=demo.home, catalog=demo.catalog,
                         cwd=demo.cwd)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("mlo_") and secret not in done.stderr
    assert secret not in (demo.home / "access" / "operator.json").read_text()
    return secret


def snapshot_sql(demo: Demo, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(demo.home / "snapshot" / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def months() -> tuple:
    this = clock.today().replace(day=1)
    return this, periods.previous_period(this)


def expected_totals(demo: Demo) -> dict[str, tuple[str, str, str]]:
    """Per currency, the overview's (this month, last month, change) text from SQL."""
    this, last = months()
    found = {}
    for currency, minor, this_amount, last_amount in snapshot_sql(demo, """
            select r.currency, any_value(c.minor_unit),
                   sum(r.amount) filter (where r.revenue_month = ?),
                   sum(r.amount) filter (where r.revenue_month = ?)
            from marts.fct_revenue_monthly r
            join reference.iso_4217_currencies c on c.currency = r.currency
            where r.revenue_month in (?, ?)
            group by r.currency""", [this, last, this, last]):
        change = (this_amount or Decimal(0)) - (last_amount or Decimal(0))
        found[currency] = (
            "none yet" if this_amount is None else format_money(this_amount, minor),
            "none" if last_amount is None else format_money(last_amount, minor),
            format_money(change, minor))
    return found


def shown_totals(page: Page) -> dict[str, tuple[str, str, str]]:
    found = {}
    for tr in page.locator("#month-totals tbody tr").all():
        cell = lambda field, tr=tr: tr.locator(f'td[data-field="{field}"]').inner_text().strip()  # noqa: E731
        found[tr.get_attribute("data-currency")] = (cell("this_amount"), cell("last_amount"),
                                                    cell("change"))
    return found


def login(page: Page, base: str, token: str) -> None:
    answer = page.goto(f"{base}/operator/")
    assert answer.status == 401
    page.fill("#token", token)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base}/operator/")


def usage_rows(page: Page) -> dict[tuple[str, str], str]:
    return {(tr.get_attribute("data-date"), tr.get_attribute("data-item")):
            tr.locator('td[data-field="quantity"]').inner_text().strip()
            for tr in page.locator("#usage-table tbody tr").all()}


def expected_usage(demo: Demo, customer: str | None = None) -> dict[tuple[str, str], str]:
    rows = snapshot_sql(demo, """
        select usage_date, coalesce(product_item_id, '(unbilled)'), sum(quantity)
        from marts.fct_usage_daily
        where meter_id = ? and (? is null or customer_id = ?)
        group by all""", [METER, customer, customer])
    return {(d.isoformat(), item): format_quantity(q) for d, item, q in rows}


def chart_drawn(page: Page) -> int:
    plot = page.locator("#usage-chart.js-plotly-plot")
    expect(plot).to_be_visible(timeout=20_000)
    traces = plot.locator("g.trace, .scatterlayer .trace")
    expect(traces.first).to_be_attached(timeout=20_000)
    return traces.count()


# --------------------------------------------------------------------------- tests
def test_every_operator_page_needs_the_token(server: str, browser: Browser, token: str):  # noqa: F811
    page = browser.new_page()
    try:
        for path in PAGES + ["/operator/docs/", "/operator/login"]:
            answer = page.goto(server + path)
            assert answer.status == 401, path
            expect(page.locator("form.login #token")).to_be_visible()
        page.fill("#token", "mlo_not_the_token")
        page.click("form.login button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("not the current operator token")
        screenshot(page, "explorer-login.png")
    finally:
        page.close()


def test_overview_and_usage_show_the_marts_numbers(demo: Demo, server: str, browser: Browser,  # noqa: F811
                                                   token: str):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        login(page, server, token)
        expected = expected_totals(demo)
        assert expected, "the demo has revenue this month or last"
        assert shown_totals(page) == expected
        built_at = snapshot_sql(demo, "select max(built_at) from main.snapshot_about")[0][0]
        expect(page.locator("#freshness")).to_contain_text(
            f"Data as of {built_at:%Y-%m-%d %H:%M:%S} UTC")
        screenshot(page, "explorer-overview.png", full_page=True)

        page.goto(f"{server}/operator/usage?meter={METER}")
        assert chart_drawn(page) >= 1
        assert usage_rows(page) == expected_usage(demo)
        # the filters, through the form
        page.select_option("select[name=customer]", CUSTOMER)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**customer={CUSTOMER}**")
        assert chart_drawn(page) >= 1
        assert usage_rows(page) == expected_usage(demo, CUSTOMER)
        screenshot(page, "explorer-usage.png")

        page.goto(f"{server}/operator/revenue")
        expect(page.locator(".js-plotly-plot .barlayer .trace").first).to_be_attached(
            timeout=20_000)
        screenshot(page, "explorer-revenue.png")
        for path in ("/operator/quarantine", "/operator/unbilled"):
            assert page.goto(server + path).status == 200
        # logging out locks the pages again
        page.click("a.logout")
        assert page.goto(f"{server}/operator/").status == 401
    finally:
        context.close()


def test_a_new_event_file_grows_this_months_usage_and_estimate(demo: Demo, server: str,
                                                               browser: Browser, token: str):  # noqa: F811
    this, _ = months()
    today = clock.today()
    at = f"{today.isoformat()}T00:30:00Z"  # before the pinned clock's now, this UTC day
    before = expected_usage(demo, CUSTOMER).get((today.isoformat(), ITEM), "0")
    lines = [json.dumps({"event_id": f"evt_explorer_{i}", "customer_id": CUSTOMER,
                         "meter": METER, "value": str(v), "timestamp": at})
             for i, v in enumerate(NEW_VALUES)]
    (demo.home / "landing" / f"explorer_new_{today:%Y%m%d}.jsonl").write_text(
        "\n".join(lines) + "\n")

    # every page answers while `ingest` lands the file and refreshes this month's draft
    for args in (["ingest"],):
        proc = subprocess.Popen([meterline_bin(), *args],
                                env=dict(serve_env(demo), METERLINE_INGEST_REFRESH="on"),
                                cwd=demo.cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answered = 0
        while proc.poll() is None:
            for path in PAGES:
                request = urllib.request.Request(server + path,
                                                 headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200, (args, path)
                    answered += 1
            time.sleep(0.2)
        out, err = proc.communicate()
        assert proc.returncode == 0, (args, out[-2000:], err[-3000:])
        assert f"{periods.period_key(this)} refreshed" in err, err[-3000:]
        assert answered >= len(PAGES), f"no page was asked while {args} ran"

    grown = expected_usage(demo, CUSTOMER)[(today.isoformat(), ITEM)]
    assert Decimal(grown) == Decimal(before) + sum(NEW_VALUES)

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        login(page, server, token)
        totals = expected_totals(demo)
        assert shown_totals(page) == totals
        this_usd = totals["USD"][0]
        assert this_usd != "none yet", "this month's estimate is there after the ingest"
        expect(page.locator('#month-totals tr[data-currency="USD"]')).to_contain_text("estimate")
        screenshot(page, "explorer-overview-after-new-file.png", full_page=True)

        page.goto(f"{server}/operator/usage?meter={METER}&customer={CUSTOMER}")
        chart_drawn(page)
        rows = usage_rows(page)
        assert rows[(today.isoformat(), ITEM)] == grown
        assert rows == expected_usage(demo, CUSTOMER)
        drawn = page.evaluate("""() => document.getElementById('usage-chart').data
            .map(t => [t.name, t.x, t.y])""")
        points = {(x, y) for _, xs, ys in drawn for x, y in zip(xs, ys, strict=True)}
        assert (today.isoformat(), grown) in points
        screenshot(page, "explorer-usage-after-new-file.png")
    finally:
        context.close()
