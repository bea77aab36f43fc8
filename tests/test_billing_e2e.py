"""End to end through the real CLI: a hand-made catalog and month (written here, not the demo),
billed to the cent; the same month under America/New_York; a bad catalog; usage errors.

The figures are worked by hand in tests/handmade.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import pinned_now, run_meterline
from tests.handmade import CATALOG, EXPECTED, make_home


def _bill_october(tmp_path: Path, tz: str) -> dict:
    home, cat, cwd = make_home(tmp_path)
    env = {"TZ": tz}
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    assert "october.jsonl" in done.stdout
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "INV-202610-hm_usd" in done.stdout
    done = run_meterline(["invoices", "--period", "2026-10", "--format", "json"],
                         home=home, catalog=cat, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def october_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("utc")


@pytest.fixture(scope="module")
def october_utc(october_home) -> dict:
    return _bill_october(october_home, "UTC")


def _warehouse_state(home: Path) -> dict[str, list]:
    """Every row of every intermediate and mart relation, sorted: what billing wrote."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        names = con.execute("select table_schema, table_name from information_schema.tables "
                            "where table_schema in ('intermediate', 'marts') order by all"
                            ).fetchall()
        return {f"{s}.{t}": sorted(map(repr, con.execute(f'select * from "{s}"."{t}"').fetchall()))
                for s, t in names}
    finally:
        con.close()


def test_rebilling_a_month_changes_nothing_and_other_months_stay(october_utc, october_home):
    home, cat, cwd = october_home / "home", october_home / "catalog", october_home / "cwd"
    before = _warehouse_state(home)
    assert before["marts.fct_invoices"], "October was billed"
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert _warehouse_state(home) == before
    done = run_meterline(["bill", "--period", "2026-11"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr
    after = _warehouse_state(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        october = con.execute("select invoice_id, total from marts.fct_invoices where "
                              "billing_period_start = date '2026-10-01' order by 1").fetchall()
        november = con.execute("select count(*) from marts.fct_invoices where "
                               "billing_period_start = date '2026-11-01'").fetchone()[0]
    finally:
        con.close()
    assert {i: Decimal(t) for i, t in october} == {
        f"INV-202610-{c}": Decimal(v[1]) for c, v in EXPECTED.items()}
    assert november == len(EXPECTED), "every active customer gets a November draft"
    assert after != before


def test_dbt_unit_tests_pass(october_utc, october_home):
    """The pricing unit tests (dbt `unit_tests:`) run against the real warehouse's schema."""
    from orchestration.billing.project import DBT_PROJECT_DIR, dbt_executable

    env = dict(os.environ, METERLINE_WAREHOUSE=str(october_home / "home" / "warehouse.duckdb"))
    done = subprocess.run(
        [dbt_executable(), "test", "--select", "test_type:unit", "--vars",
         "{billing_period: '2026-10-01', run_instant: '2026-11-01T05:00:00+00:00'}",
         "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path",
         str(october_home / "dbt-target"), "--log-path", str(october_home / "dbt-logs")],
        env=env, capture_output=True, text=True, check=False, cwd=october_home,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = [ln for ln in done.stdout.splitlines() if "PASS=" in ln]
    assert summary and "ERROR=0" in summary[-1] and "FAIL" not in summary[-1].split("ERROR")[0]
    passed = int(summary[-1].split("PASS=")[1].split()[0])
    assert passed >= 20, summary[-1]


def test_hand_made_month_bills_to_the_cent(october_utc):
    invoices = {inv["customer_id"]: inv for inv in october_utc["invoices"]}
    assert set(invoices) == set(EXPECTED)
    for customer, (currency, total, lines) in EXPECTED.items():
        inv = invoices[customer]
        assert inv["invoice_id"] == f"INV-202610-{customer}"
        assert inv["currency"] == currency
        assert inv["status"] == "draft" and inv["invoice_number"] is None
        assert inv["total"] == total and inv["subtotal"] == total  # money is a string
        got = [(ln["line_type"], ln["product_item_id"], ln["tier"],
                ln["quantity"] and str(Decimal(ln["quantity"]).normalize()), ln["amount"])
               for ln in inv["lines"]]
        want = [(t, i, tier, q and str(Decimal(q).normalize()), a) for t, i, tier, q, a in lines]
        assert got == want, customer
        assert [ln["line_number"] for ln in inv["lines"]] == list(range(1, len(lines) + 1))
        assert sum(Decimal(ln["amount"]) for ln in inv["lines"]) == Decimal(total)


def test_same_invoices_under_new_york_time_zone(october_utc, tmp_path):
    assert _bill_october(tmp_path, "America/New_York") == october_utc


BAD_CATALOG = dict(CATALOG)
BAD_CATALOG["customers.csv"] = CATALOG["customers.csv"] + "hm_bad,Bad Currency,DOLLARS,,\n"
BAD_CATALOG["rates.csv"] = CATALOG["rates.csv"] + (
    "r_calls_usd,calls_item,,USD,per_unit,0.02,,0,2026-01-01,\n"      # duplicate rate_id + overlap
    "r_pkg,storage_item,hm_usd,USD,package,1.00,0,0,2026-01-01,\n"     # package_size 0, overlap
    "r_free,users_item,hm_usd,USD,volume,,,5,2026-01-01,\n"            # free_units on a tier model
)
BAD_CATALOG["rate_tiers.csv"] = CATALOG["rate_tiers.csv"] + "r_nowhere,1,,1,0\n"  # unknown rate


def test_bad_catalog_stops_billing_listing_every_problem(tmp_path):
    home, cat, cwd = make_home(tmp_path, BAD_CATALOG)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    for needle in ("customers.csv row 5", "DOLLARS", "rates.csv row 13", "r_calls_usd",
                   "package_size", "free_units", "rate_tiers.csv row 9", "r_nowhere"):
        assert needle in out, f"{needle!r} not reported:\n{out}"
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        priced = con.execute("select count(*) from information_schema.tables "
                             "where table_schema in ('marts', 'intermediate')").fetchone()[0]
        assert priced == 0, "nothing may be priced with a bad catalog"
        loaded = con.execute("select count(*) from information_schema.tables "
                             "where table_schema = 'catalog'").fetchone()[0]
        assert loaded == 0, "a bad catalog is never loaded"
    finally:
        con.close()
    done = run_meterline(["catalog"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1 and "DOLLARS" in done.stdout


def test_a_removed_customer_or_meter_with_landed_events_is_a_catalog_problem(tmp_path):
    """Every month's meter usage keeps all landed events: billing any month (September has no
    events at all) names the removed rows before anything is priced, not a failed dbt test."""
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    customers = cat / "customers.csv"
    customers.write_text(customers.read_text().replace("hm_jpy,Handmade JPY,JPY,,\n", ""))
    meters = cat / "meters.csv"
    meters.write_text(meters.read_text().replace("users,Users,user,unique_count,user_id\n", ""))
    items = cat / "product_items.csv"
    items.write_text(items.read_text().replace("users_item,Users,users,\n", ""))
    rates = cat / "rates.csv"
    rates.write_text("\n".join(ln for ln in rates.read_text().splitlines()
                               if not ln.startswith("r_users_")) + "\n")
    tiers = cat / "rate_tiers.csv"
    tiers.write_text("\n".join(ln for ln in tiers.read_text().splitlines()
                               if not ln.startswith("r_users_")) + "\n")
    done = run_meterline(["bill", "--period", "2026-09"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "has 2 problem(s); nothing was priced" in done.stderr
    assert ("customers.csv (hm_jpy), customer_id: customer hm_jpy has 2 landed events (2026-10, "
            "e.g. j-c1) but is not in customers.csv") in done.stderr
    assert ("meters.csv (users), meter_id: meter users has 4 landed events (2026-10, e.g. u-u1) "
            "but is not in meters.csv") in done.stderr
    assert "Dagster run" not in done.stderr  # stopped by the CLI before any run


@pytest.mark.parametrize("args, needle", [
    (["bill", "--period", "2026-13"], "YYYY-MM"),
    (["bill", "--period", "2999-01"], "future"),
    (["invoices", "--period", "10-2026"], "YYYY-MM"),
])
def test_bad_period_is_exit_2(tmp_path, args, needle):
    home, cat, cwd = make_home(tmp_path)
    done = run_meterline(args, home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 2
    assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_home_or_catalog_is_exit_2(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    done = run_meterline(["ingest"], home=tmp_path / "nope", catalog=cat, cwd=cwd)
    assert done.returncode == 2 and "nope" in done.stderr and "mkdir" in done.stderr
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=tmp_path / "nocat",
                         cwd=cwd)
    assert done.returncode == 2 and "nocat" in done.stderr


def test_notebook_runs_against_a_billed_home_with_outputs_stripped(october_utc, october_home,
                                                                   monkeypatch):
    """The notebook is kept with outputs stripped, and its code runs against a real home."""
    from tests.conftest import REPO

    notebook = json.loads((REPO / "notebooks" / "explore_invoices.ipynb").read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    monkeypatch.setenv("METERLINE_HOME", str(october_home / "home"))
    monkeypatch.setenv("METERLINE_PERIOD", "2026-10")
    namespace: dict = {}
    for cell in code:
        exec("".join(cell["source"]), namespace)
    totals = namespace["totals"]
    assert totals == {"USD": Decimal("94.45"), "EUR": Decimal("50.00"), "JPY": Decimal("26")}
    assert all(isinstance(v, Decimal) for v in totals.values())


def test_dagster_ui_shows_the_cli_runs_and_billing_assets(october_utc, october_home):
    """`meterline ui` serves the code location on the home's instance: the CLI's runs are in
    its run history and the billing assets with their checks are in its asset graph."""
    import signal
    import socket
    import time
    import urllib.request

    from tests.conftest import meterline_bin

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env["METERLINE_NOW"] = pinned_now()
    env["METERLINE_HOME"] = str(october_home / "home")
    env["METERLINE_CATALOG_DIR"] = str(october_home / "catalog")
    proc = subprocess.Popen([meterline_bin(), "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def graphql(query: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["data"]

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the UI did not come up in 120 s"
                assert proc.poll() is None, "meterline ui exited"
                time.sleep(1)
        runs = graphql("{ runsOrError { ... on Runs { results { jobName status } } } }")
        jobs = {(r["jobName"], r["status"]) for r in runs["runsOrError"]["results"]}
        assert ("billing_job", "SUCCESS") in jobs and ("ingest_job", "SUCCESS") in jobs
        while True:  # the code location loads after the server answers
            nodes = graphql("{ assetNodes { assetKey { path } assetChecksOrError { "
                            "... on AssetChecks { checks { name } } } } }")["assetNodes"]
            if nodes or time.monotonic() > deadline:
                break
            time.sleep(1)
        keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"raw/usage_events", "catalog/rates", "marts/fct_invoices"} <= set(keys)
        checks = {c["name"] for c in keys["marts/fct_invoices"]["assetChecksOrError"]["checks"]}
        assert "assert_invoice_total_equals_sum_of_lines" in checks
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_unreadable_file_is_named_exit_1_and_the_others_land(tmp_path):
    import gzip

    home, cat, cwd = make_home(tmp_path)
    payload = gzip.compress(b'{"event_id": "z1", "customer_id": "hm_usd", "meter": "calls", '
                            b'"value": 1, "timestamp": "2026-10-02T00:00:00Z"}\n' * 50)
    (home / "landing" / "broken.jsonl.gz").write_bytes(payload[: len(payload) // 2])
    done = run_meterline(["ingest", "--format", "json"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert [u["source_file"] for u in doc["unreadable"]] == ["broken.jsonl.gz"]
    assert {f["source_file"]: f["landed"] for f in doc["files"]} == {"october.jsonl": 20}
    (home / "landing" / "broken.jsonl.gz").unlink()
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0 and "skipped october.jsonl" in done.stdout, done.stdout


def test_readers_answer_while_a_writer_holds_the_warehouse(october_utc, october_home):
    """DuckDB lets no other process open the file beside a writer: `invoices` then reads the
    snapshot the last writing step published, and says so."""
    home, cat, cwd = october_home / "home", october_home / "catalog", october_home / "cwd"
    writer = duckdb.connect(str(home / "warehouse.duckdb"))  # holds the file like a running bill
    try:
        done = run_meterline(["invoices", "--period", "2026-10", "--format", "json"],
                             home=home, catalog=cat, cwd=cwd)
    finally:
        writer.close()
    assert done.returncode == 0, done.stderr
    assert "snapshot" in done.stderr
    totals = {inv["customer_id"]: inv["total"] for inv in json.loads(done.stdout)["invoices"]}
    assert totals == {c: v[1] for c, v in EXPECTED.items()}


def test_two_writers_at_once_wait_for_each_other(october_utc, october_home):
    """A bill and an ingest started together both succeed: the `duckdb` pool (one slot, in the
    home's dagster.yaml) makes one wait instead of failing on the file lock."""
    import time

    from tests.conftest import meterline_bin

    home, cat, cwd = october_home / "home", october_home / "catalog", october_home / "cwd"
    (home / "landing" / "more.jsonl").write_text(json.dumps(
        {"event_id": "more-1", "customer_id": "hm_jpy", "meter": "calls", "value": 1,
         "timestamp": "2026-11-02T00:00:00Z"}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env["METERLINE_NOW"] = pinned_now()
    env.update(METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(cat))
    bill = subprocess.Popen([meterline_bin(), "bill", "--period", "2026-11"], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    ingest = subprocess.run([meterline_bin(), "ingest", "--format", "json"], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=600, check=False)
    out, err = bill.communicate(timeout=600)
    assert bill.returncode == 0, err[-3000:]
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert "Could not set lock" not in err + ingest.stderr
    landed = {f["source_file"]: f["landed"] for f in json.loads(ingest.stdout)["files"]}
    assert landed == {"more.jsonl": 1}


def test_explain_names_meter_rate_tiers_and_the_deciding_event(october_utc, october_home):
    home, cat, cwd = october_home / "home", october_home / "catalog", october_home / "cwd"
    done = run_meterline(["explain", "--invoice", "INV-202610-hm_usd", "--line", "3"],
                         home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "meter seats, aggregation latest" in out and "rate r_seats_usd" in out
    assert "2 event(s) behind it" in out
    assert "latest of the events behind it: 6; billed quantity max(aggregate, 0) = 6" in out
    events = [ln.split()[1] for ln in out.splitlines() if ln.startswith("    2026-")]
    assert events == ["u-s2", "u-s1"], "the deciding (latest) event comes first"
    done = run_meterline(["explain", "--invoice", "INV-202610-hm_usd", "--line", "2"],
                         home=home, catalog=cat, cwd=cwd)
    assert "tier 2: up to no limit at 0.005 + flat 1  <- this line" in done.stdout
    assert "5 event(s) behind it" in done.stdout  # calls: u-c1..u-c5, not November's u-c6
    assert "sum of the events behind it: 2506.5;" in done.stdout
    done = run_meterline(["explain", "--invoice", "INV-202610-hm_usd", "--line", "5"],
                         home=home, catalog=cat, cwd=cwd)
    assert "unique_count of the events behind it: 3;" in done.stdout  # u1 u2 u3 u1
    done = run_meterline(["explain", "--invoice", "INV-202610-nobody"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 2 and "no invoice" in done.stderr
