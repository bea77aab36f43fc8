"""The customer portal as a customer uses it (issue 17 item 6): on a real demo home,
`meterline serve` in a subprocess, a token issued by `meterline portal token issue` for one demo
customer, the pages in Debian's headless Chromium (Playwright; skipped without it unless
METERLINE_REQUIRE_BROWSER=1).

Checked: the sign-in link (the token in the URL fragment) signs in and leaves no token in the
address bar, with an HttpOnly SameSite=Strict cookie; the overview's usage and estimate equal
the marts queried on the readers' snapshot, and its charts draw; a published invoice's lines
equal the marts and its JSON document downloads, byte for byte the published file; a line's
audit trail shows its events; signing out locks the pages, and so does revoking the token.
Screenshots in test-artifacts/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import duckdb
import pytest

from orchestration.lib import clock, periods
from orchestration.lib.readers import format_money, format_quantity
from tests.conftest import run_meterline
from tests.test_browser import (  # noqa: F401  (fixtures: Debian's chromium, one browser)
    browser,
    chromium_path,
    free_port,
    screenshot,
)
from tests.web_serve import Demo, make_demo, serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the dev extra installs it; chromium_path skips
    Browser = Page = None

CUSTOMER, OTHER = "acme_corp", "globex"


@pytest.fixture(scope="module")
def demo(chromium_path: str, tmp_path_factory) -> Demo:  # noqa: F811
    """`meterline demo` in a new home (about 3-4 minutes)."""
    return make_demo(tmp_path_factory.mktemp("portal"))


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[str]:
    """`meterline serve` on a free port; its base URL once /healthz answers."""
    port = free_port()
    with serving(demo, port) as (base, log_path):
        yield base


def portal(demo: Demo, *args: str) -> subprocess.CompletedProcess:
    done = run_meterline(["portal", "token", *args], home=demo.home, catalog=demo.catalog,
                         cwd=demo.cwd)
    assert done.returncode == 0, done.stderr
    return done


def issue(demo: Demo, server: str) -> tuple[str, str, str]:
    """(secret, the sign-in link pointed at this server, token id)."""
    done = portal(demo, "issue", CUSTOMER, "--expires", "30")
    secret, link = done.stdout.split()
    token_id = done.stderr.split("portal token ", 1)[1].split()[0]
    return secret, link.replace("http://127.0.0.1:8080", server), token_id


def snapshot_sql(demo: Demo, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(demo.home / "snapshot" / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def minor_unit(demo: Demo, currency: str) -> int:
    return snapshot_sql(demo, "select minor_unit from reference.iso_4217_currencies "
                        "where currency = ?", [currency])[0][0]


def open_months(demo: Demo) -> list:
    published = {r[0] for r in snapshot_sql(
        demo, "select billing_period_start from marts.fct_invoices where customer_id = ? "
        "and status = 'published'", [CUSTOMER])}
    return periods.open_months(clock.today(), published)


def expected_usage(demo: Demo, month) -> dict[tuple[str, str], tuple[str, str, str]]:
    found = {}
    for item, meter, days, events, additive, aggregation, total, peak, unit in snapshot_sql(
            demo, """
            select coalesce(d.product_item_id, '(unbilled)'), d.meter_id,
                   count(distinct usage_date), sum(event_count), bool_and(is_additive),
                   any_value(d.aggregation), sum(quantity), max(quantity), any_value(m.unit)
            from marts.fct_usage_daily d left join catalog.meters m using (meter_id)
            where customer_id = ? and billing_period_start = ?
            group by all""", [CUSTOMER, month]):
        figure = (f"{format_quantity(total)} {unit}" if additive else
                  f"{format_quantity(peak)} {unit}" if aggregation == "max"
                  else "see the estimate")
        found[(item, meter)] = (str(days), str(events), figure)
    return found


def shown_usage(page: Page, month) -> dict[tuple[str, str], tuple[str, str, str]]:
    found = {}
    for tr in page.locator(f'table.usage-table[data-month="{month:%Y-%m}"] tbody tr').all():
        cell = lambda f, tr=tr: tr.locator(f'td[data-field="{f}"]').inner_text().strip()  # noqa: E731
        found[(tr.get_attribute("data-item"), tr.get_attribute("data-meter"))] = (
            cell("days"), cell("event_count"), " ".join(cell("month_quantity").split()))
    return found


def expected_lines(demo: Demo, invoice_id: str) -> dict[str, str]:
    rows = snapshot_sql(demo, "select line_number, amount, currency from marts.fct_invoice_lines "
                        "where invoice_id = ? and customer_id = ?", [invoice_id, CUSTOMER])
    return {str(n): format_money(amount, minor_unit(demo, cur)) for n, amount, cur in rows}


def shown_lines(page: Page, invoice_id: str) -> dict[str, str]:
    return {tr.get_attribute("data-line"):
            tr.locator('td[data-field="amount"]').inner_text().strip()
            for tr in page.locator(f'table.invoice-lines[data-invoice="{invoice_id}"] '
                                   f'tbody tr').all()}


def sign_in_by_link(page: Page, server: str, link: str) -> None:
    page.goto(link)
    page.wait_for_url(f"{server}/portal/")
    assert "token" not in page.url


# --------------------------------------------------------------------------- tests
def test_a_customer_signs_in_by_link_and_sees_exactly_its_figures(
        demo: Demo, server: str, browser: Browser, tmp_path):  # noqa: F811
    secret, link, _ = issue(demo, server)
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    try:
        assert page.goto(f"{server}/portal/").status == 401
        expect(page.locator("#sign-in #token")).to_be_visible()
        sign_in_by_link(page, server, link)
        assert page.evaluate("() => window.location.hash") == ""
        cookie = next(c for c in context.cookies() if c["name"] == "meterline_portal")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == \
            "/portal"
        expect(page.locator("#customer-id")).to_have_text(CUSTOMER)
        months = open_months(demo)
        drawn = 0
        for month in months:
            usage = expected_usage(demo, month)
            if not usage and month != clock.today().replace(day=1):
                continue
            assert shown_usage(page, month) == usage, month
            drafts = snapshot_sql(demo, "select invoice_id from marts.fct_invoices where "
                                  "customer_id = ? and billing_period_start = ? and status = "
                                  "'draft'", [CUSTOMER, month])
            if drafts:
                assert shown_lines(page, drafts[0][0]) == expected_lines(demo, drafts[0][0])
                expect(page.locator(f"#estimate-note-{month:%Y-%m}")).to_contain_text("estimate")
            drawn += len(usage)
        assert drawn, "the demo customer has usage in an open month"
        charts = page.locator(".portal-chart.js-plotly-plot")
        expect(charts.first).to_be_visible(timeout=20_000)
        expect(charts.first.locator(".scatterlayer .trace").first).to_be_attached(
            timeout=20_000)
        assert charts.count() == drawn
        body = page.locator("main").inner_text()
        assert OTHER not in body
        screenshot(page, "portal-overview.png", full_page=True)

        # a published invoice: lines equal the marts, its document downloads
        invoice_id, month = snapshot_sql(
            demo, "select invoice_id, billing_period_start from marts.fct_invoices where "
            "customer_id = ? and status = 'published' order by billing_period_start desc "
            "limit 1", [CUSTOMER])[0]
        page.click("text=Invoices")
        page.wait_for_url(f"{server}/portal/invoices")
        page.click(f'tr[data-invoice="{invoice_id}"] a')
        page.wait_for_url(f"{server}/portal/invoices/{invoice_id}")
        assert shown_lines(page, invoice_id) == expected_lines(demo, invoice_id)
        screenshot(page, "portal-invoice.png", full_page=True)
        with page.expect_download() as info:
            page.click('a[data-document="json"]')
        download = info.value
        assert download.suggested_filename == f"{invoice_id}.json"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert saved.read_bytes() == (demo.home / "invoices" / f"{month:%Y-%m}"
                                      / f"{invoice_id}.json").read_bytes()

        # a line's audit trail
        page.click('tr[data-line="1"] a')
        page.wait_for_url(f"{server}/portal/invoices/{invoice_id}/lines/1")
        count = snapshot_sql(demo, "select max(event_count) from marts.fct_invoice_line_events e"
                             " join marts.fct_invoice_lines l using (invoice_id, product_item_id,"
                             " usage_period_start, line_type) where invoice_id = ? and "
                             "l.line_number = 1", [invoice_id])[0][0]
        if count is not None:
            expect(page.locator("#event-count")).to_contain_text(f"{count} event(s)")
        screenshot(page, "portal-line.png", full_page=True)

        # signing out locks the pages
        page.click("#sign-out")
        page.wait_for_url(f"{server}/portal/login")
        assert page.goto(f"{server}/portal/").status == 401
        assert page.goto(f"{server}/portal/invoices/{invoice_id}").status == 401
    finally:
        context.close()


def test_a_revoked_token_locks_the_customer_out(demo: Demo, server: str,
                                               browser: Browser):  # noqa: F811
    secret, link, token_id = issue(demo, server)
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in_by_link(page, server, link)
        assert page.goto(f"{server}/portal/invoices").status == 200
        portal(demo, "revoke", token_id)
        assert page.goto(f"{server}/portal/invoices").status == 401
        expect(page.locator("#sign-in #token")).to_be_visible()
        # the form refuses it too
        page.fill("#token", secret)
        page.click("#sign-in button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("does not open the portal")
        screenshot(page, "portal-revoked.png")
    finally:
        context.close()
