"""The parties and arithmetic of invoice documents (docs/contract.md E21), fast tier: the catalog
check of seller.csv and of customers.csv's billing columns (every problem with file, row and
field), and documents rendered from a hand-written invoice: due date from the terms, every
line's calculation, a PDF whose bytes are the same on every rendering (a document rewritten after
a killed publish must match its seal), stored as text and written back byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from orchestration.billing import documents, documents_pdf
from orchestration.billing.ledger import document_sha256
from orchestration.catalog.model import parse
from orchestration.catalog.read import load_catalog, read_currencies
from orchestration.catalog.rules import validate

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(SEEDS, root)
    return root


def test_the_demo_price_book_names_every_party(tmp_path):
    parsed = parse(load_catalog(SEEDS))
    assert validate(load_catalog(SEEDS)) == []
    (seller,) = parsed.sellers
    assert seller.legal_name and seller.address and seller.tax_id and seller.email
    assert seller.payment_terms_days == 30
    for customer in parsed.customers:
        d = customer.details
        assert d.legal_name and d.address and d.tax_id and d.email, customer.customer_id


def test_party_problems_are_listed_with_file_row_and_field(tmp_path):
    root = _copy(tmp_path)
    customers = (root / "customers.csv").read_text().splitlines()
    customers[1] = customers[1].rsplit(",", 2)[0] + ",not-an-email,30"
    customers[2] = customers[2].rsplit(",", 1)[0] + ",net 30"
    customers[3] = customers[3].rsplit(",", 1)[0] + ",400"
    (root / "customers.csv").write_text("\n".join(customers) + "\n")
    (root / "seller.csv").write_text("seller_name,address,email,payment_terms_days\n"
                                     ",Somewhere 1,billing@x.example,-5\n"
                                     "Second Seller,,,\n")
    found = [(p.file, p.row, p.field) for p in validate(load_catalog(root))]
    assert found == [("customers.csv", 1, "email"), ("customers.csv", 2, "payment_terms_days"),
                     ("customers.csv", 3, "payment_terms_days"),
                     ("seller.csv", 1, "seller_name"), ("seller.csv", 1, "payment_terms_days"),
                     ("seller.csv", 2, None)], found


def test_a_catalog_without_the_e16_columns_still_validates(tmp_path):
    root = _copy(tmp_path)
    (root / "seller.csv").unlink()
    lines = (root / "customers.csv").read_text().splitlines()
    (root / "customers.csv").write_text(
        "\n".join(",".join(line.split(",")[:5]) for line in lines) + "\n")
    catalog = load_catalog(root)
    assert validate(catalog) == []
    assert parse(catalog).sellers == []
    assert documents.read_seller(root) == {"seller_name": documents.NO_SELLER}


def _invoice() -> dict:
    d = Decimal
    period, end = date(2026, 10, 1), date(2026, 11, 1)
    common = {"usage_period_start": period, "usage_period_end": end, "meter_id": None}
    lines = [
        {**common, "line_number": 1, "line_type": "usage", "product_item_id": "compute_hours",
         "meter_id": "compute_hours", "description": "Compute hours",
         "quantity": d("3181.604"), "unit_price": d("0.085"), "tier": None,
         "amount": d("269.59"), "rate_id": "r_compute_usd"},
        {**common, "line_number": 2, "line_type": "usage", "product_item_id": "sso_logins",
         "description": "SSO logins", "quantity": d("2275"), "unit_price": d("2.50"),
         "tier": None, "amount": d("5.00"), "rate_id": "r_logins_usd"},
        {**common, "line_number": 3, "line_type": "usage", "product_item_id": "api_calls",
         "description": "API calls, tier 2", "quantity": d("1896873"),
         "unit_price": d("0.0004"), "tier": 2, "amount": d("807.75"), "rate_id": "r_api_usd"},
        {**common, "line_number": 4, "line_type": "minimum_commitment", "product_item_id": None,
         "description": "Minimum commitment", "quantity": None, "unit_price": None,
         "tier": None, "amount": d("1417.66"), "rate_id": None},
        {"line_number": 5, "line_type": "adjustment", "product_item_id": "storage_us",
         "meter_id": None, "description": "Adjustment for 2026-09",
         "usage_period_start": date(2026, 9, 1), "usage_period_end": period,
         "quantity": d("10"), "unit_price": None, "tier": None, "amount": d("0.23"),
         "rate_id": "r_storage_us_usd", "billed_before": (d("40"), d("0.92"))},
    ]
    total = sum((ln["amount"] for ln in lines), d(0))
    return {"invoice_id": "INV-202610-acme_corp", "invoice_number": "MLN-000007",
            "status": "published", "customer_id": "acme_corp",
            "issued_at": datetime(2026, 12, 1, 5, tzinfo=UTC), "billing_period_start": period,
            "billing_period_end": end, "currency": "USD", "lines": lines, "subtotal": total,
            "total": total}


def _render(pdf: bool = True) -> dict[str, str]:
    parsed = parse(load_catalog(SEEDS))
    return documents.render_documents([_invoice()], parsed=parsed,
                                      seller=documents.read_seller(SEEDS),
                                      currencies=read_currencies(), pdf=pdf)


def test_every_line_carries_its_calculation_and_the_due_date_its_terms():
    doc = json.loads(_render(pdf=False)["INV-202610-acme_corp.json"])
    assert (doc["invoice_date"], doc["due_date"], doc["payment_terms"]["text"]) == (
        "2026-12-01", "2026-12-31", "Net 30 days")
    assert doc["customer"]["legal_name"] == "Acme Corporation Inc."
    calcs = [ln["calculation"] for ln in doc["lines"]]
    assert calcs[0] == {"method": "per_unit", "quantity": "3181.604", "free_units": "10",
                        "chargeable_units": "3171.604", "unit_price": "0.085",
                        "amount": "269.59"}  # 3171.604 x 0.085 = 269.58634 -> 269.59
    assert (calcs[1]["package_size"], calcs[1]["packages"]) == ("1000", "2")
    assert calcs[2]["method"] == "graduated" and calcs[2]["flat_fee"] == "49.00"
    assert calcs[2]["tier_range"] == {"above": "100000", "up_to": "2000000"}
    assert calcs[3]["minimum_amount"] == "2500.00" and calcs[3]["usage_total"] == "1082.34"
    assert calcs[4]["restates"] == {
        "period": "2026-09", "usage_period": {"start": "2026-09-01", "end": "2026-10-01"},
        "product_item_id": "storage_us", "quantity_billed_before": "40",
        "quantity_change": "10", "quantity_now": "50"}
    assert (calcs[4]["billed_before"], calcs[4]["repriced_amount"]) == ("0.92", "1.15")
    assert calcs[4]["repriced"] == [{"method": "per_unit", "quantity": "50", "free_units": "0",
                                     "chargeable_units": "50", "unit_price": "0.023",
                                     "amount": "1.15"}]
    from tests.test_invoice_pdf import _recompute

    for line in doc["lines"]:  # as the demo's are, in tests/test_invoice_pdf.py
        assert _recompute(line["calculation"], line, doc) == Decimal(line["amount"]), line
    page = _render(pdf=False)["INV-202610-acme_corp.html"]
    assert "3181.604 hour - 10 free = 3171.604 hour chargeable x 0.085 = USD 269.59" in page
    assert "Net 30 days" in page and "2026-12-31" in page and "Tax ID US-EIN 94-1234567" in page


def test_the_pdf_is_the_same_bytes_on_every_rendering_and_written_as_sealed(tmp_path):
    first, second = _render(), _render()
    name = "INV-202610-acme_corp.pdf"
    assert first[name] == second[name]
    written = documents.write_files(tmp_path, first)
    on_disk = (tmp_path / name).read_bytes()
    assert on_disk.startswith(b"%PDF-") and tmp_path / name in written
    assert hashlib.sha256(on_disk).hexdigest() == document_sha256(name, first[name])
    html_name = "INV-202610-acme_corp.html"
    assert (tmp_path / html_name).read_text() == first[html_name]
    assert document_sha256(html_name, first[html_name]) == hashlib.sha256(
        first[html_name].encode()).hexdigest()


def test_a_period_printed_by_worker_processes_is_the_same_bytes_in_the_same_order():
    # 30 invoices (enough for the pool: documents_pdf.POOL_FROM_PAGES), each with its own id
    # and number, so a PDF given to the wrong invoice would be noticed
    invoices = []
    for n in range(documents_pdf.POOL_FROM_PAGES + 6):
        invoice = _invoice()
        invoice["invoice_id"] = f"INV-202610-c{n:04d}"
        invoice["invoice_number"] = f"MLN-{n + 1:06d}"
        invoices.append(invoice)
    parsed = parse(load_catalog(SEEDS))
    kwargs = {"parsed": parsed, "seller": documents.read_seller(SEEDS),
              "currencies": read_currencies()}
    pooled = documents.render_documents(invoices, workers=2, **kwargs)
    names = [f"{i['invoice_id']}.pdf" for i in invoices]
    assert [name for name in pooled if name.endswith(".pdf")] == names
    assert len({pooled[name] for name in names}) == len(names)  # every invoice its own PDF
    for number in (0, 17, len(invoices) - 1):  # each as one invoice printed in this process
        alone = documents.render_documents([invoices[number]], workers=1, **kwargs)
        assert alone[names[number]] == pooled[names[number]]
