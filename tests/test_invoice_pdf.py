"""Invoices a finance team can send and a customer can check (issue 18, docs/contract.md E21), on
the demo: `meterline demo` publishes 2026-10, and for every published invoice

- every line's amount is recomputed here, with decimal.Decimal, from the document's own figures
  (its ``calculation``), and the page prints the same arithmetic;
- the PDF beside the JSON and HTML opens (A4 pages, the number, dates, parties and total in its
  text);
- the page in headless Chromium shows seller, buyer, number, issue and due dates and terms;
- `meterline verify` is clean, and names a PDF changed after publishing;
- `meterline explain` takes the printed number; `invoices --customer` refuses an unknown one."""

from __future__ import annotations

import html
import importlib.util
import json
import math
import os
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, run_meterline

pytestmark = pytest.mark.e2e
PERIOD = "2026-10"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo_documents")
    home, cwd = root / "home", root / "cwd"
    cwd.mkdir()
    done = run_meterline(["demo"], home=home, catalog=REPO / "seeds", cwd=cwd, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, cwd


def _documents(home: Path) -> list[dict]:
    folder = home / "invoices" / PERIOD
    docs = [json.loads(p.read_text()) for p in sorted(folder.glob("INV-*.json"))]
    assert docs, f"no published documents in {folder}"
    return docs


def _round(value: Decimal, places: int) -> Decimal:
    """Half away from zero, once, to the minor unit."""
    magnitude = value.copy_abs().quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return -magnitude if value < 0 else magnitude


def _places(money: str) -> int:
    return len(money.split(".")[1]) if "." in money else 0


def _recompute(calc: dict, line: dict, doc: dict) -> Decimal:
    """A line's amount from its figures alone, as a reader would by hand."""
    d = Decimal
    places = _places(calc["amount"])
    method = calc["method"]
    if method in ("per_unit", "package"):
        quantity, free = d(calc["quantity"]), d(calc["free_units"])
        assert quantity == d(line["quantity"]), line
        chargeable = max(quantity - free, d(0))
        assert chargeable == d(calc["chargeable_units"]), calc
        if method == "per_unit":
            return _round(chargeable * d(calc["unit_price"]), places)
        packages = math.ceil(chargeable / d(calc["package_size"]))
        assert packages == int(calc["packages"]), calc
        return _round(packages * d(calc["unit_price"]), places)
    if method in ("graduated", "volume"):
        units, rng = d(calc["units"]), calc["tier_range"]
        above = d(rng["above"])
        upper = None if rng["up_to"] is None else d(rng["up_to"])
        if method == "volume":  # every unit, priced by the tier that holds the quantity
            assert units == d(line["quantity"]) and (units == 0 or units > above), calc
            assert upper is None or units <= upper, calc
        else:  # only this tier's units
            assert upper is None or units <= upper - above, calc
        return _round(units * d(calc["unit_price"]) + d(calc["flat_fee"]), places)
    if method == "minimum_commitment":
        usage = sum((d(ln["amount"]) for ln in doc["lines"] if ln["line_type"] == "usage"),
                    d(0))
        assert usage == d(calc["usage_total"]), calc
        return _round(d(calc["commitment"]["minimum_amount"]) - usage, places)
    if method == "adjustment":
        restated = calc["restates"]
        assert restated["period"] and line["usage_period"]["start"].startswith(restated["period"])
        if restated["product_item_id"] is not None:
            assert d(restated["quantity_now"]) - d(restated["quantity_billed_before"]) == \
                d(restated["quantity_change"]) == d(line["quantity"] or 0), calc
        if "repriced" in calc:  # the restated period's lines at the quantity now
            repriced = sum((_recompute(c, {"quantity": c.get("quantity", c.get("units"))}, doc)
                            for c in calc["repriced"]), d(0))
            assert repriced == d(calc["repriced_amount"]), calc
        return d(calc["repriced_amount"]) - d(calc["billed_before"])
    raise AssertionError(f"line {line['line_number']}: unknown method {method!r}")


def test_every_line_recomputes_from_the_document(demo):
    home, _ = demo
    from orchestration.billing.documents_lines import explain

    methods = set()
    for doc in _documents(home):
        page = (home / "invoices" / PERIOD / f"{doc['invoice_id']}.html").read_text()
        total = Decimal(0)
        for line in doc["lines"]:
            calc = line["calculation"]
            methods.add(calc["method"])
            assert _recompute(calc, line, doc) == Decimal(line["amount"]) == \
                Decimal(calc["amount"]), (doc["invoice_number"], line)
            assert html.escape(explain(calc, doc["currency"], line["unit"])) in page, line
            total += Decimal(line["amount"])
        assert total == Decimal(doc["subtotal"]) == Decimal(doc["total"]), doc["invoice_number"]
    # the demo prices with every model, its free units and a package size among them
    assert {"per_unit", "package", "graduated", "volume"} <= methods, methods


def test_documents_name_both_parties_the_terms_and_the_due_date(demo):
    home, _ = demo
    from datetime import date, timedelta

    for doc in _documents(home):
        seller, buyer = doc["seller"], doc["customer"]
        assert seller["seller_name"] and seller["address"] and seller["tax_id"] and \
            seller["email"], seller
        assert buyer["legal_name"] and buyer["address"] and buyer["tax_id"] and buyer["email"]
        days = doc["payment_terms"]["net_days"]
        assert date.fromisoformat(doc["due_date"]) == \
            date.fromisoformat(doc["invoice_date"]) + timedelta(days=days)
    terms = {d["customer"]["customer_id"]: d["payment_terms"]["net_days"]
             for d in _documents(home)}
    assert terms["globex"] == 45  # its own terms (customers.csv)
    assert terms["initech"] == 30  # none of its own: the seller's (seller.csv)


def test_the_pdf_opens_with_its_figures_as_text(demo):
    home, _ = demo
    from pypdf import PdfReader

    for doc in _documents(home):
        path = home / "invoices" / PERIOD / f"{doc['invoice_id']}.pdf"
        assert path.read_bytes().startswith(b"%PDF-"), path
        reader = PdfReader(str(path))
        assert 1 <= len(reader.pages) <= 3, (path, len(reader.pages))
        width, height = (float(v) for v in reader.pages[0].mediabox[2:])
        assert (round(width), round(height)) == (595, 842), "A4 in points"
        text = " ".join((p.extract_text() or "") for p in reader.pages)
        # compared without white space: a text extractor may split a word at a kerned glyph
        flat = "".join(text.split())
        for figure in (doc["invoice_number"], f"{doc['currency']} {doc['total']}",
                       doc["invoice_date"], doc["due_date"], doc["payment_terms"]["text"],
                       doc["seller"]["seller_name"], doc["customer"]["legal_name"],
                       doc["customer"]["tax_id"]):
            assert "".join(figure.split()) in flat, (path.name, figure, flat[:2000])
        for line in doc["lines"]:
            assert line["amount"] in flat, (path.name, line["line_number"])
        assert doc["invoice_number"] in text and doc["total"] in text


def test_verify_is_clean_and_names_a_pdf_changed_after_publishing(demo):
    home, cwd = demo
    catalog = REPO / "seeds"
    done = run_meterline(["verify", "--format", "json"], home=home, catalog=catalog, cwd=cwd)
    result = json.loads(done.stdout)
    assert done.returncode == 0 and result["ok"], result["findings"][:5]
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        recorded = dict(con.execute(
            "select file_name, sha256 from billing.published_documents "
            "where file_name like '%.pdf'").fetchall())
    finally:
        con.close()
    assert len(recorded) == len(_documents(home)), "one PDF per invoice, its SHA-256 recorded"
    import hashlib

    path = home / "invoices" / PERIOD / f"{_documents(home)[0]['invoice_id']}.pdf"
    original = path.read_bytes()
    assert hashlib.sha256(original).hexdigest() == recorded[path.name]
    try:
        path.write_bytes(original.replace(b"%PDF-", b"%PDF-\n%tampered\n", 1))
        done = run_meterline(["verify", "--format", "json"], home=home, catalog=catalog,
                             cwd=cwd)
        result = json.loads(done.stdout)
        assert done.returncode == 1 and not result["ok"]
        (finding,) = result["findings"]
        assert finding["field"] == path.name and "changed after publishing" in \
            finding["message"] and not finding["pending"], finding
    finally:
        path.write_bytes(original)
    assert run_meterline(["verify"], home=home, catalog=catalog, cwd=cwd).returncode == 0


def test_explain_takes_the_printed_number_and_invoices_refuse_an_unknown_customer(demo):
    home, cwd = demo
    catalog = REPO / "seeds"
    doc = _documents(home)[0]
    by_number = run_meterline(["explain", "--invoice", doc["invoice_number"], "--format",
                               "json"], home=home, catalog=catalog, cwd=cwd)
    assert by_number.returncode == 0, by_number.stderr[-2000:]
    by_id = run_meterline(["explain", "--invoice", doc["invoice_id"], "--format", "json"],
                          home=home, catalog=catalog, cwd=cwd)
    assert json.loads(by_number.stdout) == json.loads(by_id.stdout)
    missing = run_meterline(["explain", "--invoice", "MLN-999999"], home=home,
                            catalog=catalog, cwd=cwd)
    assert missing.returncode == 2 and "MLN-999999" in missing.stderr
    unknown = run_meterline(["invoices", "--period", PERIOD, "--customer", "nobody_here"],
                            home=home, catalog=catalog, cwd=cwd)
    assert unknown.returncode == 2 and "nobody_here" in unknown.stderr, unknown
    known = run_meterline(["invoices", "--period", PERIOD, "--customer", "acme_corp"],
                          home=home, catalog=catalog, cwd=cwd)
    assert known.returncode == 0 and doc["invoice_number"] in known.stdout + json.dumps(doc)


def _chromium() -> str:
    """Debian's chromium, or a skip (a failure under METERLINE_REQUIRE_BROWSER=1), as in
    tests/test_browser.py."""
    path = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    if path is None or importlib.util.find_spec("playwright") is None:
        message = "headless Chromium or playwright not found (apt-get install -y chromium)"
        if os.environ.get("METERLINE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"METERLINE_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return path


@pytest.mark.browser
def test_the_page_in_chromium_shows_every_field(demo):
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    home, _ = demo
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 794, "height": 1123})
            for doc in _documents(home):
                page.goto((home / "invoices" / PERIOD / f"{doc['invoice_id']}.html").as_uri())
                body = " ".join(page.inner_text("body").split())
                seller, buyer = doc["seller"], doc["customer"]
                expected = [doc["invoice_number"], f"issued {doc['invoice_date']}",
                            doc["due_date"], doc["payment_terms"]["text"],
                            seller["seller_name"], seller["email"], f"Tax ID {seller['tax_id']}",
                            buyer["legal_name"], *buyer["address"], buyer["email"],
                            f"Tax ID {buyer['tax_id']}", f"{doc['currency']} {doc['total']}"]
                for field in expected:
                    assert field in body, (doc["invoice_number"], field)
                rows = page.locator("table tbody tr")
                assert rows.count() == len(doc["lines"])
                for row, line in zip(rows.all(), doc["lines"], strict=True):
                    text = " ".join(row.inner_text().split())
                    calc = line["calculation"]
                    for key in ("free_units", "chargeable_units", "package_size", "packages",
                                "units", "unit_price", "flat_fee", "amount"):
                        if calc.get(key) is not None:
                            assert calc[key] in text, (doc["invoice_number"], key, text)
                    if calc["method"] in ("graduated", "volume"):
                        assert calc["method"] in text and f"tier {calc['tier']}" in text
        finally:
            browser.close()
