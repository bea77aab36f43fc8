"""The explorer app (`meterline serve`, orchestration/web/), fast tier: the real app under uvicorn
on a free 127.0.0.1 port, real HTTP (urllib, http.client), on a small hand-made DuckDB file with
the tables the pages read (the readers' snapshot of /work/notes/marts_spec.md, docs/contract.md
E19). No browser: tests/test_browser_explorers.py drives Chromium on a real demo home.

The hand-worked month (this month M, a month-to-date estimate; last month L, published):
    USD  M: c_alpha api 10.5 + storage 2.25 = 12.75, c_beta api 100 -> 112.75
         L: c_alpha api 20, c_beta api 50.1 + top-up 9.9 = 60   ->  80.00     change 32.75
    JPY  M: c_kumo api 1500;  L: c_kumo api 1000                            change 500
    EUR  only two months before M: c_euro api 7.01 (not in the M-against-L table)
Top by revenue (latest month per currency): USD c_beta 100.00, c_alpha 12.75; EUR (month M-2)
c_euro 7.01. Growth USD: c_beta 100 - 60 = 40.00, c_alpha 12.75 - 20 = -7.25."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
import uvicorn

from orchestration.cli import main as cli
from orchestration.lib import clock, periods
from orchestration.lib.readers import format_money, format_quantity
from orchestration.lib.settings import Settings, load
from orchestration.web import auth
from orchestration.web.app import create_app

THIS = clock.today().replace(day=1)
LAST = periods.previous_period(THIS)
BEFORE = periods.previous_period(LAST)
DAY1, DAY2 = LAST.replace(day=3), THIS  # two UTC days with usage
BUILT_AT = "2026-11-30 23:59:58.123456+00"

OPERATOR_PAGES = ["/operator/", "/operator/usage", "/operator/usage?meter=storage_gb",
                  "/operator/revenue", "/operator/quarantine", "/operator/unbilled",
                  "/operator/docs/", "/operator/docs/index.html", "/operator/logout",
                  "/operator/login", "/operator/no-such-page", "/operator", "/anything-else"]
DATA_PAGES = ["/operator/", "/operator/usage", "/operator/revenue", "/operator/quarantine",
              "/operator/unbilled"]

SCHEMA = """
create schema marts; create schema catalog; create schema reference; create schema raw;
create schema billing;
create table main.snapshot_about (built_at timestamptz, source json);
create table reference.iso_4217_currencies (currency varchar, minor_unit integer,
                                            currency_name varchar);
create table catalog.meters (meter_id varchar, display_name varchar, unit varchar,
                             aggregation varchar, unique_dimension varchar, time_unit varchar);
create table catalog.product_items (product_item_id varchar, display_name varchar,
                                    meter_id varchar, dimension_filter varchar);
create table marts.dim_customers (customer_id varchar, customer_name varchar, currency varchar,
                                  active_from date, active_to date);
create table marts.fct_usage_daily (usage_date date, billing_period_start date,
    customer_id varchar, meter_id varchar, product_item_id varchar, aggregation varchar,
    event_count bigint, quantity decimal(38, 12), is_additive boolean);
create table marts.fct_revenue_monthly (revenue_month date, customer_id varchar,
    product_item_id varchar, currency varchar, amount decimal(38, 4),
    adjustment_amount decimal(38, 4), published_amount decimal(38, 4), is_estimate boolean,
    invoice_id varchar, invoice_number varchar, usage_accrued_to timestamptz, line_count bigint);
create table marts.fct_invoices (invoice_id varchar, status varchar,
                                 usage_accrued_to timestamptz);
create table marts.fct_unbilled_usage (customer_id varchar, meter_id varchar,
    billing_period_start date, billing_period_end date, quantity decimal(38, 12),
    event_count bigint);
create table raw.quarantined_events (source_file varchar, row_number bigint, raw_row varchar,
    reason varchar, landed_at timestamptz, resolved_at timestamptz);
create table raw.landed_files (file_sha256 varchar, source_file varchar, rows_landed bigint,
                               landed_at timestamptz);
create table raw.ingest_runs (ingest_run_id varchar, started_at timestamptz,
                              finished_at timestamptz);
create table billing.reconciliation_results (run_id varchar, checked_at timestamptz);
create table billing.published_periods (billing_period_start date, published_at timestamptz);
"""


def _data(this: date, last: date, before: date, day1: date, day2: date) -> list[str]:
    q = "'"
    d = lambda x: f"date {q}{x.isoformat()}{q}"  # noqa: E731
    return [
        f"insert into main.snapshot_about values (timestamptz '{BUILT_AT}', '{{}}')",
        "insert into reference.iso_4217_currencies values ('USD', 2, 'US Dollar'), "
        "('JPY', 0, 'Yen'), ('EUR', 2, 'Euro')",
        "insert into catalog.meters values ('api_calls', 'API calls', 'call', 'sum', null, null),"
        " ('storage_gb', 'Storage (peak)', 'GB', 'max', null, null)",
        "insert into catalog.product_items values ('api', 'API calls', 'api_calls', null), "
        "('storage', 'Storage', 'storage_gb', null)",
        "insert into marts.dim_customers values ('c_alpha', 'Alpha & Sons', 'USD', null, null), "
        "('c_beta', 'Beta <Corp>', 'USD', null, null), ('c_kumo', 'Kumo KK', 'JPY', null, null),"
        " ('c_euro', 'Euro SA', 'EUR', null, null)",
        # usage: api_calls day1 alpha 5 + beta 7 = 12; day2 alpha 3 (api) and 4 unbilled
        f"""insert into marts.fct_usage_daily values
            ({d(day1)}, {d(day1.replace(day=1))}, 'c_alpha', 'api_calls', 'api', 'sum', 5, 5, true),
            ({d(day1)}, {d(day1.replace(day=1))}, 'c_beta', 'api_calls', 'api', 'sum', 7, 7, true),
            ({d(day2)}, {d(day2.replace(day=1))}, 'c_alpha', 'api_calls', 'api', 'sum', 3, 3, true),
            ({d(day2)}, {d(day2.replace(day=1))}, 'c_alpha', 'api_calls', null, 'sum', 4, 4, true),
            ({d(day1)}, {d(day1.replace(day=1))}, 'c_alpha', 'storage_gb', 'storage', 'max', 2,
             12.5, false)""",
        f"""insert into marts.fct_revenue_monthly values
            ({d(this)}, 'c_alpha', 'api', 'USD', 10.5, 0, null, true, 'i1', null, null, 1),
            ({d(this)}, 'c_alpha', 'storage', 'USD', 2.25, 0, null, true, 'i1', null, null, 1),
            ({d(this)}, 'c_beta', 'api', 'USD', 100, 0, null, true, 'i2', null, null, 1),
            ({d(this)}, 'c_kumo', 'api', 'JPY', 1500, 0, null, true, 'i3', null, null, 1),
            ({d(last)}, 'c_alpha', 'api', 'USD', 20, 1.5, 20, false, 'i4', 'N4', null, 2),
            ({d(last)}, 'c_beta', 'api', 'USD', 50.1, 0, 50.1, false, 'i5', 'N5', null, 1),
            ({d(last)}, 'c_beta', null, 'USD', 9.9, 0, 9.9, false, 'i5', 'N5', null, 1),
            ({d(last)}, 'c_kumo', 'api', 'JPY', 1000, 0, 1000, false, 'i6', 'N6', null, 1),
            ({d(before)}, 'c_euro', 'api', 'EUR', 7.01, 0, 7.01, false, 'i7', 'N7', null, 1)""",
        f"insert into marts.fct_unbilled_usage values ('c_alpha', 'api_calls', {d(this)}, "
        f"{d(periods.next_period(this))}, 4, 4)",
        """insert into raw.quarantined_events values
            ('bad.jsonl', 2, '{"meter_id": "nope"}', 'unknown_meter', '2026-11-30 10:00Z', null),
            ('bad.jsonl', 3, '{"meter_id": "nope2"}', 'unknown_meter', '2026-11-30 10:00Z', null),
            ('bad.jsonl', 4, '<script>alert(1)</script>', 'malformed_row', '2026-11-30 10:00Z',
             null),
            ('old.jsonl', 1, 'x', 'missing_field', '2026-10-30 10:00Z', '2026-11-01 00:00Z')""",
        "insert into raw.landed_files values ('h1', 'a.jsonl', 20, '2026-11-30 09:00:00+00'), "
        "('h2', 'b.jsonl', 2, '2026-11-30 11:00:00+00')",
        "insert into raw.ingest_runs values ('r1', '2026-11-30 08:59:00+00', "
        "'2026-11-30 11:00:05+00')",
        "insert into billing.reconciliation_results values ('run1', '2026-11-30 10:30:00+00')",
        # the marts were last built at 10:45 (a draft's usage instant, after the checks): one
        # file landed after that
        "insert into marts.fct_invoices values ('i1', 'draft', '2026-11-30 10:45:00+00'), "
        "('i4', 'published', '2026-12-01 00:00:00+00')",
    ]


def build_warehouse(path: Path, *, snapshot: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(SCHEMA)
        for sql in _data(THIS, LAST, BEFORE, DAY1, DAY2):
            con.execute(sql)
        if not snapshot:
            con.execute("drop table main.snapshot_about")
    finally:
        con.close()


# --------------------------------------------------------------------------- the server
@dataclass
class Served:
    base: str
    cfg: Settings
    port: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve() -> Iterator:
    """Start the real app on a home under uvicorn in a thread; stopped after the test."""
    servers = []

    def start(home: Path) -> Served:
        cfg = load(environ={"METERLINE_HOME": str(home)})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return Served(f"http://127.0.0.1:{port}", cfg, port)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    build_warehouse(home / "snapshot" / "warehouse.duckdb")
    return home


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Answer:
    status: int
    headers: object
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def get(url: str, *, token: str | None = None, cookie: str | None = None,
        data: bytes | None = None, headers: dict | None = None) -> Answer:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = f"{auth.COOKIE}={cookie}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers, err.read())


def issue(cfg: Settings) -> str:
    return auth.issue_operator_token(cfg).secret


# --------------------------------------------------------------------------- HTML reading
class _Cells(HTMLParser):
    """Every <tr data-...> with the text of its <td data-field=...> cells, and element texts by
    id."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[dict, dict]] = []
        self.ids: dict[str, str] = {}
        self._field: str | None = None
        self._open_ids: list[tuple[str, str, int]] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._depth += 1
        if tag == "tr" and any(k.startswith("data-") for k in attrs):
            self.rows.append(({k[5:]: v for k, v in attrs.items() if k.startswith("data-")}, {}))
        if tag == "td" and "data-field" in attrs and self.rows:
            self._field = attrs["data-field"]
            self.rows[-1][1][self._field] = ""
        if "id" in attrs:
            self._open_ids.append((attrs["id"], tag, self._depth))
            self.ids[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._field = None
        while self._open_ids and self._open_ids[-1][2] >= self._depth:
            self._open_ids.pop()
        self._depth -= 1

    def handle_data(self, data):
        if self._field and self.rows:
            self.rows[-1][1][self._field] += data.strip()
        for name, _, _ in self._open_ids:
            self.ids[name] += data


def parse(html: str) -> _Cells:
    cells = _Cells()
    cells.feed(html)
    return cells


def row(html: str, **attrs) -> dict:
    found = [cells for keys, cells in parse(html).rows
             if all(keys.get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, f"{len(found)} rows with {attrs}"
    return found[0]


def table(html: str, marker: str) -> str:
    """The HTML of the one table opened by ``marker`` (an attribute text), to its end."""
    assert html.count(marker) == 1, marker
    return html.split(marker, 1)[1].split("</table>", 1)[0]


def sql(home: Path, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(home / "snapshot" / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- access
def test_without_a_token_issued_every_operator_page_is_401_saying_so(home, serve):
    served = serve(home)
    for path in OPERATOR_PAGES:
        answer = get(served.base + path)
        assert answer.status == 401, path
        assert "No operator token has been issued" in answer.text, path
        assert "meterline token operator" in answer.text and 'name="token"' in answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
    # even the login form cannot be answered right: there is no secret to match
    assert get(served.base + "/operator/login", data=b"token=").status == 401


def test_operator_pages_need_the_current_secret(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    for path in OPERATOR_PAGES:
        for kwargs in ({}, {"token": "mlo_wrong"}, {"cookie": "mlo_wrong"},
                       {"token": secret[:-1]}, {"headers": {"Authorization": secret}}):
            answer = get(served.base + path, **kwargs)
            assert answer.status == 401, (path, kwargs)
            assert 'name="token"' in answer.text and "USD" not in answer.text
            assert answer.headers["cache-control"] == "no-store"
        assert get(served.base + path, token="mlo_wrong").text.count("not the current") == 1
    for path in DATA_PAGES:
        assert get(served.base + path, token=secret).status == 200, path
        assert get(served.base + path, cookie=secret).status == 200, path
    # public: the redirect to the overview, the health check and the static files
    assert get(served.base + "/").status == 303
    assert get(served.base + "/healthz").status == 200
    assert get(served.base + "/static/meterline.css").status == 200


def test_login_form_sets_a_strict_http_only_cookie_and_logout_clears_it(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    wrong = get(served.base + "/operator/login", data=b"token=mlo_nope")
    assert wrong.status == 401 and "not the current operator token" in wrong.text
    assert "set-cookie" not in {k.lower() for k in wrong.headers}
    body = urllib.parse.urlencode({"token": secret}).encode()
    answer = get(served.base + "/operator/login", data=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 303 and answer.headers["location"] == "/operator/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}={secret};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/operator" in cookie
    assert get(served.base + "/operator/", cookie=secret).status == 200
    # logged in, the login page sends to the overview; the logout link clears the cookie
    assert get(served.base + "/operator/login", cookie=secret).status == 303
    out = get(served.base + "/operator/logout", cookie=secret)
    assert out.status == 303 and f'{auth.COOKIE}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    # a form too large is refused without being read whole
    assert get(served.base + "/operator/login", data=b"token=" + b"x" * 10_000).status == 401


def test_token_file_keeps_only_the_hash_and_a_rotation_locks_out_the_old_secret(
        home, serve, capsys, monkeypatch):
    served = serve(home)
    monkeypatch.setenv("METERLINE_HOME", str(home))
    assert cli.main(["token", "operator"]) == 0
    printed = capsys.readouterr()
    first = printed.out.strip()
    assert first.startswith(auth.PREFIX) and len(first) > 40 and "\n" not in first
    assert "shown this once" in printed.err and first not in printed.err
    path = auth.operator_token_path(served.cfg)
    text = path.read_text()
    assert first not in text and first[len(auth.PREFIX):] not in text
    doc = json.loads(text)
    assert doc["sha256"] == hashlib.sha256(first.encode()).hexdigest() and doc["issued_at"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["operator.json"]  # no temp file left
    assert get(served.base + "/operator/", token=first).status == 200
    second = issue(served.cfg)  # a rotation: read by the server on the next request
    assert second != first
    assert get(served.base + "/operator/", token=first).status == 401
    assert get(served.base + "/operator/", cookie=first).status == 401
    assert get(served.base + "/operator/", token=second).status == 200


# --------------------------------------------------------------------------- figures
def test_overview_figures_equal_the_marts(home, serve):
    served = serve(home)
    page = get(served.base + "/operator/", token=issue(served.cfg)).text
    expected = {cur: (format_money(this, mu), format_money(last, mu), format_money(change, mu))
                for cur, mu, this, last, change in sql(home, """
        select r.currency, any_value(c.minor_unit),
               sum(amount) filter (where revenue_month = ?),
               sum(amount) filter (where revenue_month = ?),
               coalesce(sum(amount) filter (where revenue_month = ?), 0)
                 - coalesce(sum(amount) filter (where revenue_month = ?), 0)
        from marts.fct_revenue_monthly r join reference.iso_4217_currencies c using (currency)
        where revenue_month in (?, ?) group by r.currency""", [THIS, LAST, THIS, LAST, THIS, LAST])}
    assert expected == {"USD": ("112.75", "80.00", "32.75"), "JPY": ("1500", "1000", "500")}
    for currency, (this, last, change) in expected.items():
        cells = row(table(page, 'id="month-totals"'), currency=currency)
        assert (cells["this_amount"], cells["last_amount"], cells["change"]) == \
            (this, last, change)
        assert cells["this_customers"] == {"USD": "2", "JPY": "1"}[currency]
    assert 'data-currency="EUR"' not in table(page, 'id="month-totals"')
    assert page.count("estimate</span>") >= 2
    # top by revenue: the latest month with revenue of each currency
    usd = table(page, 'class="figures top-revenue" data-currency="USD"')
    assert row(usd, customer="c_beta")["amount"] == "100.00"
    assert row(usd, customer="c_alpha")["amount"] == "12.75"
    assert usd.index("c_beta") < usd.index("c_alpha")
    eur = table(page, 'class="figures top-revenue" data-currency="EUR"')
    assert row(eur, customer="c_euro")["amount"] == "7.01"
    assert f"EUR, {BEFORE.strftime('%Y-%m')}" in page
    # growth: this month minus last, per customer
    growth = table(page, 'class="figures top-growth" data-currency="USD"')
    assert row(growth, customer="c_beta") == {"this_amount": "100.00", "last_amount": "60.00",
                                              "growth": "40.00"}
    assert row(growth, customer="c_alpha")["growth"] == "-7.25"
    ids = parse(page).ids
    assert ids["quarantine-count"] == "3"  # the resolved row is not counted
    assert "Beta &lt;Corp&gt;" in page and "Alpha &amp; Sons" in page  # escaped
    # freshness: the snapshot's built_at, said to be the last completed write
    assert "Data as of 2026-11-30 23:59:58 UTC" in ids["freshness"]
    assert "last completed write" in ids["freshness"]
    assert "2 file(s) landed, 22 event(s)" in " ".join(ids["landing"].split())
    assert "1 file(s) landed since" in " ".join(ids["files-since-build"].split())
    assert "marts were last built at 2026-11-30 10:45:00 UTC" in " ".join(ids["landing"].split())


def test_usage_page_table_equals_the_daily_mart_and_carries_the_chart(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    for query, where, params in (
            ("", "", []),
            ("&customer=c_beta", "and customer_id = ?", ["c_beta"]),
            ("&item=api", "and product_item_id = ?", ["api"]),
            ("&item=%28unbilled%29", "and product_item_id is null", [])):
        page = get(served.base + "/operator/usage?meter=api_calls" + query, token=secret).text
        expected = {(d.isoformat(), item or "(unbilled)"): (format_quantity(q), str(n))
                    for d, item, q, n in sql(home, f"""
            select usage_date, product_item_id, sum(quantity), sum(event_count)
            from marts.fct_usage_daily where meter_id = 'api_calls' {where}
            group by all""", params)}
        shown = {(keys["date"], keys["item"]): (cells["quantity"], cells["event_count"])
                 for keys, cells in parse(page).rows if "quantity" in cells}
        assert shown == expected and expected, query
        figure = json.loads(parse(page).ids["usage-figure"])
        points = {(x, trace["name"]): y for trace in figure["data"]
                  for x, y in zip(trace["x"], trace["y"], strict=True)}
        assert sorted(points.values()) == sorted(q for q, _ in expected.values())
        assert all(isinstance(y, str) for y in points.values())  # exact decimal strings
    everyone = get(served.base + "/operator/usage?meter=api_calls", token=secret).text
    assert row(everyone, date=DAY1.isoformat(), item="api")["quantity"] == "12"
    assert row(everyone, date=DAY2.isoformat(), item="(unbilled)")["quantity"] == "4"
    assert "daily total" in everyone and 'id="usage-chart"' in everyone
    peak = get(served.base + "/operator/usage?meter=storage_gb", token=secret).text
    assert "daily peak" in peak and "do not add up" in peak
    assert row(peak, date=DAY1.isoformat(), item="storage")["quantity"] == "12.5"
    # the selects are filled from the data
    assert '<option value="c_alpha"' in everyone and '<option value="storage_gb"' in everyone


def test_filters_are_parameters_never_sql(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    for evil in ("c_alpha' or '1'='1", "x'; drop table marts.fct_usage_daily; --",
                 '<script>alert("x")</script>'):
        quoted = urllib.parse.quote(evil)
        for path in (f"/operator/usage?meter=api_calls&customer={quoted}",
                     f"/operator/usage?meter={quoted}", f"/operator/usage?item={quoted}",
                     f"/operator/quarantine?reason={quoted}", f"/operator/unbilled?month={quoted}"):
            answer = get(served.base + path, token=secret)
            assert answer.status == 200, path
            assert "<script>alert" not in answer.text
        page = get(served.base + f"/operator/usage?meter=api_calls&customer={quoted}",
                   token=secret).text
        assert not [c for _, c in parse(page).rows if "quantity" in c]  # no customer matched
        assert 'id="no-usage"' in page
    assert sql(home, "select count(*) from marts.fct_usage_daily") == [(5,)]


def test_revenue_quarantine_and_unbilled_pages_equal_the_marts(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    page = get(served.base + "/operator/revenue", token=secret).text
    for month, currency, item, amount, adjustment, mu in sql(home, """
            select revenue_month, r.currency, product_item_id, sum(amount),
                   sum(adjustment_amount), any_value(minor_unit)
            from marts.fct_revenue_monthly r join reference.iso_4217_currencies using (currency)
            group by all"""):
        cells = row(table(page, 'id="revenue-items"'), month=month.strftime("%Y-%m"),
                    currency=currency, item=item or "")
        assert cells == {"amount": format_money(amount, mu),
                         "adjustment_amount": format_money(adjustment, mu)}
    months = table(page, 'id="revenue-months"')
    assert row(months, month=THIS.strftime("%Y-%m"), currency="USD")["amount"] == "112.75"
    assert row(months, month=LAST.strftime("%Y-%m"), currency="JPY")["amount"] == "1000"
    assert "minimum-commitment top-up" in page
    ids = parse(page).ids
    usd = json.loads(ids["revenue-figure-USD"])
    # per item, over the customers: api 10.50 + 100.00 this month, 20.00 + 50.10 last month
    assert {(t["name"], x, y) for t in usd["data"] for x, y in zip(t["x"], t["y"], strict=True)
            } == {("API calls (api)", f"{THIS:%Y-%m} (estimate)", "110.50"),
                  ("Storage (storage)", f"{THIS:%Y-%m} (estimate)", "2.25"),
                  ("API calls (api)", f"{LAST:%Y-%m}", "70.10"),
                  ("minimum-commitment top-up", f"{LAST:%Y-%m}", "9.90")}
    assert f"{THIS.strftime('%Y-%m')} (estimate)" in usd["layout"]["xaxis"]["categoryarray"]

    quarantine = get(served.base + "/operator/quarantine", token=secret).text
    assert row(quarantine, reason="unknown_meter") == {"row_count": "2", "file_count": "1"}
    assert row(quarantine, reason="malformed_row")["row_count"] == "1"
    assert 'data-reason="missing_field"' not in quarantine  # resolved
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in quarantine
    assert "<script>alert(1)" not in quarantine
    one = get(served.base + "/operator/quarantine?reason=malformed_row", token=secret).text
    assert "nope2" not in table(one, 'id="quarantine-rows"')

    unbilled = get(served.base + "/operator/unbilled", token=secret).text
    assert row(unbilled, month=THIS.strftime("%Y-%m"), customer="c_alpha",
               meter="api_calls") == {"quantity": "4", "event_count": "4"}
    assert 'id="no-unbilled"' in get(served.base + "/operator/unbilled?month="
                                     + LAST.strftime("%Y-%m"), token=secret).text


# --------------------------------------------------------------------------- static, docs
def test_plotly_js_is_served_by_the_app_itself(home, serve):
    served = serve(home)
    page = get(served.base + "/operator/usage?meter=api_calls", token=issue(served.cfg)).text
    scripts = [line for line in page.splitlines() if "<script src=" in line]
    assert len(scripts) == 2 and all('src="/static/' in s for s in scripts)
    assert "http://" not in page.replace(served.base, "") and "https://" not in page
    plotly = get(served.base + scripts[0].split('src="')[1].split('"')[0])
    assert plotly.status == 200 and plotly.body.startswith(b"/**") and b"plotly.js" in \
        plotly.body[:500]
    assert len(plotly.body) > 1_000_000
    assert "immutable" in plotly.headers["cache-control"]
    assert plotly.headers["content-type"].startswith("text/javascript")
    zipped = get(served.base + "/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plotly.body
    csp = get(served.base + "/operator/", token=issue(served.cfg)).headers[
        "content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_docs_are_served_behind_the_token_and_never_outside_their_folder(home, serve):
    served = serve(home)
    secret = issue(served.cfg)
    missing = get(served.base + "/operator/docs/", token=secret)
    assert missing.status == 404 and "meterline docs" in missing.text
    docs = home / "docs"
    docs.mkdir()
    (docs / "index.html").write_text("<html><body>dbt docs here</body></html>")
    (docs / "manifest.json").write_text("{}")
    assert get(served.base + "/operator/docs/", token=secret).text.endswith("here</body></html>")
    assert get(served.base + "/operator/docs/manifest.json", token=secret).text == "{}"
    assert get(served.base + "/operator/docs/").status == 401
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    for raw in ("/operator/docs/%2e%2e/access/operator.json",
                "/operator/docs/..%2faccess%2foperator.json",
                "/operator/docs/%2e%2e/snapshot/warehouse.duckdb"):
        conn.request("GET", raw, headers={"Authorization": f"Bearer {secret}"})
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 404 and b"sha256" not in body, raw
    conn.close()


def test_the_public_paths_reveal_nothing(home, serve):
    served = serve(home)
    issue(served.cfg)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    for raw in ("/static/%2e%2e/operator/", "/static/..%2foperator%2f", "/static/../operator/",
                "/healthz/../operator/", "//operator/", "/%6Fperator/"):
        conn.request("GET", raw)
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status in (401, 404) and b"USD" not in body, raw
    conn.close()
    health = json.loads(get(served.base + "/healthz").body)
    assert health == {"status": "ok", "data": {
        "as_of": "2026-11-30T23:59:58.123456+00:00", "source": "snapshot",
        "what": "the last completed write, as the readers' snapshot holds it"}}


def test_serve_binds_this_machine_by_default():
    args = cli.build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    assert cli.build_parser().parse_args(["token", "operator"]).role == "operator"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["token", "admin"])


# --------------------------------------------------------------------------- readers
def test_no_data_yet_answers_503_saying_what_to_run(tmp_path, serve):
    home = tmp_path / "empty"
    home.mkdir()
    served = serve(home)
    secret = issue(served.cfg)
    for path in DATA_PAGES:
        answer = get(served.base + path, token=secret)
        assert answer.status == 503 and "meterline ingest" in answer.text, path
    assert json.loads(get(served.base + "/healthz").body)["data"] is None


def test_pages_answer_while_a_writer_holds_the_warehouse(home, serve, tmp_path):
    """A writer in another process holds the warehouse: the pages read the snapshot; without a
    snapshot they answer 503 at once, never waiting for the run."""
    build_warehouse(home / "warehouse.duckdb", snapshot=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(home / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        served = serve(home)
        secret = issue(served.cfg)
        for path in DATA_PAGES:
            assert get(served.base + path, token=secret).status == 200, path
        (home / "snapshot" / "warehouse.duckdb").rename(tmp_path / "gone.duckdb")
        started = time.monotonic()
        busy = get(served.base + "/operator/", token=secret)
        assert busy.status == 503 and "A run is writing" in busy.text
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # the writer gone, the live warehouse is read; its freshness says where it comes from
    page = get(served.base + "/operator/", token=secret).text
    freshness = " ".join(parse(page).ids["freshness"].split())
    assert "Data as of 2026-11-30 11:00:05 UTC" in freshness and "live warehouse" in freshness
    assert row(table(page, 'id="month-totals"'), currency="USD")["this_amount"] == "112.75"


def test_a_new_snapshot_is_seen_by_the_next_request(home, serve, tmp_path):
    served = serve(home)
    secret = issue(served.cfg)
    totals = table(get(served.base + "/operator/", token=secret).text, 'id="month-totals"')
    assert row(totals, currency="USD")["this_amount"] == "112.75"
    new = tmp_path / "new.duckdb"
    build_warehouse(new)
    con = duckdb.connect(str(new))
    con.execute("insert into marts.fct_revenue_monthly values (?, 'c_beta', 'api', 'USD', 0.25,"
                " 0, null, true, 'i2', null, null, 1)", [THIS])
    con.close()
    os.replace(new, home / "snapshot" / "warehouse.duckdb")  # as snapshot.publish does
    totals = table(get(served.base + "/operator/", token=secret).text, 'id="month-totals"')
    assert row(totals, currency="USD")["this_amount"] == "113.00"
    assert Decimal("113.00") == Decimal("112.75") + Decimal("0.25")
