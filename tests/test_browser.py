"""What a person sees, in a real browser: the published invoice document and the Dagster UI,
rendered by a headless Chromium driven by Playwright.

Playwright does not download a browser here: the tests launch Debian's `chromium` (apt-get
install -y chromium). Without one they skip, unless METERLINE_REQUIRE_BROWSER=1 (set by
.ci/run), where they fail. Screenshots are kept in test-artifacts/ at the repository root."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, meterline_bin, pinned_now, run_meterline
from tests.handmade import CATALOG, EXPECTED, make_home

ARTIFACTS = REPO / "test-artifacts"
PERIOD = "2026-10"
INVOICE_ID = "INV-202610-hm_usd"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
A4 = {"width": 794, "height": 1123}  # A4 at 96 dpi
SCREEN = {"width": 1440, "height": 900}
UI_TIMEOUT = 90_000  # ms: the UI answers in ~15 s, its code location loads after that
UI_START_SECONDS = 180
# A seller with every field the document prints (documents.read_seller).
SELLER = {"seller_name": "Meterline Test Seller GmbH",
          "address": "Musterstrasse 1, 10115 Berlin",
          "email": "billing@seller.example",
          "tax_id": "DE123456789"}
# The billing assets the UI must list, by asset key.
BILLING_ASSETS = ["marts/fct_invoices", "marts/fct_invoice_lines", "marts/fct_meter_usage",
                  "catalog/rates", "raw/usage_events", "billing/publish_invoices"]
DBT_INVOICE_CHECK = "assert_invoice_total_equals_sum_of_lines"
# Reconciliation checks (orchestration/billing/checks.py) on the invoice marts.
RECONCILIATION_CHECKS = {
    "marts/fct_invoices": {"table_expectations"},
    "marts/fct_invoice_lines": {"line_amounts_match_decimal_pricer"},
}
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's chromium, or a skip (a failure under METERLINE_REQUIRE_BROWSER=1)."""
    required = os.environ.get("METERLINE_REQUIRE_BROWSER") == "1"
    if sync_playwright is None:
        message = "playwright is not installed: pip install -e '.[dev]'"
        if required:
            pytest.fail(f"METERLINE_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    path = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    if path is None:
        if required:
            pytest.fail("METERLINE_REQUIRE_BROWSER=1 but no headless Chromium was found on PATH "
                        "(neither `chromium` nor `chromium-headless-shell`): install Debian's "
                        "chromium (apt-get install -y chromium)")
        pytest.skip("headless Chromium not found: install Debian's chromium "
                    "(apt-get install -y chromium) to run the browser tests")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Published:
    home: Path
    catalog: Path
    cwd: Path
    ingest_run_id: str
    publish_run_id: str


@pytest.fixture(scope="module")
def published(chromium_path: str, tmp_path_factory) -> Published:
    """One hand-made home, ingested and October published through the real CLI (~40 s)."""
    seller_csv = ("seller_name,address,email,tax_id\n"
                  + ",".join(f'"{SELLER[k]}"' for k in ("seller_name", "address", "email",
                                                         "tax_id")) + "\n")
    home, cat, cwd = make_home(tmp_path_factory.mktemp("browser"),
                               catalog={**CATALOG, "seller.csv": seller_csv})
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    ingest_run = re.search(rf"Dagster run:? ({RUN_ID.pattern})", done.stdout + done.stderr)
    done = run_meterline(["bill", "--period", PERIOD, "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    publish_run = re.search(rf"\(Dagster run ({RUN_ID.pattern})\)", done.stderr)
    assert ingest_run and publish_run, "the CLI names the Dagster run of ingest and bill"
    return Published(home, cat, cwd, ingest_run.group(1), publish_run.group(1))


# --------------------------------------------------------------------------- helpers
def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert_png(path, min_width=page.viewport_size["width"], min_height=300)
    return path


def assert_png(path: Path, *, min_width: int, min_height: int) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is no PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, f"{path} is {width}x{height}"
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes: a blank page?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_ui(published: Published) -> Iterator[str]:
    """`meterline ui` on the home's instance; yields its base URL once /server_info answers.
    Stopped with SIGINT (then killed after 30 s) whatever happens."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env["METERLINE_NOW"] = pinned_now()
    env["METERLINE_HOME"] = str(published.home)
    env["METERLINE_CATALOG_DIR"] = str(published.catalog)
    log_path = published.home.parent / f"ui-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([meterline_bin(), "ui", "--port", str(port)], env=env,
                                cwd=published.cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + UI_START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, "meterline ui exited:\n" + log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"the UI did not come up in {UI_START_SECONDS} s:\n"
                    + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
            proc.wait(timeout=10)


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def declared_asset_checks(base: str) -> dict[str, list[str]]:
    """The code location's assets and their checks, as the server declares them (waits for the
    code location, which loads after the server answers)."""
    deadline = time.monotonic() + UI_START_SECONDS
    while True:
        data = graphql(base, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                             "locationOrLoadError { __typename ... on PythonError { message } } "
                             "} } } assetNodes { assetKey { path } assetChecksOrError { "
                             "... on AssetChecks { checks { name } } } } }")
        entries = data["workspaceOrError"]["locationEntries"]
        errors = [e["locationOrLoadError"] for e in entries
                  if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        assert not errors, f"the code location failed to load: {errors[0]['message'][-2000:]}"
        if data["assetNodes"]:
            return {"/".join(n["assetKey"]["path"]):
                    sorted(c["name"] for c in (n["assetChecksOrError"] or {}).get("checks", []))
                    for n in data["assetNodes"]}
        assert time.monotonic() < deadline, "the code location did not load its assets"
        time.sleep(1)


def shown(locator, timeout: int = UI_TIMEOUT) -> None:
    expect(locator).to_be_visible(timeout=timeout)


def graph_menu(page: Page, graph, item: str, attempts: int = 6) -> None:
    """Choose ``item`` from the lineage graph's context menu (right click on its background).
    While the graph is still laying itself out a right click opens no menu: try again."""
    for _ in range(attempts):
        graph.click(button="right", position={"x": 10, "y": 500})
        entry = page.get_by_role("menuitem", name=item)
        try:
            entry.wait_for(state="visible", timeout=10_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        entry.click()
        return
    raise AssertionError(f"the lineage graph's context menu never offered {item!r}")


# --------------------------------------------------------------------------- test 1
def test_invoice_document_reads_right_in_a_browser(published: Published, browser: Browser):
    folder = published.home / "invoices" / PERIOD
    doc = json.loads((folder / f"{INVOICE_ID}.json").read_text())
    currency, total, expected_lines = EXPECTED["hm_usd"]
    # the JSON beside the page is the hand-worked invoice: the page is checked against it
    assert (doc["currency"], doc["total"]) == (currency, total)
    assert [(ln["line_type"], ln["product_item_id"], ln["tier"], ln["quantity"], ln["amount"])
            for ln in doc["lines"]] == expected_lines
    assert doc["seller"] == SELLER and doc["customer"]["customer_id"] == "hm_usd"

    page = browser.new_page(viewport=A4)
    try:
        page.goto((folder / f"{INVOICE_ID}.html").as_uri())
        # the tab names the invoice
        expect(page).to_have_title(re.compile(rf"\b{re.escape(doc['invoice_number'])}\b"))
        assert INVOICE_ID in page.title()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            f"Invoice {doc['invoice_number']}")
        body = page.inner_text("body")
        assert doc["invoice_number"].startswith("MLN-")
        # invoice date (issued after the period closed) and billing period
        assert doc["invoice_date"] >= doc["billing_period"]["end"]
        assert f"issued {doc['invoice_date']}" in body
        # the JSON keeps the contract's exclusive end; a person reads first to last day
        assert doc["billing_period"] == {"start": "2026-10-01", "end": "2026-11-01"}
        assert "billing period 2026-10-01 to 2026-10-31" in body

        # seller and customer, each in its own block
        parties = page.locator(".parties > div")
        seller_block = parties.filter(has_text="From")
        customer_block = parties.filter(has_text="Bill to")
        for key, value in SELLER.items():
            expect(seller_block).to_contain_text(f"Tax ID {value}" if key == "tax_id" else value)
        expect(customer_block).to_contain_text(doc["customer"]["customer_name"])
        expect(customer_block).to_contain_text("hm_usd")
        assert doc["customer"]["customer_name"] == "Handmade USD"

        # the lines table: one row per line, each with its quantity, unit price and amount
        expect(page.get_by_role("columnheader", name=f"Amount ({currency})")).to_be_visible()
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(len(doc["lines"]))
        for row, line in zip(rows.all(), doc["lines"], strict=True):
            cells = row.locator("td")
            expect(cells).to_have_count(5)
            expect(cells.nth(0)).to_have_text(str(line["line_number"]))
            expect(cells.nth(1)).to_contain_text(line["product_item"])
            item_text = cells.nth(1).inner_text()
            assert item_text.count(line["product_item"]) == 1, item_text  # named once
            expect(cells.nth(2)).to_have_text(f"{line['quantity']} {line['unit']}")
            expect(cells.nth(3)).to_have_text(line["unit_price"])
            expect(cells.nth(4)).to_have_text(line["amount"])
            for number_cell in (cells.nth(2), cells.nth(3), cells.nth(4)):
                assert number_cell.evaluate("e => getComputedStyle(e).textAlign") == "right"
            if "tier_range" in line:  # the tier breakdown a person can check by hand
                rng = line["tier_range"]
                detail = cells.nth(1).inner_text()
                assert re.search(rf"\btier {line['tier']}\b", detail), detail
                assert re.search(rf"\babove {re.escape(rng['above'])}\b", detail), detail
                if rng["up_to"] is not None:
                    assert re.search(rf"\bup to {re.escape(rng['up_to'])}\b", detail), detail
                assert detail.count("above") == 1, detail
                if line.get("flat_fee"):  # 1506.5 x 0.005 = 7.5325, + 1.00 flat = 8.53
                    assert f"plus a flat fee of {line['flat_fee']}" in detail, detail
        graduated = [(ln["tier"], ln["quantity"], ln["unit_price"], ln["amount"],
                      ln["tier_range"]) for ln in doc["lines"]
                     if ln["pricing_model"] == "graduated"]
        assert graduated == [
            (1, "1000", "0.01", "10.00", {"above": "0", "up_to": "1000"}),
            (2, "1506.5", "0.005", "8.53", {"above": "1000", "up_to": None})]
        assert [ln.get("flat_fee") for ln in doc["lines"] if ln["pricing_model"] == "graduated"
                ] == [None, "1.00"]

        # subtotal and total, in the currency, where a person looks first
        subtotal_row = page.locator("tfoot tr").filter(has_text="Subtotal")
        expect(subtotal_row).to_contain_text(doc["subtotal"])
        total_row = page.locator("tfoot tr").filter(has_text="Total due")
        expect(total_row).to_contain_text(f"{currency} {total}")
        assert f"{currency} {total}" == "USD 94.45"
        total_cell = total_row.get_by_text(f"{currency} {total}", exact=True)
        assert total_cell.is_visible()
        expect(total_cell).to_be_in_viewport()  # on the first A4 screen, no scrolling

        # laid out for the page: nothing overflows sideways at A4 width
        widths = page.evaluate("[document.documentElement.scrollWidth, "
                               "document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the page overflows horizontally: {widths}"
        table_right = page.locator("table").bounding_box()
        assert table_right["x"] + table_right["width"] <= A4["width"]

        shot = screenshot(page, f"invoice-{INVOICE_ID}.png", full_page=True)
        assert_png(shot, min_width=A4["width"], min_height=A4["height"])
    finally:
        page.close()


# --------------------------------------------------------------------------- test 2
def test_dagster_ui_shows_the_billing_assets_checks_and_cli_runs(published: Published,
                                                                 browser: Browser):
    with dagster_ui(published) as base:
        declared = declared_asset_checks(base)
        billing_assets = BILLING_ASSETS
        assert set(billing_assets) <= set(declared), sorted(declared)
        assert DBT_INVOICE_CHECK in declared["marts/fct_invoices"]
        for key, checks in RECONCILIATION_CHECKS.items():
            assert checks <= set(declared[key]), (key, declared[key])

        context = browser.new_context(viewport=SCREEN)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT)
        page.set_default_navigation_timeout(UI_TIMEOUT)
        # "Join the Dagster community" shows once per instance: skip it whenever it shows
        page.add_locator_handler(page.get_by_role("button", name="Skip"),
                                 lambda skip: skip.click())
        try:
            page.goto(f"{base}/")
            shown(page.get_by_role("link", name="Runs"))
            shown(page.get_by_role("link", name="Catalog"))

            # the asset catalog, filtered to the billing assets (the UI's own asset selection)
            selection = " or ".join(f'key:"{key}"' for key in billing_assets)
            page.goto(f"{base}/assets?asset-selection={urllib.parse.quote(selection)}")
            for key in billing_assets:
                link = page.locator(f'a[href="/assets/{key}"]')
                shown(link)
                expect(link).to_contain_text(key.replace("/", " / "), timeout=UI_TIMEOUT)
            listed = page.locator('a[href^="/assets/"]').evaluate_all(
                "links => links.map(a => a.getAttribute('href'))")
            assert {h.removeprefix("/assets/") for h in listed if "?" not in h} == set(
                billing_assets), listed
            # their status column loaded before the picture ("Loading…", "- partitions")
            expect(page.get_by_text("Loading…", exact=True)).to_have_count(
                0, timeout=UI_TIMEOUT)
            expect(page.get_by_text("- partitions", exact=True)).to_have_count(
                0, timeout=UI_TIMEOUT)
            screenshot(page, "dagster-ui-asset-catalog.png")

            # the same assets in the lineage graph, groups expanded
            page.goto(f"{base}/asset-groups~{urllib.parse.quote(selection, safe='')}")
            graph = page.locator("[data-svg-viewport]")
            shown(graph.locator('[aria-label="unfold_more"]').first)
            for item in ("Change graph to vertical orientation", "Expand all groups"):
                graph_menu(page, graph, item)
            for group in ("ingestion", "catalog", "marts", "publishing"):
                shown(graph.get_by_text(group, exact=True).first)
            expect(graph.locator('[aria-label="unfold_more"]')).to_have_count(
                0, timeout=UI_TIMEOUT)
            for name in ("fct_invoices", "fct_invoice_lines", "fct_meter_usage", "rates",
                         "usage_events"):
                shown(graph.get_by_text(name, exact=True))
            screenshot(page, "dagster-ui-asset-graph.png")

            # each invoice mart's checks tab lists what the code location declares
            for key in ("marts/fct_invoices", "marts/fct_invoice_lines"):
                names = declared[key]
                present = RECONCILIATION_CHECKS[key]
                page.goto(f"{base}/assets/{key}?view=checks")
                shown(page.get_by_text(f"Checks ({len(names)})", exact=True))
                search = page.get_by_role("textbox", name="Filter checks")
                must_pass = present | ({DBT_INVOICE_CHECK} if key == "marts/fct_invoices"
                                       else set())
                for name in names:  # names are middle-truncated; the full one is the title
                    search.fill(name)
                    item = page.get_by_title(name, exact=True)
                    shown(item)
                    if name in must_pass:  # ran in the CLI's publish run
                        expect(item.locator("..")).to_contain_text("Succeeded",
                                                                   timeout=UI_TIMEOUT)
                if key == "marts/fct_invoices":
                    search.fill(DBT_INVOICE_CHECK)
                    page.get_by_title(DBT_INVOICE_CHECK, exact=True).click()
                    shown(page.get_by_text(f"test.meterline.{DBT_INVOICE_CHECK}", exact=True))
                    shown(page.get_by_text("Passed", exact=True).first)
                search.fill("")
                screenshot(page, f"dagster-ui-checks-{key.replace('/', '-')}.png")

            # the CLI's runs, by their run ids (the UI shows the first 8 characters)
            page.goto(f"{base}/runs")
            for run_id, job in ((published.ingest_run_id, "ingest_job"),
                                (published.publish_run_id, "publish_job")):
                link = page.locator(f'a[href="/runs/{run_id}"]').filter(has_text=run_id[:8])
                shown(link)
                expect(link).to_have_text(run_id[:8], timeout=UI_TIMEOUT)
                row = page.locator("[data-index]").filter(has=link)
                for text in (job, "Success", "meterline/source: cli"):
                    expect(row).to_contain_text(text, timeout=UI_TIMEOUT)
                if job == "publish_job":
                    expect(row).to_contain_text(f"partition: {PERIOD}", timeout=UI_TIMEOUT)
            screenshot(page, "dagster-ui-runs.png")
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)  # what the page showed when it went wrong
            page.screenshot(path=str(ARTIFACTS / "dagster-ui-failure.png"))
            raise
        finally:
            context.close()
