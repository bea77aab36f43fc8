"""The customer portal (`meterline serve`, /portal/, issue 17 items 1-3), fast tier: the real
app under uvicorn on a free 127.0.0.1 port, real HTTP, on a hand-made readers' snapshot with two
customers, and the real `meterline portal token` command. Chromium: test_browser_portal.py.

The hand-worked data (this month M, a draft; last month L, published), per customer:
    c_alpha (USD): L INV-<L>-c_alpha MLN-000001: api tier 1 100 x 0.01 = 1.00, tier 2 50 x 0.005
                   = 0.25, minimum commitment top-up 8.75, adjustment (the month before) 3 calls
                   0.03 -> 10.03; M draft: api 42 x 0.01 = 0.42 (days: 30 + 12 calls)
    c_beta (JPY):  L MLN-000002 api 987654 JPY; M draft 13579 JPY; event evt_beta_secret
Nothing of c_beta's (its id, name, invoice ids and numbers, amounts, events) may appear in any
answer to c_alpha, whatever the URL carries."""

from __future__ import annotations

import hashlib
import http.client
import json
import stat
import time
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from orchestration.lib import clock, periods
from orchestration.lib.settings import Settings, UsageError, load
from orchestration.web import auth, customer_tokens, gate
from tests.conftest import run_meterline
from tests.test_web import Answer, parse, row, serve  # noqa: F401  (serve: the fixture)

THIS = clock.today().replace(day=1)
LAST = periods.previous_period(THIS)
BEFORE = periods.previous_period(LAST)
NEXT = periods.next_period(THIS)
YM = lambda d: d.strftime("%Y%m")  # noqa: E731
A_LAST, A_THIS = f"INV-{YM(LAST)}-c_alpha", f"INV-{YM(THIS)}-c_alpha"
B_LAST, B_THIS = f"INV-{YM(LAST)}-c_beta", f"INV-{YM(THIS)}-c_beta"
#: texts only c_beta's data holds
BETA_MARKERS = ("c_beta", "Beta Secret KK", B_LAST, B_THIS, "MLN-000002", "987654", "13579",
                "evt_beta_secret", "JPY")

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
create table catalog.rates (rate_id varchar, product_item_id varchar, customer_id varchar,
    currency varchar, pricing_model varchar, unit_price decimal(38, 12),
    package_size decimal(38, 12), free_units decimal(38, 12), effective_from date,
    effective_to date);
create table catalog.rate_tiers (rate_id varchar, tier integer, up_to decimal(38, 12),
                                 unit_price decimal(38, 12), flat_fee decimal(38, 12));
create table marts.dim_customers (customer_id varchar, customer_name varchar, currency varchar,
                                  active_from date, active_to date);
create table marts.fct_usage_daily (usage_date date, billing_period_start date,
    customer_id varchar, meter_id varchar, product_item_id varchar, aggregation varchar,
    event_count bigint, quantity decimal(38, 12), is_additive boolean);
create table marts.fct_invoices (invoice_id varchar, customer_id varchar,
    billing_period_start date, billing_period_end date, currency varchar,
    subtotal decimal(38, 4), total decimal(38, 4), line_count bigint, status varchar,
    invoice_number varchar, issued_at timestamptz, usage_accrued_to timestamptz);
create table marts.fct_invoice_lines (invoice_id varchar, line_number integer,
    customer_id varchar, billing_period_start date, billing_period_end date,
    usage_period_start date, usage_period_end date, line_type varchar, product_item_id varchar,
    meter_id varchar, description varchar, quantity decimal(38, 12),
    unit_price decimal(38, 12), tier integer, amount decimal(38, 4), currency varchar,
    rate_id varchar);
create table marts.fct_invoice_line_events (invoice_id varchar, billing_period_start date,
    line_type varchar, product_item_id varchar, usage_period_start date, event_count bigint,
    aggregate_value decimal(38, 12), shown_rank integer, event_id varchar,
    event_at timestamptz, value decimal(38, 12), dimensions varchar, landed_at timestamptz);
"""


def _data() -> list[tuple[str, list]]:
    t, last, before, nxt = THIS, LAST, BEFORE, NEXT
    day = lambda d, n: d + timedelta(days=n)  # noqa: E731
    at = lambda d, h: f"{d.isoformat()} {h:02d}:00:00+00"  # noqa: E731
    events = [(A_LAST, last, "usage", "api", last, 7, 150, n, f"evt_a_{n}", at(day(last, n), 1),
               n * 10, '{"region": "eu"}', at(day(last, n), 2)) for n in range(1, 8)]
    events += [(A_LAST, last, "adjustment", "api", before, 1, None, 1, "evt_a_late",
                at(day(before, 3), 4), 3, "{}", at(last, 6)),
               (A_THIS, t, "usage", "api", t, 2, 42, 1, "evt_a_this", at(t, 1), 30, "{}",
                at(t, 2)),
               (B_LAST, last, "usage", "api", last, 1, 987654, 1, "evt_beta_secret",
                at(last, 1), 987654, "{}", at(last, 2))]
    return [
        ("insert into main.snapshot_about values ('2026-11-30 23:59:58+00', '{}')", []),
        ("insert into reference.iso_4217_currencies values ('USD', 2, 'US Dollar'), "
         "('JPY', 0, 'Yen')", []),
        ("insert into catalog.meters values ('api_calls', 'API calls', 'call', 'sum', null, "
         "null)", []),
        ("insert into catalog.product_items values ('api', 'API access', 'api_calls', null)", []),
        ("insert into catalog.rates values ('r_api_usd', 'api', null, 'USD', 'graduated', null,"
         " null, null, '2025-01-01', null), ('r_api_beta', 'api', 'c_beta', 'JPY', 'per_unit',"
         " 1, null, null, '2025-01-01', null)", []),
        ("insert into catalog.rate_tiers values ('r_api_usd', 1, 100, 0.01, null), "
         "('r_api_usd', 2, null, 0.005, null)", []),
        ("insert into marts.dim_customers values ('c_alpha', 'Alpha & Sons', 'USD', null, "
         "null), ('c_beta', 'Beta Secret KK', 'JPY', null, null)", []),
        ("insert into marts.fct_usage_daily values "
         "(?, ?, 'c_alpha', 'api_calls', 'api', 'sum', 1, 30, true), "
         "(?, ?, 'c_alpha', 'api_calls', 'api', 'sum', 1, 12, true), "
         "(?, ?, 'c_beta', 'api_calls', 'api', 'sum', 1, 13579, true), "
         "(?, ?, 'c_alpha', 'api_calls', 'api', 'sum', 5, 150, true)",
         [t, t, day(t, 1) if day(t, 1) < nxt else t, t, t, t, day(last, 2), last]),
        ("insert into marts.fct_invoices values "
         "(?, 'c_alpha', ?, ?, 'USD', 10.03, 10.03, 4, 'published', 'MLN-000001', "
         " '2026-11-02 00:00:00+00', ?), "
         "(?, 'c_alpha', ?, ?, 'USD', 0.42, 0.42, 1, 'draft', null, null, "
         " '2026-11-30 10:45:00+00'), "
         "(?, 'c_beta', ?, ?, 'JPY', 987654, 987654, 1, 'published', 'MLN-000002', "
         " '2026-11-02 00:00:00+00', ?), "
         "(?, 'c_beta', ?, ?, 'JPY', 13579, 13579, 1, 'draft', null, null, "
         " '2026-11-30 10:45:00+00')",
         [A_LAST, last, t, t, A_THIS, t, nxt, B_LAST, last, t, t, B_THIS, t, nxt]),
        ("insert into marts.fct_invoice_lines values "
         "(?, 1, 'c_alpha', ?, ?, ?, ?, 'usage', 'api', 'api_calls', 'API access, tier 1', "
         " 100, 0.01, 1, 1.00, 'USD', 'r_api_usd'), "
         "(?, 2, 'c_alpha', ?, ?, ?, ?, 'usage', 'api', 'api_calls', 'API access, tier 2', "
         " 50, 0.005, 2, 0.25, 'USD', 'r_api_usd'), "
         "(?, 3, 'c_alpha', ?, ?, ?, ?, 'minimum_commitment', null, null, "
         " 'Minimum commitment top-up', null, null, null, 8.75, 'USD', null), "
         "(?, 4, 'c_alpha', ?, ?, ?, ?, 'adjustment', 'api', 'api_calls', "
         " 'Late usage: API access', 3, null, null, 0.03, 'USD', 'r_api_usd'), "
         "(?, 1, 'c_alpha', ?, ?, ?, ?, 'usage', 'api', 'api_calls', 'API access, tier 1', "
         " 42, 0.01, 1, 0.42, 'USD', 'r_api_usd'), "
         "(?, 1, 'c_beta', ?, ?, ?, ?, 'usage', 'api', 'api_calls', 'API access', "
         " 987654, 1, null, 987654, 'JPY', 'r_api_beta'), "
         "(?, 1, 'c_beta', ?, ?, ?, ?, 'usage', 'api', 'api_calls', 'API access', "
         " 13579, 1, null, 13579, 'JPY', 'r_api_beta')",
         [A_LAST, last, t, last, t, A_LAST, last, t, last, t, A_LAST, last, t, last, t,
          A_LAST, last, t, before, last, A_THIS, t, nxt, t, nxt, B_LAST, last, t, last, t,
          B_THIS, t, nxt, t, nxt]),
        *[("insert into marts.fct_invoice_line_events values "
           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(e)) for e in events],
    ]


def build_snapshot(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(SCHEMA)
        for statement, params in _data():
            con.execute(statement, params)
    finally:
        con.close()


def write_documents(home: Path) -> None:
    for invoice_id, month, who in ((A_LAST, LAST, "c_alpha"), (B_LAST, LAST, "c_beta")):
        folder = home / "invoices" / month.strftime("%Y-%m")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{invoice_id}.json").write_text(json.dumps(
            {"invoice_id": invoice_id, "customer": {"customer_id": who}}) + "\n")
        (folder / f"{invoice_id}.html").write_text(f"<html><body>{invoice_id}</body></html>\n")


@dataclass
class Portal:
    base: str
    port: int
    cfg: Settings  # with the catalog: issues tokens
    home: Path
    alpha: str
    beta: str


@pytest.fixture
def catalog(tmp_path) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "customers.csv").write_text("customer_id,customer_name,currency\n"
                                          "c_alpha,Alpha & Sons,USD\nc_beta,Beta Secret KK,JPY\n")
    return folder


@pytest.fixture
def portal(tmp_path, catalog, serve) -> Portal:  # noqa: F811
    home = tmp_path / "home"
    build_snapshot(home / "snapshot" / "warehouse.duckdb")
    write_documents(home)
    served = serve(home)
    cfg = load(environ={"METERLINE_HOME": str(home), "METERLINE_CATALOG_DIR": str(catalog)})
    alpha = customer_tokens.issue(cfg, "c_alpha", expires_days=None).secret
    beta = customer_tokens.issue(cfg, "c_beta", expires_days=None).secret
    return Portal(served.base, served.port, cfg, home, alpha, beta)


def fetch(url: str, *, session: str | None = None, data: bytes | None = None,
          headers: dict | None = None, method: str | None = None) -> Answer:
    """One request with http.client (no redirects followed, the path sent as given)."""
    parts = urllib.parse.urlsplit(url)
    headers = dict(headers or {})
    if session is not None:
        headers["Cookie"] = f"{gate.PORTAL_COOKIE}={session}"
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method or ("POST" if data is not None else "GET"), path, body=data,
                     headers=headers)
        answer = conn.getresponse()
        return Answer(answer.status, answer.headers, answer.read())
    finally:
        conn.close()


def sign_in(base: str, token: str) -> Answer:
    return fetch(base + "/portal/login", data=urllib.parse.urlencode({"token": token}).encode())


def assert_nothing_of_beta(answer: Answer, where: str) -> None:
    text = answer.body.decode("utf-8", "replace")
    leaked = [m for m in BETA_MARKERS if m in text]
    assert not leaked, (where, leaked)


PAGES = ["/portal/", "/portal/invoices", f"/portal/invoices/{A_LAST}",
         f"/portal/invoices/{A_LAST}/lines/1", f"/portal/invoices/{A_LAST}/document.json"]


# --------------------------------------------------------------------------- tokens
def test_tokens_keep_only_hashes_and_revocation_is_immediate(tmp_path, catalog):
    cfg = load(environ={"METERLINE_HOME": str(tmp_path / "h"),
                        "METERLINE_CATALOG_DIR": str(catalog)})
    (tmp_path / "h").mkdir()
    issued = customer_tokens.issue(cfg, "c_alpha", expires_days=30)
    assert issued.secret.startswith("mlp_") and len(issued.secret) >= 47
    assert issued.token_id.startswith("pt_") and len(issued.token_id) == 11
    assert issued.expires_at > issued.issued_at
    path = customer_tokens.tokens_path(cfg)
    text = path.read_text()
    assert issued.secret not in text and issued.secret[4:] not in text
    assert hashlib.sha256(issued.secret.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert customer_tokens.customer_for_secret(cfg, issued.secret) == "c_alpha"
    for wrong in (None, "", issued.secret[:-1], issued.secret + "x", "mlo_" + issued.secret[4:],
                  "x" * 10_000):
        assert customer_tokens.customer_for_secret(cfg, wrong) is None
    listed = customer_tokens.list_tokens(cfg)
    assert listed == [{"token_id": issued.token_id, "customer_id": "c_alpha",
                       "issued_at": issued.issued_at, "expires_at": issued.expires_at,
                       "revoked_at": None, "status": "active"}]
    assert customer_tokens.revoke(cfg, issued.token_id)
    assert not customer_tokens.revoke(cfg, issued.token_id)  # already revoked
    assert not customer_tokens.revoke(cfg, "pt_00000000")
    assert customer_tokens.customer_for_secret(cfg, issued.secret) is None
    assert customer_tokens.list_tokens(cfg)[0]["status"] == "revoked"
    with pytest.raises(UsageError, match="no customer 'c_nobody'"):
        customer_tokens.issue(cfg, "c_nobody", expires_days=None)
    for days in (0, -1, 100_000):
        with pytest.raises(UsageError, match="--expires"):
            customer_tokens.issue(cfg, "c_alpha", expires_days=days)


@pytest.mark.e2e  # the real `meterline` command, eight times: not the fast tier's
def test_portal_token_command_issues_lists_and_revokes(tmp_path, catalog):
    home = tmp_path / "home"
    home.mkdir()

    def run(*args):
        return run_meterline(["portal", "token", *args], home=home, catalog=catalog,
                             cwd=tmp_path)

    done = run("issue", "c_alpha", "--expires", "7")
    assert done.returncode == 0, done.stderr
    secret, link = done.stdout.split()
    assert secret.startswith("mlp_") and link == f"http://127.0.0.1:8080/portal/login#token={secret}"
    assert secret not in done.stderr and "shown this once" in done.stderr
    token_id = done.stderr.split("portal token ", 1)[1].split()[0]
    listed = run("list", "--format", "json")
    assert listed.returncode == 0 and secret not in listed.stdout
    tokens = json.loads(listed.stdout)["tokens"]
    assert [(t["token_id"], t["customer_id"], t["status"]) for t in tokens] == \
        [(token_id, "c_alpha", "active")]
    assert "sha256" not in listed.stdout
    table = run("list")
    assert token_id in table.stdout and "active" in table.stdout and secret not in table.stdout
    assert run("revoke", token_id).returncode == 0
    assert "revoked" in run("list").stdout
    unknown = run("revoke", "pt_ffffffff")
    assert unknown.returncode == 1 and "no portal token" in unknown.stderr
    nobody = run("issue", "c_nobody")
    assert nobody.returncode == 2 and "no customer 'c_nobody' in the price book" in nobody.stderr
    assert run("issue", "c_alpha", "--expires", "0").returncode == 2


# --------------------------------------------------------------------------- sign-in
def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(portal):
    form = fetch(portal.base + "/portal/login")
    assert form.status == 200 and 'name="token"' in form.text
    assert "/static/portal-login.js" in form.text and "<script>" not in form.text
    answer = sign_in(portal.base, portal.alpha)
    assert answer.status == 303 and answer.headers["location"] == "/portal/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{gate.PORTAL_COOKIE}={portal.alpha};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie
    page = fetch(portal.base + "/portal/", session=portal.alpha)
    assert page.status == 200 and "Alpha &amp; Sons" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert fetch(portal.base + "/portal/login", session=portal.alpha).status == 303
    out = fetch(portal.base + "/portal/logout", session=portal.alpha)
    assert out.status == 303 and out.headers["location"] == "/portal/login"
    assert f'{gate.PORTAL_COOKIE}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert fetch(portal.base + "/portal/", session=portal.alpha + "x").status == 401
    too_big = fetch(portal.base + "/portal/login", data=b"token=" + b"x" * 10_000)
    assert too_big.status == 401
    # a sign-in posted from another site's page is refused, even with the right token
    form = urllib.parse.urlencode({"token": portal.alpha}).encode()
    for elsewhere in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                      {"Sec-Fetch-Site": "same-site", "Origin": "null"}):
        foreign = fetch(portal.base + "/portal/login", headers=elsewhere, data=form)
        assert foreign.status == 403, elsewhere
        assert "set-cookie" not in {k.lower() for k in foreign.headers}
    for own in ({"Origin": portal.base}, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}):
        assert fetch(portal.base + "/portal/login", headers=own, data=form).status == 303


def test_wrong_missing_expired_and_revoked_tokens_get_the_same_401(portal, monkeypatch):
    expiring = customer_tokens.issue(portal.cfg, "c_alpha", expires_days=1)
    revoked = customer_tokens.issue(portal.cfg, "c_alpha", expires_days=None)
    beta_revoked = customer_tokens.issue(portal.cfg, "c_beta", expires_days=None)
    for token in (expiring, revoked, beta_revoked):
        assert fetch(portal.base + "/portal/", session=token.secret).status == 200
    assert customer_tokens.revoke(portal.cfg, revoked.token_id)
    assert customer_tokens.revoke(portal.cfg, beta_revoked.token_id)
    later = clock.now() + timedelta(days=1, minutes=5)  # past its expiry
    monkeypatch.setenv("METERLINE_NOW", later.isoformat().replace("+00:00", "Z"))
    assert customer_tokens.customer_for_secret(portal.cfg, expiring.secret) is None
    assert customer_tokens.customer_for_secret(portal.cfg, portal.alpha) == "c_alpha"
    for path in PAGES + ["/portal", "/portal/no-such-page", "/portal/invoices/x/lines/1"]:
        bodies = set()
        for session in (None, "mlp_wrong", expiring.secret, revoked.secret,
                        beta_revoked.secret, "", "x" * 5000):
            answer = fetch(portal.base + path, session=session)
            assert answer.status == 401, (path, session and session[:8])
            assert 'name="token"' in answer.text and "cache-control" in answer.headers
            assert_nothing_of_beta(answer, path)
            assert "c_alpha" not in answer.text and "Alpha" not in answer.text
            bodies.add(answer.body)
        assert len(bodies) == 1, path  # says nothing about which customers exist
    # a wrong sign-in says only that the token does not open the portal, whatever it is
    texts = {sign_in(portal.base, s).body for s in ("mlp_wrong", expiring.secret,
                                                     revoked.secret, beta_revoked.secret)}
    assert len(texts) == 1 and b"does not open the portal" in texts.pop()


def test_revocation_takes_effect_on_the_next_request(portal):
    token = customer_tokens.issue(portal.cfg, "c_alpha", expires_days=None)
    assert fetch(portal.base + "/portal/invoices", session=token.secret).status == 200
    customer_tokens.revoke(portal.cfg, token.token_id)
    locked = fetch(portal.base + "/portal/invoices", session=token.secret)
    assert locked.status == 401 and gate.PORTAL_COOKIE in locked.headers["set-cookie"]
    assert fetch(portal.base + "/portal/invoices", session=portal.alpha).status == 200


def test_sign_in_attempts_are_rate_limited(portal):
    for n in range(10):
        assert sign_in(portal.base, f"mlp_guess_{n}").status == 401
    limited = sign_in(portal.base, "mlp_guess_again")
    assert limited.status == 429 and 1 <= int(limited.headers["retry-after"]) <= 61
    assert "Too many sign-in attempts" in limited.text
    # past the limit, the right token waits too (no guessing on while limited)
    assert sign_in(portal.base, portal.alpha).status == 429
    # a session already signed in is not a sign-in: it keeps working
    assert fetch(portal.base + "/portal/", session=portal.alpha).status == 200


def test_operator_and_customer_tokens_open_only_their_own_pages(portal):
    operator = auth.issue_operator_token(portal.cfg).secret
    for path in PAGES:
        assert fetch(portal.base + path, session=operator).status == 401, path
        assert fetch(portal.base + path, headers={
            "Authorization": f"Bearer {operator}",
            "Cookie": f"{auth.COOKIE}={operator}"}).status == 401, path
        assert fetch(portal.base + path, headers={
            "Authorization": f"Bearer {portal.alpha}"}).status == 401, path
    assert sign_in(portal.base, operator).status == 401
    for path in ("/operator/", "/operator/usage", "/operator/revenue"):
        for headers in ({"Authorization": f"Bearer {portal.alpha}"},
                        {"Cookie": f"{auth.COOKIE}={portal.alpha}"},
                        {"Cookie": f"{gate.PORTAL_COOKIE}={portal.alpha}"}):
            assert fetch(portal.base + path, headers=headers).status == 401, (path, headers)
        # the operator's token opens them (503: this snapshot lacks the operator's marts)
        assert fetch(portal.base + path, headers={
            "Authorization": f"Bearer {operator}"}).status in (200, 503)
    # the API's prefix passes the gate: its routes answer for themselves
    api = fetch(portal.base + "/v1/no-such-route")
    assert "Operator access" not in api.text and "Sign in to your account" not in api.text


# --------------------------------------------------------------------------- figures
def test_overview_shows_the_month_to_date_and_the_estimate_line_by_line(portal):
    page = fetch(portal.base + "/portal/", session=portal.alpha)
    assert page.status == 200
    assert_nothing_of_beta(page, "/portal/")
    html = page.text
    cells = row(html, month=f"{THIS:%Y-%m}", item="api", meter="api_calls")
    assert cells == {"days": "2", "event_count": "2", "month_quantity": "42 call"}
    ids = parse(html).ids
    figure_id = f"usage-figure-{THIS:%Y-%m}-0"
    figure = json.loads(ids[figure_id])
    assert figure["data"][0]["y"] == ["30", "12"] and len(figure["data"]) == 1
    assert all(isinstance(y, str) for y in figure["data"][0]["y"])
    assert f'data-figure="{figure_id}"' in html and "/static/charts.js" in html
    # last month is published: only this month is open
    assert f'data-month="{THIS:%Y-%m}"' in html and f'data-month="{LAST:%Y-%m}"' not in html
    # the estimate: this month's draft, line by line, at the currency's minor unit
    note = " ".join(ids[f"estimate-note-{THIS:%Y-%m}"].split())
    assert A_THIS in note and "estimate" in note and "2026-11-30 10:45:00 UTC" in note
    assert row(html, line="1", type="usage") == {"quantity": "42", "unit_price": "0.01",
                                                 "amount": "0.42"}
    assert row(html, total="total")["total"] == "0.42"
    assert "Data as of 2026-11-30 23:59:58 UTC" in ids["freshness"]


def test_invoices_lines_and_documents(portal):
    listing = fetch(portal.base + "/portal/invoices", session=portal.alpha)
    assert_nothing_of_beta(listing, "/portal/invoices")
    shown = {keys["invoice"]: (keys["status"], cells["total"])
             for keys, cells in parse(listing.text).rows if "total" in cells}
    assert shown == {A_LAST: ("published", "USD 10.03"), A_THIS: ("draft", "USD 0.42")}
    page = fetch(portal.base + f"/portal/invoices/{A_LAST}", session=portal.alpha)
    assert page.status == 200 and "MLN-000001" in page.text
    html = page.text
    assert row(html, line="1", type="usage")["amount"] == "1.00"
    assert row(html, line="2", type="usage") == {"quantity": "50", "unit_price": "0.005",
                                                 "amount": "0.25"}
    assert row(html, line="3", type="minimum_commitment")["amount"] == "8.75"
    assert row(html, line="4", type="adjustment") == {"quantity": "3", "unit_price": "",
                                                      "amount": "0.03"}
    assert row(html, total="total")["total"] == "10.03"
    assert f"/portal/invoices/{A_LAST}/document.json" in html
    assert f"/portal/invoices/{A_LAST}/document.html" in html
    for ext, media in (("json", "application/json"), ("html", "text/html")):
        doc = fetch(portal.base + f"/portal/invoices/{A_LAST}/document.{ext}",
                    session=portal.alpha)
        assert doc.status == 200 and doc.headers["content-type"].startswith(media)
        assert doc.headers["content-disposition"] == f'attachment; filename="{A_LAST}.{ext}"'
        assert doc.body == (portal.home / "invoices" / LAST.strftime("%Y-%m")
                            / f"{A_LAST}.{ext}").read_bytes()
    # a draft has no document
    draft = fetch(portal.base + f"/portal/invoices/{A_THIS}", session=portal.alpha)
    assert draft.status == 200 and "document.json" not in draft.text
    assert fetch(portal.base + f"/portal/invoices/{A_THIS}/document.json",
                 session=portal.alpha).status == 404


def test_a_lines_audit_trail_as_explain_gives_it_paged(portal):
    page = fetch(portal.base + f"/portal/invoices/{A_LAST}/lines/2", session=portal.alpha)
    assert page.status == 200
    html = page.text
    facts = {keys["fact"]: cells["value"] for keys, cells in parse(html).rows if "fact" in keys}
    assert "API calls (api_calls)" in facts["meter"] and facts["aggregation"] == "sum"
    assert facts["quantity"] == "50" and facts["item_quantity"] == "150"
    assert facts["aggregate"].startswith("150; billed quantity max(aggregate, 0) = 150")
    assert "graduated" in parse(html).ids["rate"] and "list price" in parse(html).ids["rate"]
    tiers = {keys["tier"]: cells for keys, cells in parse(html).rows if "tier" in keys}
    assert tiers["1"]["up_to"] == "100" and tiers["2"]["up_to"] == "no limit"
    assert "7 event(s)" in parse(html).ids["event-count"]
    first = [keys["event"] for keys, _ in parse(html).rows if "event" in keys]
    assert first == [f"evt_a_{n}" for n in range(1, 6)]
    assert "page 1 of 2" in " ".join(parse(html).ids["pages"].split())
    second = fetch(portal.base + f"/portal/invoices/{A_LAST}/lines/2?page=2",
                   session=portal.alpha).text
    assert [keys["event"] for keys, _ in parse(second).rows if "event" in keys] == \
        ["evt_a_6", "evt_a_7"]
    for bad, status in (("3", 404), ("0", 404), ("9999", 404), ("99999", 400), ("-1", 400),
                        ("abc", 400), ("1.5", 400), ("x" * 10_000, 400), ("1' or '1'='1", 400)):
        answer = fetch(portal.base + f"/portal/invoices/{A_LAST}/lines/2?page="
                       + urllib.parse.quote(bad), session=portal.alpha)
        assert answer.status == status, bad
    adjustment = fetch(portal.base + f"/portal/invoices/{A_LAST}/lines/4",
                       session=portal.alpha).text
    assert "evt_a_late" in adjustment and "change in quantity" in adjustment
    commitment = fetch(portal.base + f"/portal/invoices/{A_LAST}/lines/3",
                       session=portal.alpha).text
    assert 'id="no-item"' in commitment


# --------------------------------------------------------------------------- isolation
EVIL = ["c_beta", B_LAST, B_THIS, "MLN-000002", "../" * 6 + "access/portal_tokens.json",
        "..%2F..%2Faccess%2Fportal_tokens.json", "%2e%2e", "..", ".", "%00", "\x00",
        "' or '1'='1", "x'; drop table marts.fct_invoices; --", '" or 1=1 --',
        "INV-%' or customer_id like '%", "<script>alert(1)</script>", "x" * 10_000,
        "1" * 10_000, "9" * 30, "-1", "0", "1e3", " 1", "%", "_"]


def test_no_url_or_parameter_opens_another_customers_data(portal):
    checked = 0

    def probe(path: str, expect: set[int]) -> None:
        nonlocal checked
        answer = fetch(portal.base + path, session=portal.alpha)
        assert answer.status in expect, (path[:120], answer.status)
        assert_nothing_of_beta(answer, path[:120])
        assert b"sha256" not in answer.body and portal.beta.encode() not in answer.body
        checked += 1

    for value in EVIL:
        quoted = urllib.parse.quote(value, safe="")
        probe(f"/portal/invoices/{quoted}", {400, 404})
        probe(f"/portal/invoices/{quoted}/document.json", {400, 404})
        probe(f"/portal/invoices/{quoted}/document.html", {400, 404})
        probe(f"/portal/invoices/{quoted}/lines/1", {400, 404})
        probe(f"/portal/invoices/{A_LAST}/lines/{quoted}", {400, 404})
        probe(f"/portal/invoices/{B_LAST}/lines/{quoted}", {400, 404})
        # a customer id, or anything, in the query string changes nothing
        for base_path in ("/portal/", "/portal/invoices", f"/portal/invoices/{A_LAST}",
                          f"/portal/invoices/{A_LAST}/lines/1"):
            query = urllib.parse.urlencode({"customer": value, "customer_id": value,
                                            "invoice": value, "invoice_id": value})
            probe(f"{base_path}?{query}", {200})
    # the other customer's own ids, in every place an id goes
    for invoice_id in (B_LAST, B_THIS):
        for suffix in ("", "/document.json", "/document.html", "/lines/1", "/lines/1?page=1"):
            probe(f"/portal/invoices/{invoice_id}{suffix}", {404})
    # traversal in the raw path, sent as given
    for raw in ("/portal/invoices/../../access/portal_tokens.json",
                "/portal/invoices/%2e%2e/%2e%2e/access/portal_tokens.json",
                "/portal/invoices/..%2f..%2faccess%2fportal_tokens.json/document.json",
                f"/portal/invoices/{A_LAST}/..%2f{B_LAST}/document.json",
                f"/portal/invoices/{A_LAST}%2f..%2f{B_LAST}/document.json",
                f"/portal/invoices/..%2f{LAST:%Y-%m}%2f{B_LAST}/document.json",
                "/portal/invoices/%2e%2e%2fsnapshot%2fwarehouse.duckdb/document.json",
                "/portal/..%2foperator/", "/portal/%2e%2e/operator/"):
        probe(raw, {400, 401, 404})
    assert checked > 200
    # and the warehouse is as it was
    con = duckdb.connect(str(portal.home / "snapshot" / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.fct_invoices").fetchone()[0] == 4
    con.close()


def test_each_customer_sees_only_its_own(portal):
    for secret, own, other in ((portal.alpha, "c_alpha", "c_beta"),
                               (portal.beta, "c_beta", "c_alpha")):
        for path in ("/portal/", "/portal/invoices"):
            text = fetch(portal.base + path, session=secret).text
            assert own in text and other not in text, (own, path)
    beta = fetch(portal.base + "/portal/invoices", session=portal.beta).text
    assert "JPY 987654" in beta and "JPY 13579" in beta  # minor unit 0: no decimals
    assert fetch(portal.base + f"/portal/invoices/{A_LAST}", session=portal.beta).status == 404


def test_last_month_shows_while_its_invoice_is_a_draft(portal):
    con = duckdb.connect(str(portal.home / "snapshot" / "warehouse.duckdb"))
    con.execute("update marts.fct_invoices set status = 'draft', invoice_number = null, "
                "issued_at = null where invoice_id = ?", [B_LAST])
    con.close()
    page = fetch(portal.base + "/portal/", session=portal.beta).text
    assert page.index(f'data-month="{THIS:%Y-%m}"') < page.index(f'data-month="{LAST:%Y-%m}"')
    assert row(page, month=f"{THIS:%Y-%m}", item="api", meter="api_calls")[
        "month_quantity"] == "13579 call"
    assert f'data-invoice="{B_LAST}"' in page and "987654" in page  # its estimate, 0 decimals
    assert "c_alpha" not in page and A_LAST not in page
    # no document for a draft, whatever is on disk
    assert fetch(portal.base + f"/portal/invoices/{B_LAST}/document.json",
                 session=portal.beta).status == 404


def test_the_limiter_counts_per_client_and_overall():
    from orchestration.web.portal import SignInLimiter

    limiter = SignInLimiter(per_client=3, overall=5, window_s=60)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    assert 1 <= limiter.retry_after("10.0.0.1") <= 61
    assert limiter.retry_after("10.0.0.2") is None
    limiter.failed("10.0.0.2")
    limiter.failed("10.0.0.3")
    assert limiter.retry_after("10.0.0.4") is not None  # five failures over all addresses
    quick = SignInLimiter(per_client=1, overall=10, window_s=0.05)
    quick.failed("a")
    assert quick.retry_after("a") is not None
    time.sleep(0.1)
    assert quick.retry_after("a") is None  # the window slid


def test_portal_token_command_in_process(tmp_path, catalog, capsys, monkeypatch):
    """The fast tier's view of the command (the real one runs above, marked e2e)."""
    from orchestration.cli import main as cli

    (tmp_path / "h").mkdir()
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("METERLINE_CATALOG_DIR", str(catalog))
    assert cli.main(["portal", "token", "issue", "c_beta"]) == 0
    printed = capsys.readouterr()
    secret = printed.out.split()[0]
    assert secret.startswith("mlp_") and secret not in printed.err and "no expiry" in printed.err
    assert cli.main(["portal", "token", "list", "--format", "json"]) == 0
    tokens = json.loads(capsys.readouterr().out)["tokens"]
    assert [t["customer_id"] for t in tokens] == ["c_beta"]
    assert cli.main(["portal", "token", "revoke", tokens[0]["token_id"]]) == 0
    assert cli.main(["portal", "token", "issue", "c_nobody"]) == 2
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["portal", "token", "issue"])  # CUSTOMER_ID required


def test_the_portal_answers_while_a_writer_holds_the_warehouse(portal):
    """A run holds the warehouse in another process: the portal reads the snapshot."""
    import subprocess
    import sys

    build_snapshot(portal.home / "warehouse.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(portal.home / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for path in PAGES:
            assert fetch(portal.base + path, session=portal.alpha).status == 200, path
        assert sign_in(portal.base, portal.alpha).status == 303
    finally:
        holder.kill()
        holder.wait(timeout=10)
