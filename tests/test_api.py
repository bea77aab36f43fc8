"""The HTTP API under /v1 (orchestration/web/api.py), fast tier: the real app under uvicorn on a
free 127.0.0.1 port, real HTTP (http.client), keys issued by the real `meterline api-key`
command and portal tokens by customer_tokens, on a small hand-made readers' snapshot. The last
two (e2e) run benchmarks/load.py at a tiny size, and post to a real home's server, run
`meterline ingest` and read the usage back.

The hand-made snapshot (the pinned clock's month M = 2026-12, last month L = 2026-11):
    acme_corp  api_calls: L-day 3: 5 events, 5.5; M-day 1: 2 events, 1.005 (unbilled item: 4)
               storage_gb: M-day 1: max 12.5
               invoices: L published MLN-000007 USD 20.50 (2 lines); M draft USD 1.01
    globex     api_calls: M-day 1: 7 events, 7
    kumo_tech    a JPY customer: M draft 1500 (no minor unit)"""

from __future__ import annotations

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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import uvicorn

from orchestration.lib import clock, periods
from orchestration.lib.settings import Settings, load
from orchestration.web import api, api_keys, auth, customer_tokens, openapi
from orchestration.web.app import create_app
from tests.conftest import REPO, replaced_files_still_open, run_meterline

TODAY = clock.today()
THIS = TODAY.replace(day=1)
LAST = periods.previous_period(THIS)
LDAY = LAST.replace(day=3)
SEEDS = REPO / "seeds"

SCHEMA = """
create schema marts; create schema reference; create schema raw; create schema billing;
create schema catalog;
create table catalog.meters (meter_id varchar, display_name varchar, unit varchar,
                             aggregation varchar, unique_dimension varchar, time_unit varchar);
create table raw.landed_files (file_sha256 varchar, source_file varchar, rows_landed bigint,
                               landed_at timestamptz);
create table main.snapshot_about (built_at timestamptz, source json);
create table reference.iso_4217_currencies (currency varchar, minor_unit integer,
                                            currency_name varchar);
create table marts.dim_customers (customer_id varchar, customer_name varchar, currency varchar,
                                  active_from date, active_to date);
create table marts.fct_usage_daily (usage_date date, billing_period_start date,
    customer_id varchar, meter_id varchar, product_item_id varchar, aggregation varchar,
    event_count bigint, quantity decimal(38, 12), is_additive boolean);
create table marts.fct_invoices (invoice_id varchar, customer_id varchar,
    billing_period_start date, billing_period_end date, currency varchar,
    subtotal decimal(38, 4), total decimal(38, 4), line_count integer, status varchar,
    invoice_number varchar, issued_at timestamptz, usage_accrued_to timestamptz);
create table marts.fct_invoice_lines (invoice_id varchar, line_number integer,
    customer_id varchar, billing_period_start date, billing_period_end date,
    usage_period_start date, usage_period_end date, line_type varchar, product_item_id varchar,
    meter_id varchar, description varchar, quantity decimal(38, 12),
    unit_price decimal(38, 12), tier integer, amount decimal(38, 4), currency varchar,
    rate_id varchar);
"""


def build_snapshot(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nxt = periods.next_period(THIS)
    con = duckdb.connect(str(path))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(SCHEMA)
        con.execute("insert into main.snapshot_about values "
                    "(timestamptz '2026-11-30 23:59:58+00', '{}')")
        con.execute("insert into catalog.meters values ('api_calls', 'API calls', 'call', "
                    "'sum', null, null), ('storage_gb', 'Storage', 'GB', 'max', null, null)")
        con.execute("insert into reference.iso_4217_currencies values ('USD', 2, 'US Dollar'),"
                    " ('JPY', 0, 'Yen')")
        con.execute("insert into marts.dim_customers values "
                    "('acme_corp', 'Acme Corp', 'USD', null, null), "
                    "('globex', 'Globex', 'USD', null, null), "
                    "('kumo_tech', 'Kumo KK', 'JPY', null, null)")
        con.execute("""insert into marts.fct_usage_daily values
            ($l, $lp, 'acme_corp', 'api_calls', 'api_calls', 'sum', 5, 5.5, true),
            ($t, $tp, 'acme_corp', 'api_calls', 'api_calls', 'sum', 2, 1.005, true),
            ($t, $tp, 'acme_corp', 'api_calls', null, 'sum', 4, 4, true),
            ($t, $tp, 'acme_corp', 'storage_gb', 'storage', 'max', 3, 12.5, false),
            ($t, $tp, 'globex', 'api_calls', 'api_calls', 'sum', 7, 7, true)""",
                    {"l": LDAY, "lp": LAST, "t": THIS, "tp": THIS})
        con.execute("""insert into marts.fct_invoices values
            ('INV-L-acme', 'acme_corp', $last, $this, 'USD', 20.5, 20.5, 2, 'published',
             'MLN-000007', timestamptz '2026-12-01 02:00:00+00',
             timestamptz '2026-12-01 00:00:00+00'),
            ('INV-M-acme', 'acme_corp', $this, $next, 'USD', 1.01, 1.01, 1, 'draft', null, null,
             timestamptz '2026-12-01 04:00:00+00'),
            ('INV-M-kumo', 'kumo_tech', $this, $next, 'JPY', 1500, 1500, 1, 'draft', null, null,
             null)""", {"last": LAST, "this": THIS, "next": nxt})
        con.execute("""insert into marts.fct_invoice_lines values
            ('INV-L-acme', 1, 'acme_corp', $last, $this, $last, $this, 'usage', 'api_calls',
             'api_calls', 'API calls', 5.5, 0.1, null, 0.55, 'USD', 'r1'),
            ('INV-L-acme', 2, 'acme_corp', $last, $this, $last, $this, 'minimum_commitment',
             null, null, 'Minimum commitment top-up', null, null, null, 19.95, 'USD', null),
            ('INV-M-acme', 1, 'acme_corp', $this, $next, $this, $next, 'usage', 'api_calls',
             'api_calls', 'API calls', 1.005, 1.004975124378, null, 1.01, 'USD', 'r1'),
            ('INV-M-kumo', 1, 'kumo_tech', $this, $next, $this, $next, 'usage', 'api_calls',
             'api_calls', 'API calls', 1500, 1, null, 1500, 'JPY', 'r2')""",
                    {"last": LAST, "this": THIS, "next": nxt})
    finally:
        con.close()


# --------------------------------------------------------------------------- the server
@dataclass
class Served:
    host: str
    port: int
    cfg: Settings
    home: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(home: Path) -> Served:
        cfg = load(environ={"METERLINE_HOME": str(home), "METERLINE_CATALOG_DIR": str(SEEDS)})
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
        return Served("127.0.0.1", port, cfg, home)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    build_snapshot(home / "snapshot" / "warehouse.duckdb")
    (home / "landing").mkdir()
    return home


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def call(served: Served, method: str, path: str, *, key: str | None = None,
         body: bytes | None = None, headers: dict | None = None,
         content_type: str | None = "application/json") -> Answer:
    con = http.client.HTTPConnection(served.host, served.port, timeout=30)
    try:
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if body is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        con.request(method, path, body=body, headers=hdrs)
        response = con.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      response.read())
    finally:
        con.close()


def post(served: Served, key: str | None, doc, **kw) -> Answer:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return call(served, "POST", "/v1/events", key=key, body=body, **kw)


def cli_key(home: Path, scope: str, name: str = "") -> str:
    done = run_meterline(["api-key", "issue", "--scope", scope, "--name", name], home=home,
                         catalog=SEEDS, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def landed(home: Path) -> list[Path]:
    """Every file under landing/ (temporary ones too)."""
    return sorted(p for p in (home / "landing").rglob("*") if p.is_file())


def event(i: int, **extra) -> dict:
    return {"event_id": f"e{i}", "customer_id": "acme_corp", "meter": "api_calls",
            "value": 1, "timestamp": f"{THIS.isoformat()}T01:00:00Z", **extra}


# --------------------------------------------------------------------------- keys
def test_keys_are_issued_listed_and_revoked_by_the_cli_and_only_hashes_kept(home, serve):
    ingest = cli_key(home, "ingest", "producer-1")
    operator = cli_key(home, "operator")
    assert ingest.startswith("mli_") and operator.startswith("mlk_")
    assert len(ingest) == 4 + 43 and len(operator) == 4 + 43
    path = home / "access" / "api_keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert ingest not in text and operator not in text
    assert hashlib.sha256(ingest.encode()).hexdigest() in text
    listing = run_meterline(["api-key", "list", "--format", "json"], home=home, catalog=SEEDS,
                            cwd=REPO, timeout=120)
    keys = json.loads(listing.stdout)["keys"]
    assert [(k["scope"], k["name"], k["revoked_at"]) for k in keys] == [
        ("ingest", "producer-1", None), ("operator", "", None)]
    assert all("sha256" not in k for k in keys) and ingest not in listing.stdout
    table = run_meterline(["api-key", "list"], home=home, catalog=SEEDS, cwd=REPO, timeout=120)
    assert keys[0]["key_id"] in table.stdout and "producer-1" in table.stdout

    served = serve(home)
    assert post(served, ingest, {"events": [event(1)]}).status == 202
    assert call(served, "GET", "/v1/customers/acme_corp/usage", key=operator).status == 200
    revoked = run_meterline(["api-key", "revoke", keys[0]["key_id"]], home=home, catalog=SEEDS,
                            cwd=REPO, timeout=120)
    assert revoked.returncode == 0 and "revoked" in revoked.stderr
    # effective at the next request, no restart; the other key still works
    assert post(served, ingest, {"events": [event(2)]}).status == 401
    assert call(served, "GET", "/v1/customers/acme_corp/usage", key=operator).status == 200
    listing = json.loads(run_meterline(["api-key", "list", "--format", "json"], home=home,
                                       catalog=SEEDS, cwd=REPO, timeout=120).stdout)
    assert listing["keys"][0]["revoked_at"] and listing["keys"][1]["revoked_at"] is None
    unknown = run_meterline(["api-key", "revoke", "key_nope"], home=home, catalog=SEEDS,
                            cwd=REPO, timeout=120)
    assert unknown.returncode == 2 and "no API key" in unknown.stderr


def test_concurrent_issues_lose_no_key(home):
    cfg = load(environ={"METERLINE_HOME": str(home)})
    threads = [threading.Thread(target=api_keys.issue, args=(cfg, "ingest")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k.key_id for k in api_keys.load_keys(cfg)}) == 8


def test_scopes_an_ingest_key_only_posts_an_operator_key_only_reads(home, serve):
    served = serve(home)
    ingest = api_keys.issue(served.cfg, "ingest").secret
    operator = api_keys.issue(served.cfg, "operator").secret
    refused = post(served, operator, {"events": [event(1)]})
    assert refused.status == 403 and refused.json["error"]["code"] == "forbidden"
    for path in ("/v1/customers/acme_corp/usage", "/v1/customers/acme_corp/invoices"):
        assert call(served, "GET", path, key=ingest).status == 403
        assert call(served, "GET", path, key=operator).status == 200
    assert landed(home) == []


def test_every_401_is_the_same_whatever_the_reason(home, serve):
    served = serve(home)
    cfg = served.cfg
    revoked = api_keys.issue(cfg, "ingest")
    api_keys.revoke(cfg, revoked.key.key_id)
    portal = customer_tokens.issue(cfg, "acme_corp", expires_days=None).secret
    operator_token = auth.issue_operator_token(cfg).secret
    attempts = [{}, {"Authorization": "Bearer mli_wrong"}, {"Authorization": "Bearer"},
                {"Authorization": f"Basic {revoked.secret}"},
                {"Authorization": f"Bearer {revoked.secret}"},
                {"Authorization": f"Bearer {portal}"},  # a portal token posts nothing
                {"Authorization": f"Bearer {operator_token}"},  # nor the operator's pages token
                {"Cookie": f"{auth.COOKIE}={operator_token}"},
                {"Cookie": f"meterline_portal={portal}"},  # the portal's cookie opens no API
                {"Authorization": "Bearer " + "x" * 10_000}]
    answers = [post(served, None, {"events": [event(1)]}, headers=h) for h in attempts]
    reads = [call(served, "GET", "/v1/customers/acme_corp/usage", headers=h)
             for h in attempts if "mlp_" not in h.get("Authorization", "")]
    for a in answers + reads:
        assert (a.status, a.body) == (answers[0].status, answers[0].body)
        assert a.headers["www-authenticate"] == 'Bearer realm="meterline api"'
    assert answers[0].status == 401 and answers[0].json["error"]["code"] == "unauthorized"
    assert landed(home) == []


# --------------------------------------------------------------------------- POST /v1/events
def test_a_batch_is_one_complete_file_with_the_exact_events_and_a_retry_writes_no_other(
        home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    body = (b'{"events": [{"event_id": "big", "customer_id": "acme_corp", "meter": "api_calls",'
            b' "value": 12345678901234567890.123456789012, "timestamp": "2026-12-01T01:00:00Z"},'
            b' {"event_id": "r", "customer_id": "acme_corp", "meter": "api_calls",'
            b' "value": 1.005, "timestamp": 1796140800000, "dimensions": {"region": "eu"}},'
            b' {"event_id": "s", "customer_id": "acme_corp", "meter": "api_calls",'
            b' "value": "617.25", "timestamp": "2026-12-01T01:00:00Z", "x": 1e3,'
            b' "name": "caf\\u00e9 \\n line"}]}')
    answer = post(served, key, body)
    assert answer.status == 202, answer.body
    doc = answer.json
    assert doc["accepted"] == 3 and doc["already_written"] is False
    today = clock.now().strftime("%Y/%m/%d")
    assert doc["file"] == f"api/{today}/{doc['batch_id']}.jsonl"
    path = home / "landing" / doc["file"]
    assert landed(home) == [path]  # no temporary file left behind
    content = path.read_bytes()
    assert hashlib.sha256(content).hexdigest() == doc["batch_id"]
    lines = content.decode().splitlines()
    assert len(lines) == 3 and content.endswith(b"\n")
    sent = json.loads(body, parse_float=Decimal)["events"]
    assert [json.loads(line, parse_float=Decimal) for line in lines] == sent
    assert '"value":12345678901234567890.123456789012' in lines[0]
    assert '"value":1.005' in lines[1] and "1.0049" not in content.decode()
    assert json.loads(lines[2])["name"] == "café \n line"

    again = post(served, key, body)
    assert again.status == 202 and again.json["already_written"] is True
    assert again.json["file"] == doc["file"] and landed(home) == [path]
    # the same events sent again with other whitespace: the same content, the same file
    assert post(served, key, body.replace(b", ", b",")).json["file"] == doc["file"]
    assert landed(home) == [path]


def test_a_repeated_field_is_written_as_sent_for_the_landing_rules(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    body = (b'{"events": [{"event_id": "d", "event_id": "d2", "customer_id": "acme_corp",'
            b' "meter": "api_calls", "timestamp": "2026-12-01T01:00:00Z"}]}')
    answer = post(served, key, body)
    assert answer.status == 202
    line = (home / "landing" / answer.json["file"]).read_text()
    assert line.count('"event_id"') == 2  # the landing path makes it malformed_row


BAD_BATCHES = [
    (b'{"events": [', "malformed JSON"),
    (b'{"events": [{"event_id": "a",}]}', "malformed JSON"),
    (b"", "malformed JSON"),
    (b'[{"event_id": "a"}]', "must be a JSON object"),
    (b'"events"', "must be a JSON object"),
    (b"{}", '"events" is missing'),
    (b'{"events": {"event_id": "a"}}', "must be a list"),
    (b'{"events": "a"}', "must be a list"),
    (b'{"events": []}', "is empty"),
    (b'{"events": [{"event_id": "a"}], "extra": 1}', "unknown field 'extra'"),
    (b'{"events": [{}], "events": [{}]}', "given twice"),
    (b'{"events": [{"a": 1}, {"b": 2}, {"c": 3}, 4]}', "events[3] is not an object"),
    (b'{"events": [{"a": 1}, null]}', "events[1] is not an object"),
    (b'{"events": [["a"]]}', "events[0] is not an object"),
    (b'{"events": [{"value": NaN}]}', "NaN is not JSON"),
    (b'{"events": [{"value": Infinity}]}', "Infinity is not JSON"),
    (b'{"events": [{"event_id": "\xff"}]}', "not UTF-8"),
    (b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "malformed JSON"),
    (json.dumps({"events": [event(i) for i in range(1001)]}).encode(), "holds 1001 events"),
]


@pytest.mark.parametrize(("body", "problem"), BAD_BATCHES,
                         ids=[f"bad{i}" for i in range(len(BAD_BATCHES))])
def test_a_bad_batch_is_400_naming_the_problem_and_nothing_is_written(home, serve, body,
                                                                      problem):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    answer = post(served, key, body)
    assert answer.status == 400, answer.body
    assert answer.json["error"]["code"] == "bad_request"
    assert problem in answer.json["error"]["message"]
    assert landed(home) == []


def test_1000_events_are_accepted(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    answer = post(served, key, {"events": [event(i) for i in range(1000)]})
    assert answer.status == 202 and answer.json["accepted"] == 1000
    assert len((home / "landing" / answer.json["file"]).read_text().splitlines()) == 1000


def test_oversize_and_wrong_content_type_are_refused_before_anything_is_written(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    big = b'{"events": [{"event_id": "' + b"x" * api.MAX_BODY_BYTES + b'"}]}'
    answer = post(served, key, big)
    assert answer.status == 413 and "1048576 bytes" in answer.json["error"]["message"]
    # no Content-Length (chunked): the stream is cut at the cap
    con = http.client.HTTPConnection(served.host, served.port, timeout=30)
    con.request("POST", "/v1/events", body=iter([big[i:i + 65536]
                                                  for i in range(0, len(big), 65536)]),
                headers={"Authorization": f"Bearer {key}",
                         "Content-Type": "application/json"}, encode_chunked=True)
    assert con.getresponse().status == 413
    con.close()
    wrong = post(served, key, {"events": [event(1)]}, content_type="text/plain")
    assert wrong.status == 415
    assert post(served, key, {"events": [event(1)]}, content_type=None).status == 415
    assert call(served, "GET", "/v1/events", key=key).status == 405
    assert landed(home) == []


def test_the_api_writes_only_into_landing_api(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    for path in ("/v1/events/../../access", "/v1/events%2F..%2F..%2Fx", "/v1/../landing"):
        assert call(served, "POST", path, key=key, body=b'{"events": [{}]}').status in (
            404, 405)
    answer = post(served, key, {"events": [event(1)]})
    assert answer.status == 202
    assert all(p.is_relative_to(home / "landing" / "api") for p in landed(home))


def test_ingest_reads_the_batch_file_and_never_the_temporary_one(home, serve):
    from orchestration.ingestion.landing.files import format_of, landable_files

    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    answer = post(served, key, {"events": [event(1)]})
    written = home / "landing" / answer.json["file"]
    temporary = written.with_name(f".{written.stem}.1a2b3c4d.tmp")
    temporary.write_bytes(written.read_bytes())  # as a write cut short would leave it
    assert landable_files(home / "landing") == [written]
    assert format_of(written) == "jsonl" and format_of(temporary) is None


@pytest.mark.parametrize("blocker", ["file", "symlink"])
def test_a_failed_write_is_503_and_leaves_nothing(home, serve, tmp_path, blocker):
    served = serve(home)
    key = api_keys.issue(served.cfg, "ingest").secret
    if blocker == "file":
        (home / "landing" / "api").write_text("not a folder")
    else:
        (tmp_path / "elsewhere").mkdir()
        (home / "landing" / "api").symlink_to(tmp_path / "elsewhere")
    answer = post(served, key, {"events": [event(1)]})
    assert answer.status == 503 and answer.json["error"]["code"] == "not_written"
    assert "send it again" in answer.json["error"]["message"]
    assert [p.name for p in (home / "landing").rglob("*")] == ["api"]
    if blocker == "symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == []


# --------------------------------------------------------------------------- GET usage, invoices
def test_usage_is_the_daily_mart_with_exact_quantities(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "operator").secret
    doc = call(served, "GET", "/v1/customers/acme_corp/usage", key=key).json
    # default: this month to date, today included (to is exclusive: tomorrow)
    assert (doc["from"], doc["to"]) == (THIS.isoformat(), (TODAY + timedelta(1)).isoformat())
    assert doc["customer_id"] == "acme_corp" and doc["granularity"] == "day"
    assert doc["data_as_of"] == "2026-11-30T23:59:58+00:00"
    assert doc["usage"] == [
        {"date": THIS.isoformat(), "meter_id": "api_calls", "product_item_id": "api_calls",
         "aggregation": "sum", "is_additive": True, "event_count": 2, "quantity": "1.005"},
        {"date": THIS.isoformat(), "meter_id": "api_calls", "product_item_id": None,
         "aggregation": "sum", "is_additive": True, "event_count": 4, "quantity": "4"},
        {"date": THIS.isoformat(), "meter_id": "storage_gb", "product_item_id": "storage",
         "aggregation": "max", "is_additive": False, "event_count": 3, "quantity": "12.5"}]
    wide = call(served, "GET", f"/v1/customers/acme_corp/usage?from={LAST}&to={THIS}",
                key=key).json
    assert [(r["date"], r["quantity"]) for r in wide["usage"]] == [(LDAY.isoformat(), "5.5")]
    one_day = call(served, "GET", f"/v1/customers/acme_corp/usage?from={LDAY}"
                   f"&to={LDAY + timedelta(1)}&granularity=day", key=key).json
    assert len(one_day["usage"]) == 1
    empty = call(served, "GET", f"/v1/customers/acme_corp/usage?from={LDAY + timedelta(1)}"
                 f"&to={THIS}", key=key).json
    assert empty["usage"] == []


@pytest.mark.parametrize(("query", "problem"), [
    ("from=2026-13-01", "from is not a calendar date"),
    ("from=2026-1-1", "from must be a date"),
    ("to=yesterday", "to must be a date"),
    ("from=2026-12-02&to=2026-12-01", "from must be before to"),
    ("from=2026-12-01&to=2026-12-01", "from must be before to"),
    ("from=2025-01-01&to=2026-12-01", "at most 366"),
    ("granularity=hour", "granularity must be day"),
    ("granularity=month", "granularity must be day"),
    ("start=2026-12-01", "unknown parameter 'start'"),
    ("from=2026-12-01&from=2026-11-01", "from is given more than once"),
    ("from=2026-12-01'%20or%201=1--", "from must be a date"),
    ("from=" + "9" * 5000, "from must be a date"),
])
def test_a_bad_usage_parameter_is_400_naming_it(home, serve, query, problem):
    served = serve(home)
    key = api_keys.issue(served.cfg, "operator").secret
    answer = call(served, "GET", f"/v1/customers/acme_corp/usage?{query}", key=key)
    assert answer.status == 400 and problem in answer.json["error"]["message"], answer.body


def test_invoices_published_and_draft_with_exact_money(home, serve):
    served = serve(home)
    key = api_keys.issue(served.cfg, "operator").secret
    doc = call(served, "GET", "/v1/customers/acme_corp/invoices", key=key).json
    draft, published = doc["invoices"]
    assert (draft["status"], draft["invoice_number"], draft["total"]) == ("draft", None, "1.01")
    assert draft["lines"] == [{
        "line_number": 1, "line_type": "usage", "product_item_id": "api_calls",
        "meter_id": "api_calls", "description": "API calls",
        "usage_period_start": THIS.isoformat(),
        "usage_period_end": periods.next_period(THIS).isoformat(), "quantity": "1.005",
        "unit_price": "1.004975124378", "tier": None, "amount": "1.01"}]
    assert draft["usage_accrued_to"] == "2026-12-01T04:00:00+00:00"
    assert (published["status"], published["invoice_number"], published["subtotal"],
            published["total"], published["line_count"]) == (
        "published", "MLN-000007", "20.50", "20.50", 2)
    assert [ln["amount"] for ln in published["lines"]] == ["0.55", "19.95"]
    assert sum(Decimal(ln["amount"]) for ln in published["lines"]) == Decimal(
        published["total"])
    assert published["lines"][1]["quantity"] is None
    assert published["issued_at"] == "2026-12-01T02:00:00+00:00"
    kumo = call(served, "GET", "/v1/customers/kumo_tech/invoices", key=key).json["invoices"]
    assert kumo[0]["total"] == "1500" and kumo[0]["lines"][0]["amount"] == "1500"
    assert call(served, "GET", "/v1/customers/globex/invoices", key=key).json["invoices"] == []
    assert call(served, "GET", "/v1/customers/acme_corp/invoices?x=1", key=key).status == 400


def test_a_portal_token_reads_only_its_own_customer(home, serve):
    served = serve(home)
    cfg = served.cfg
    acme = customer_tokens.issue(cfg, "acme_corp", expires_days=None)
    operator = api_keys.issue(cfg, "operator").secret
    for path in ("usage", "invoices"):
        own = call(served, "GET", f"/v1/customers/acme_corp/{path}", key=acme.secret)
        assert own.status == 200
        assert own.body == call(served, "GET", f"/v1/customers/acme_corp/{path}",
                                key=operator).body
        other = call(served, "GET", f"/v1/customers/globex/{path}", key=acme.secret)
        unknown = call(served, "GET", f"/v1/customers/nobody/{path}", key=operator)
        unknown_by_token = call(served, "GET", f"/v1/customers/nobody/{path}", key=acme.secret)
        assert other.status == unknown.status == unknown_by_token.status == 404
        assert other.body == unknown.body == unknown_by_token.body
        assert b"globex" not in other.body
    # the portal token posts nothing; revoked, it reads nothing either
    assert post(served, acme.secret, {"events": [event(1)]}).status == 401
    customer_tokens.revoke(cfg, acme.token_id)
    assert call(served, "GET", "/v1/customers/acme_corp/usage", key=acme.secret).status == 401


HOSTILE_IDS = ["acme_corp'%20or%20'1'='1", "acme_corp%27--", "%2e%2e%2f%2e%2e%2faccess",
               "..%2F..%2Fsnapshot", "acme_corp%00", "x" * 5000, "%E2%80%AE", "*", "%25",
               "acme_corp%20", "ACME_CORP"]


@pytest.mark.parametrize("customer", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_ids_are_404_and_leak_nothing(home, serve, customer):
    """Injection, traversal, NUL, oversized and look-alike ids: 404, the unknown customer's
    answer (or, for an id holding a '/', the unknown endpoint's), for a key and a token."""
    served = serve(home)
    operator = api_keys.issue(served.cfg, "operator").secret
    acme = customer_tokens.issue(served.cfg, "acme_corp", expires_days=None).secret
    expected = {call(served, "GET", "/v1/customers/nobody/usage", key=operator).body,
                call(served, "GET", "/v1/no/such/endpoint", key=operator).body}
    for key in (operator, acme):
        for path in ("usage", "invoices"):
            answer = call(served, "GET", f"/v1/customers/{customer}/{path}", key=key)
            assert answer.status == 404 and answer.body in expected, (customer, answer.body)


def test_reads_answer_while_a_writer_holds_the_warehouse(home, serve):
    """The API reads the snapshot: a process holding the live file does not slow it."""
    live = home / "warehouse.duckdb"
    holder = duckdb.connect(str(live))
    try:
        served = serve(home)
        key = api_keys.issue(served.cfg, "operator").secret
        started = time.monotonic()
        assert call(served, "GET", "/v1/customers/acme_corp/usage", key=key).status == 200
        assert time.monotonic() - started < 5
    finally:
        holder.close()


def test_a_new_snapshot_is_seen_by_the_next_request_and_the_old_file_is_let_go(home, serve,
                                                                              tmp_path):
    served = serve(home)
    key = api_keys.issue(served.cfg, "operator").secret
    path = f"/v1/customers/globex/usage?from={THIS}"
    assert call(served, "GET", path, key=key).json["usage"][0]["quantity"] == "7"
    new = tmp_path / "new.duckdb"
    build_snapshot(new)
    con = duckdb.connect(str(new))
    con.execute("update marts.fct_usage_daily set quantity = 8.25 where customer_id = 'globex'")
    con.close()
    os.replace(new, home / "snapshot" / "warehouse.duckdb")  # as snapshot.publish does
    assert call(served, "GET", path, key=key).json["usage"][0]["quantity"] == "8.25"
    # the replaced file's database was closed: the server holds no replaced snapshot open
    assert replaced_files_still_open(str(home / "snapshot")) == []


def test_concurrent_reads_and_posts_all_answer_right(home, serve):
    served = serve(home)
    operator = api_keys.issue(served.cfg, "operator").secret
    ingest = api_keys.issue(served.cfg, "ingest").secret
    expected = call(served, "GET", "/v1/customers/acme_corp/invoices", key=operator).body
    answers: list[tuple[str, int, bytes]] = []

    def reads() -> None:
        for _ in range(10):
            a = call(served, "GET", "/v1/customers/acme_corp/invoices", key=operator)
            answers.append(("get", a.status, a.body))

    def posts(n: int) -> None:
        for j in range(3):
            a = post(served, ingest, {"events": [event(1000 * n + j)]})
            answers.append(("post", a.status, a.body))

    threads = [threading.Thread(target=reads) for _ in range(10)]
    threads += [threading.Thread(target=posts, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for k, s, _ in answers if k == "get") == [200] * 100
    assert all(b == expected for k, _, b in answers if k == "get")
    assert [s for k, s, _ in answers if k == "post"] == [202] * 12
    assert len([p for p in landed(home) if not p.name.startswith(".")]) == 12 == len(
        landed(home))


def test_no_snapshot_yet_is_503_saying_so(tmp_path, serve):
    home = tmp_path / "empty"
    home.mkdir()
    served = serve(home)
    key = api_keys.issue(served.cfg, "operator").secret
    answer = call(served, "GET", "/v1/customers/acme_corp/usage", key=key)
    assert answer.status == 503 and answer.json["error"]["code"] == "no_data"


# --------------------------------------------------------------------------- OpenAPI
def _refs(node) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_the_openapi_document_describes_every_route_the_app_serves_under_v1(home, serve):
    served = serve(home)
    doc = call(served, "GET", "/v1/openapi.json").json
    assert doc == json.loads(json.dumps(openapi.document()))
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"ingestKey", "operatorKey", "portalToken"}
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    served_paths = {r.path for r in create_app(served.cfg).routes
                    if r.path.startswith("/v1") and "{rest:path}" not in r.path}
    assert served_paths == set(doc["paths"])
    verbs = {"get", "post", "put", "patch", "delete", "head", "options"}
    operation_ids = []
    for path, ops in doc["paths"].items():
        assert path.startswith("/v1/") and set(ops) <= verbs
        for op in ops.values():
            operation_ids.append(op["operationId"])
            assert op["summary"] and op["responses"]
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)
            for status in op["responses"]:
                assert status.isdigit()
            for param in op.get("parameters", []):
                assert param["in"] in ("path", "query") and "schema" in param
                if param["in"] == "path":
                    assert param["required"] and "{" + param["name"] + "}" in path
    assert len(operation_ids) == len(set(operation_ids))
    assert doc["paths"]["/v1/events"]["post"]["security"] == [{"ingestKey": []}]
    batch = doc["components"]["schemas"]["EventBatch"]["properties"]["events"]
    assert batch["maxItems"] == api.MAX_EVENTS
    for ref in _refs(doc):
        name = ref.removeprefix("#/components/schemas/")
        assert ref.startswith("#/components/schemas/") and name in doc["components"]["schemas"]


def test_the_docs_page_is_rendered_on_the_server_with_no_script(home, serve):
    served = serve(home)
    page = call(served, "GET", "/v1/docs")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    text = page.body.decode()
    assert "<script" not in text and "http://" not in text.replace("http://127.0.0.1:8080", "")
    for path in openapi.document()["paths"]:
        assert path in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    unknown = call(served, "GET", "/v1/nope")
    assert unknown.status == 404 and unknown.json["error"]["code"] == "not_found"


# --------------------------------------------------------------------------- the load test
@pytest.mark.e2e
def test_the_load_test_runs_at_a_tiny_size(home, tmp_path):
    """benchmarks/load.py end to end at a size a test affords (no bill, no RESULTS.md)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env["METERLINE_NOW"] = os.environ["METERLINE_NOW"]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "load.py"), "--home", str(home),
         "--clients", "3", "--requests", "30", "--post-seconds", "1", "--post-clients", "1",
         "--no-results"], capture_output=True, text=True, timeout=180, env=env, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["get"]["requests"] == 30 and result["get"]["errors"] == 0
    assert result["post"]["events"] >= 1000 and result["post"]["errors"] == 0
    assert list((home / "landing").rglob("*.jsonl")) == []  # the posted files are removed
    keys = api_keys.load_keys(load(environ={"METERLINE_HOME": str(home)}))
    assert keys and all(k.revoked_at for k in keys)


# --------------------------------------------------------------------------- end to end
@pytest.mark.e2e
def test_posted_events_show_in_the_month_to_date_usage_after_the_next_ingest(tmp_path, serve):
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    served = serve(home)
    ingest_key = cli_key(home, "ingest")
    operator = cli_key(home, "operator")
    at = f"{TODAY.isoformat()}T01:00:00Z"  # before the pinned clock's now
    batch = {"events": [
        {"event_id": f"api-{i}", "customer_id": "acme_corp", "meter": "api_calls",
         "value": "1.005", "timestamp": at} for i in range(3)]}
    first = post(served, ingest_key, batch)
    assert first.status == 202
    assert post(served, ingest_key, batch).json["already_written"] is True  # identical retry
    # a retry in another batch (one event again, one new): the copy lands as a duplicate
    overlap = {"events": [batch["events"][0],
                          {"event_id": "api-new", "customer_id": "acme_corp",
                           "meter": "api_calls", "value": 2, "timestamp": at}]}
    second = post(served, ingest_key, overlap)
    assert second.status == 202 and second.json["file"] != first.json["file"]
    assert len(landed(home)) == 2

    done = run_meterline(["ingest", "--format", "json"], home=home, catalog=SEEDS, cwd=REPO,
                         env={"METERLINE_INGEST_REFRESH": "on"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    files = {f["source_file"]: f for f in report["files"]}
    assert (files[first.json["file"]]["landed"], files[first.json["file"]]["quarantined"]) == (
        3, 0)
    assert (files[second.json["file"]]["landed"], files[second.json["file"]]["duplicates"]) == (
        1, 1)
    usage = call(served, "GET", f"/v1/customers/acme_corp/usage?from={TODAY}"
                 f"&to={TODAY + timedelta(1)}", key=operator)
    assert usage.status == 200, (usage.body, done.stderr)  # a failed refresh says why there
    rows = [r for r in usage.json["usage"] if r["meter_id"] == "api_calls"]
    assert [(r["event_count"], r["quantity"]) for r in rows] == [(4, "5.015")]
    # and the draft of this month bills them
    invoices = call(served, "GET", "/v1/customers/acme_corp/invoices", key=operator).json
    this_month = [i for i in invoices["invoices"]
                  if i["billing_period_start"] == date(TODAY.year, TODAY.month, 1).isoformat()]
    assert this_month and this_month[0]["status"] == "draft"
    assert os.path.exists(home / "snapshot" / "warehouse.duckdb")
