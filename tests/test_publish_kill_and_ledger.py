"""Publishing under `kill -9` at each of its steps, and the tamper-evident ledger (issue 12,
items 2, 3 and 5), through the real CLI on the hand-made month.

A publish is killed with SIGKILL at each crash point (orchestration/lib/faults.py): right after
the ledger commit, after the first document, after all documents, after the marts. Whatever the
point, the month already shows as published with its numbers, and the next `bill --publish`
completes it: every document written byte for byte as sealed, `index.html` listing every
invoice, the marts refreshed, `meterline verify` clean. Then the ledger is edited behind
Meterline's back three ways, and `verify` names the first invoice and field each time while
publishing refuses to build on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_meterline
from tests.handmade import EXPECTED, make_home

CRASH_POINTS = ["publish:after_commit", "publish:mid_documents", "publish:after_documents"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The hand-made October, landed and billed once (a template each test copies)."""
    root = tmp_path_factory.mktemp("ingested")
    home, cat, cwd = make_home(root)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    return home, cat, cwd


def _copy(template: tuple[Path, Path, Path], to: Path) -> tuple[Path, Path, Path]:
    home, cat, cwd = template
    shutil.copytree(home, to / "home", symlinks=True)
    return to / "home", cat, cwd


def _sql(home: Path, sql: str, *, write: bool = False) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=not write)
    try:
        con.execute("set TimeZone = 'UTC'")
        result = con.execute(sql)
        return result.fetchall() if result.description else []
    finally:
        con.close()


def _verify(home: Path, cat: Path, cwd: Path) -> tuple[int, dict]:
    done = run_meterline(["verify", "--format", "json"], home=home, catalog=cat, cwd=cwd)
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_publish_killed_at_any_step_completes_on_the_next(point, ingested, tmp_path):
    home, cat, cwd = _copy(ingested, tmp_path)
    killed = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home,
                           catalog=cat, cwd=cwd, env={"METERLINE_FAULT": point})
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
    # the commit happened: the month is published, and shows so with its numbers at once
    assert _sql(home, "select count(*) from billing.published_invoices")[0][0] == len(EXPECTED)
    shown = run_meterline(["invoices", "--period", "2026-10", "--format", "json"], home=home,
                          catalog=cat, cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    invoices = json.loads(shown.stdout)["invoices"]
    assert {inv["status"] for inv in invoices} == {"published"}
    assert all(inv["invoice_number"] for inv in invoices)
    code, report = _verify(home, cat, cwd)
    if point in ("publish:after_commit", "publish:mid_documents"):
        # documents unwritten: verify names them, as pending (not tampering)
        assert code == 1 and report["findings"], report
        assert all(f["pending"] for f in report["findings"]), report
    else:  # the ledger and its documents are whole
        assert code == 0, report
    # the invoice marts are views over the ledger: they show the published month at once,
    # whatever the kill interrupted
    assert _sql(home, "select count(*) from marts.fct_invoices where billing_period_start = "
                      "date '2026-10-01' and status = 'draft'")[0][0] == 0

    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    if point != "publish:after_documents":
        assert "its publication was interrupted" in done.stderr, done.stderr[-2000:]
    folder = home / "invoices" / "2026-10"
    ids = [r[0] for r in _sql(home, "select invoice_id from billing.published_invoices "
                                    "order by invoice_number")]
    for invoice_id in ids:
        assert (folder / f"{invoice_id}.json").exists() and (folder / f"{invoice_id}.html").exists()
    index = (folder / "index.html").read_text()
    numbers = [r[0] for r in _sql(home, "select invoice_number from billing.published_invoices")]
    assert all(number in index for number in numbers), "the index lists every invoice"
    assert not list(folder.glob("*.tmp"))
    assert _sql(home, "select count(*) from marts.fct_invoices where billing_period_start = "
                      "date '2026-10-01' and status = 'draft'")[0][0] == 0
    code, report = _verify(home, cat, cwd)
    assert code == 0 and report["ok"] and report["invoices"] == len(EXPECTED), report
    # the documents on disk are exactly the ones sealed in the ledger (a PDF's content is the
    # base64 of its bytes, docs/contract.md E21)
    from orchestration.billing.documents import document_bytes

    for name, content in _sql(home, "select file_name, content from "
                                    "billing.published_documents"):
        assert (folder / name).read_bytes() == document_bytes(name, content), name
    again = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                          cwd=cwd)
    assert again.returncode == 0 and "nothing to do" in again.stderr


@pytest.fixture(scope="module")
def published(ingested, tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("published")
    home, cat, cwd = _copy(ingested, root)
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    code, report = _verify(home, cat, cwd)
    assert code == 0 and report["ok"], report
    return home, cat, cwd


def _refuses_november(home: Path, cat: Path, cwd: Path, needle: str) -> None:
    before = _sql(home, "select count(*) from billing.published_invoices")[0][0]
    done = run_meterline(["bill", "--period", "2026-11", "--publish"], home=home, catalog=cat,
                         cwd=cwd, env={"METERLINE_NOW": "2026-12-05T12:00:00Z"})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "fails verification" in done.stderr and needle in done.stderr, done.stderr[-2000:]
    assert _sql(home, "select count(*) from billing.published_invoices")[0][0] == before


def test_verify_names_a_line_amount_raised_by_sql(published, tmp_path):
    home, cat, cwd = _copy(published, tmp_path)
    number = _sql(home, "select invoice_number from billing.published_invoices "
                        "where invoice_id = 'INV-202610-hm_usd'")[0][0]
    _sql(home, "update billing.published_invoice_lines set amount = amount + 0.01 "
               "where invoice_id = 'INV-202610-hm_usd' and line_number = 2", write=True)
    done = run_meterline(["verify"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1
    first = done.stdout.splitlines()[0]
    assert f"{number} (INV-202610-hm_usd) line 2 amount: sealed '8.53', now '8.54'" in first
    _refuses_november(home, cat, cwd, "line 2 amount")


def test_verify_names_a_deleted_invoice_and_publishing_refuses(published, tmp_path):
    home, cat, cwd = _copy(published, tmp_path)
    number = _sql(home, "select invoice_number from billing.published_invoices "
                        "where invoice_id = 'INV-202610-hm_eur'")[0][0]
    _sql(home, "delete from billing.published_invoices where invoice_id = 'INV-202610-hm_eur'",
         write=True)  # only the invoice row: its lines stay
    code, report = _verify(home, cat, cwd)
    assert code == 1
    assert report["findings"][0]["subject"] == f"{number} (INV-202610-hm_eur)"
    assert "missing from billing.published_invoices" in report["findings"][0]["message"]
    _refuses_november(home, cat, cwd, f"{number} (INV-202610-hm_eur)")


def test_verify_names_a_changed_document(published, tmp_path):
    home, cat, cwd = _copy(published, tmp_path)
    page = home / "invoices" / "2026-10" / "INV-202610-hm_jpy.html"
    page.write_text(page.read_text().replace("JPY 26", "JPY 2"))
    code, report = _verify(home, cat, cwd)
    assert code == 1
    finding = report["findings"][0]
    assert finding["field"] == "INV-202610-hm_jpy.html" and "changed after publishing" in \
        finding["message"] and not finding["pending"]
    _refuses_november(home, cat, cwd, "INV-202610-hm_jpy.html")


def test_verify_names_an_edited_seal(published, tmp_path):
    home, cat, cwd = _copy(published, tmp_path)
    _sql(home, "update billing.ledger_seals set sealed = replace(sealed, '94.45', '95.45') "
               "where seq = (select min(seq) from billing.ledger_seals "
               "where sealed like '%94.45%')", write=True)
    code, report = _verify(home, cat, cwd)
    assert code == 1
    assert any("the seal itself was edited" in f["message"] for f in report["findings"])


def test_bill_and_explain_speak_json(published):
    home, cat, cwd = published
    done = run_meterline(["bill", "--period", "2026-10", "--publish", "--format", "json"],
                         home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["action"] == "nothing_to_do" and len(doc["invoices"]) == len(EXPECTED)
    assert {inv["status"] for inv in doc["invoices"]} == {"published"}
    done = run_meterline(["explain", "--invoice", "INV-202610-hm_usd", "--line", "2",
                          "--format", "json"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = json.loads(done.stdout)["lines"]
    assert line["amount"] == "8.53" and line["tier"] == 2 and line["aggregation"] == "sum"
    assert line["item_quantity"] == "2506.5"
    assert [t["this_line"] for t in line["rate"]["tiers"]] == [False, True]
    assert line["event_count"] == len(line["events_shown"]) == 5
