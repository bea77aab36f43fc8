"""The published ledger's seals: a hash chain over every published invoice, its lines, its
documents and its period, in numbering order, so that any change made behind Meterline's back
is detected and named (CONTRACT.md section 7: published invoices never change).

Publishing a period appends, in the same transaction as its invoices:
- ``billing.published_documents``: the exact text of every document (JSON, HTML, the index;
  a PDF as base64 of its bytes) and the SHA-256 of its bytes on disk, so the files can be
  written, and rewritten after a kill, byte for byte as published;
- ``billing.ledger_seals``: one seal per invoice (its row, its lines and the SHA-256 of its
  documents: JSON and HTML, and since docs/contract.md E21 the PDF, as canonical JSON), then
  one for the period (its row, its catalog rows, its index).
  Each seal's hash is ``sha256(previous seal's hash + "\\n" + sealed text)``.

``verify`` re-reads everything and names what no longer matches: a broken chain, an invoice,
line or period row that differs from its seal (the first differing field, sealed and current
values), a row missing or never sealed, a gap in the numbers, a document changed, missing or
unsealed. Documents that were never written (a publish killed after its commit) are
``pending``: the next publish writes them; everything else is tampering and stops publishing.

The chain proves the ledger consistent with itself: someone who rewrites the rows, the seals
and the documents together, recomputing every hash, is not detected by it (keep a copy of the
latest seal hash, printed by `meterline verify`, elsewhere to catch that too)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from orchestration.billing.documents import INDEX, document_bytes
from orchestration.billing.documents_pdf import PDF_SUFFIX
from orchestration.lib import periods
from orchestration.lib.readers import format_quantity, table_exists

GENESIS = "0" * 64
INVOICE_COLUMNS = ("invoice_id", "customer_id", "billing_period_start", "billing_period_end",
                   "currency", "subtotal", "total", "line_count", "status", "invoice_number",
                   "issued_at")
LINE_COLUMNS = ("invoice_id", "line_number", "customer_id", "billing_period_start",
                "billing_period_end", "usage_period_start", "usage_period_end", "line_type",
                "product_item_id", "meter_id", "description", "quantity", "unit_price", "tier",
                "amount", "currency", "rate_id")
PERIOD_COLUMNS = ("billing_period_start", "published_at", "invoice_count", "catalog_fingerprint")

DDL = """
create table if not exists billing.published_documents (
    billing_period_start  date not null,
    file_name             varchar not null,
    content               varchar not null,
    sha256                varchar not null,
    primary key (billing_period_start, file_name)
);
create table if not exists billing.ledger_seals (
    seq                   bigint not null primary key,
    billing_period_start  date not null,
    subject               varchar not null,
    sealed                varchar not null,
    prev_hash             varchar not null,
    seal_hash             varchar not null
);
"""


def canonical(value: object) -> str | None:
    """One text per value: decimals by value (8.5300 and 8.53 are one amount), instants in UTC."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format_quantity(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_sha256(name: str, content: str) -> str:
    """The SHA-256 of a document's bytes on disk (a PDF's stored text is base64 of them)."""
    return hashlib.sha256(document_bytes(name, content)).hexdigest()


def _stored_sha256(name: str, content: str) -> str | None:
    try:
        return document_sha256(name, content)
    except ValueError:  # a PDF whose stored text is no longer base64
        return None


def _seal_hash(prev_hash: str, sealed: str) -> str:
    return sha256_text(prev_hash + "\n" + sealed)


def _dump(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _rows(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], where: str,
          params: list) -> list[dict[str, str | None]]:
    return [{c: canonical(v) for c, v in zip(columns, row, strict=True)}
            for row in con.execute(f"select {', '.join(columns)} from {table} where {where}",
                                   params).fetchall()]


# ----------------------------------------------------------------------------- sealing
def seal_period(con: duckdb.DuckDBPyConnection, period_start: date,
                documents: dict[str, str]) -> str:
    """Store a just-published period's documents and append its seals (inside the publishing
    transaction). Returns the new head hash."""
    digests = {name: document_sha256(name, text) for name, text in documents.items()}
    con.executemany("insert into billing.published_documents values (?, ?, ?, ?)",
                    [(period_start, name, text, digests[name])
                     for name, text in sorted(documents.items())])
    seq, head = con.execute(
        "select coalesce(max(seq), 0), coalesce(max_by(seal_hash, seq), ?) "
        "from billing.ledger_seals", [GENESIS]).fetchone()
    seals = []
    invoices = _rows(con, "billing.published_invoices", INVOICE_COLUMNS,
                     "billing_period_start = ? order by invoice_number", [period_start])
    lines = _rows(con, "billing.published_invoice_lines", LINE_COLUMNS,
                  "billing_period_start = ? order by invoice_id, line_number", [period_start])
    by_invoice: dict[str, list] = {}
    for line in lines:
        by_invoice.setdefault(line["invoice_id"], []).append(line)
    for invoice in invoices:
        iid = invoice["invoice_id"]
        seals.append((invoice["invoice_number"], _dump({
            "invoice": invoice, "lines": by_invoice.get(iid, []),
            "documents": {name: digests[name] for name in (f"{iid}.json", f"{iid}.html",
                                                            f"{iid}{PDF_SUFFIX}")
                          if name in documents}})))
    period_row = _rows(con, "billing.published_periods", PERIOD_COLUMNS,
                       "billing_period_start = ?", [period_start])[0]
    catalog_rows = con.execute(
        "select row_key, row_values from billing.published_catalog_rows "
        "where billing_period_start = ? order by row_key", [period_start]).fetchall()
    seals.append((f"period {periods.period_key(period_start)}", _dump({
        "period": period_row,
        "catalog_rows": sha256_text(_dump(dict(catalog_rows))),
        "documents": {INDEX: digests[INDEX]} if INDEX in documents else {}})))
    for subject, sealed in seals:
        seq += 1
        digest = _seal_hash(head, sealed)
        con.execute("insert into billing.ledger_seals values (?, ?, ?, ?, ?, ?)",
                    [seq, period_start, subject, sealed, head, digest])
        head = digest
    return head


# ----------------------------------------------------------------------------- verifying
@dataclass(frozen=True)
class Finding:
    subject: str  # "MLN-000003 (INV-202610-acme)", "period 2026-10", "ledger seal 7"
    field: str  # the field, line field or document that differs; "" for a whole row
    message: str
    pending: bool = False  # a document not written yet: publishing completes it

    def __str__(self) -> str:
        return f"{self.subject}{f' {self.field}' if self.field else ''}: {self.message}"


@dataclass
class Verification:
    findings: list[Finding]
    seals: int
    invoices: int
    head: str

    @property
    def tampered(self) -> list[Finding]:
        return [f for f in self.findings if not f.pending]

    @property
    def pending(self) -> list[Finding]:
        return [f for f in self.findings if f.pending]

    @property
    def ok(self) -> bool:
        return not self.findings


def _compare(subject: str, prefix: str, sealed: dict, current: dict | None,
             findings: list[Finding], table: str) -> None:
    if current is None:
        findings.append(Finding(subject, prefix.strip(), f"is missing from {table} (it was "
                                f"published and sealed)"))
        return
    for column, value in sealed.items():
        if current.get(column) != value:
            findings.append(Finding(subject, f"{prefix}{column}",
                                    f"sealed {value!r}, now {current.get(column)!r} in {table}"))


def verify(con: duckdb.DuckDBPyConnection, invoices_dir: Path) -> Verification:
    """Check the whole published ledger against its seals and the documents on disk. Read only."""
    if not table_exists(con, "billing", "ledger_seals"):
        has_rows = table_exists(con, "billing", "published_invoices") and con.execute(
            "select count(*) from billing.published_invoices").fetchone()[0]
        findings = [Finding("ledger", "", "billing.published_invoices has rows but there are "
                            "no seals (billing.ledger_seals is missing)")] if has_rows else []
        return Verification(findings, 0, 0, GENESIS)
    findings: list[Finding] = []
    invoices = {r["invoice_id"]: r for r in _rows(con, "billing.published_invoices",
                                                  INVOICE_COLUMNS, "true", [])}
    lines: dict[str, dict[str, dict]] = {}
    for line in _rows(con, "billing.published_invoice_lines", LINE_COLUMNS, "true", []):
        lines.setdefault(line["invoice_id"], {})[line["line_number"]] = line
    period_rows = {r["billing_period_start"]: r for r in _rows(
        con, "billing.published_periods", PERIOD_COLUMNS, "true", [])}
    stored_docs = {(p.isoformat(), n): (c, h) for p, n, c, h in con.execute(
        "select billing_period_start, file_name, content, sha256 "
        "from billing.published_documents").fetchall()}
    seals = con.execute("select seq, billing_period_start, subject, sealed, prev_hash, seal_hash "
                        "from billing.ledger_seals order by seq").fetchall()
    head, expected_seq, number = GENESIS, 1, 0
    sealed_invoices: set[str] = set()
    sealed_periods: set[str] = set()
    for seq, period_start, subject, sealed_text, prev_hash, seal_hash in seals:
        where = f"ledger seal {seq} ({subject})"
        if seq != expected_seq:
            findings.append(Finding(where, "", f"seals {expected_seq} to {seq - 1} are missing"))
        if prev_hash != head or _seal_hash(prev_hash, sealed_text) != seal_hash:
            findings.append(Finding(where, "", "its hash no longer matches the chain: the seal "
                                    "itself was edited"))
        expected_seq, head = seq + 1, seal_hash
        try:
            sealed = json.loads(sealed_text)
        except ValueError:
            findings.append(Finding(where, "", "is not readable JSON"))
            continue
        key = periods.period_key(period_start)
        folder = invoices_dir / key
        if "invoice" in sealed:
            inv = sealed["invoice"]
            iid = inv["invoice_id"]
            sealed_invoices.add(iid)
            name = f"{inv['invoice_number']} ({iid})"
            number += 1
            if inv["invoice_number"] != f"MLN-{number:06d}":
                findings.append(Finding(name, "invoice_number", f"expected MLN-{number:06d} in "
                                        f"numbering order: numbers must be gap-free"))
                number = int(inv["invoice_number"][4:]) if inv["invoice_number"][4:].isdigit() \
                    else number
            _compare(name, "", inv, invoices.get(iid), findings, "billing.published_invoices")
            current_lines = lines.get(iid, {})
            sealed_numbers = set()
            for line in sealed["lines"]:
                sealed_numbers.add(line["line_number"])
                _compare(name, f"line {line['line_number']} ", line,
                         current_lines.get(line["line_number"]), findings,
                         "billing.published_invoice_lines")
            for extra in sorted(set(current_lines) - sealed_numbers, key=int):
                findings.append(Finding(name, f"line {extra}", "is in "
                                        "billing.published_invoice_lines but was never sealed"))
            docs = sealed["documents"]
        else:
            sealed_periods.add(key)
            _compare(f"period {key}", "", sealed["period"],
                     period_rows.get(period_start.isoformat()), findings,
                     "billing.published_periods")
            catalog_rows = con.execute(
                "select row_key, row_values from billing.published_catalog_rows "
                "where billing_period_start = ? order by row_key", [period_start]).fetchall()
            if sha256_text(_dump(dict(catalog_rows))) != sealed["catalog_rows"]:
                findings.append(Finding(f"period {key}", "catalog rows",
                                        "billing.published_catalog_rows differ from the rows "
                                        "sealed when the period was published"))
            name, docs = f"period {key}", sealed["documents"]
        for file_name, digest in docs.items():
            _check_document(name, key, folder, file_name, digest, stored_docs, findings)
    for iid, row in sorted(invoices.items(), key=lambda kv: kv[1]["invoice_number"] or ""):
        if iid not in sealed_invoices:
            findings.append(Finding(f"{row['invoice_number']} ({iid})", "",
                                    "is in billing.published_invoices but was never sealed"))
    for start in sorted(period_rows):
        if periods.period_key(date.fromisoformat(start)) not in sealed_periods:
            findings.append(Finding(f"period {start[:7]}", "", "is in billing.published_periods "
                                    "but was never sealed"))
    return Verification(findings, len(seals), len(sealed_invoices), head)


def _check_document(subject: str, key: str, folder: Path, file_name: str, digest: str,
                    stored: dict, findings: list[Finding]) -> None:
    content, stored_hash = stored.get((f"{key}-01", file_name), (None, None))
    if content is None or stored_hash != digest or _stored_sha256(file_name, content) != digest:
        findings.append(Finding(subject, file_name, "the document kept in "
                                "billing.published_documents differs from its seal"))
    path = folder / file_name
    if not path.exists():
        findings.append(Finding(subject, file_name, f"{path} has not been written yet: "
                                f"`meterline bill --period {key} --publish` writes it",
                                pending=True))
        return
    on_disk = hashlib.sha256(path.read_bytes()).hexdigest()
    if on_disk != digest:
        findings.append(Finding(subject, file_name, f"{path} was changed after publishing "
                                f"(sha256 {on_disk[:12]}..., sealed {digest[:12]}...)"))


def pending_documents(con: duckdb.DuckDBPyConnection, invoices_dir: Path
                      ) -> dict[date, dict[str, str]]:
    """Published documents not on disk yet, per period: ``{period: {file name: text}}``."""
    if not table_exists(con, "billing", "published_documents"):
        return {}
    missing: dict[date, dict[str, str]] = {}
    for period_start, name, content in con.execute(
            "select billing_period_start, file_name, content from billing.published_documents "
            "order by 1, 2").fetchall():
        if not (invoices_dir / periods.period_key(period_start) / name).exists():
            missing.setdefault(period_start, {})[name] = content
    return missing
