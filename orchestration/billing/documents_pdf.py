"""The PDF of a published invoice (docs/contract.md E21): its HTML document printed on A4 by
WeasyPrint, so the PDF and the page are one template and the PDF's figures are text.

The bytes are deterministic: the creation and modification dates come from the document's own
``dcterms.created``/``dcterms.modified`` (the invoice's ``issued_at``), never the clock, and
nothing else varies between two renderings on one machine. Published PDFs are stored in
``billing.published_documents`` as base64 text (``encode``), so a document rewritten after a
killed publish is the sealed bytes, whatever WeasyPrint or the fonts do later.

A period's PDFs are printed by ``invoice_pdfs``: about 60 ms of CPU each (a 4-line invoice;
WeasyPrint is pure Python), so a month of 1,000 invoices is printed by one worker process per
core (``METERLINE_THREADS``), started by ``spawn`` (never ``fork``: the publishing process has
threads), each with one font configuration for all its pages. The bytes do not depend on the
process that printed them (tests/test_invoice_pdf.py)."""

from __future__ import annotations

import base64
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PDF_SUFFIX = ".pdf"


PANGO_HINT = ("WeasyPrint prints the invoice PDFs on Pango, which this machine lacks: install "
              "it (Debian: apt-get install -y libpango-1.0-0 libpangoft2-1.0-0) and publish "
              "again; nothing was published")


class PdfUnavailable(Exception):
    """The PDF cannot be printed on this machine (a system library is missing)."""


#: Below this many pages one process prints them all: starting a worker (Python, WeasyPrint's
#: import) costs about as much as printing ten.
POOL_FROM_PAGES = 24

_printer: dict[str, Any] = {}  # this process's WeasyPrint module and font configuration


def _start_printer() -> None:
    try:
        import weasyprint  # only when publishing: its import takes a moment
        from weasyprint.text.fonts import FontConfiguration
    except OSError as exc:  # cffi cannot load libpango / libpangoft2
        raise PdfUnavailable(f"{PANGO_HINT} ({str(exc).splitlines()[0]})") from None
    _printer.setdefault("weasyprint", weasyprint)
    _printer.setdefault("fonts", FontConfiguration())


def invoice_pdf(page_html: str) -> bytes:
    """One invoice's page printed to PDF, in this process."""
    if not _printer:
        _start_printer()
    return _printer["weasyprint"].HTML(string=page_html).write_pdf(
        font_config=_printer["fonts"])


def invoice_pdfs(pages: list[str], workers: int = 1) -> list[bytes]:
    """Every page printed to PDF, in order: in this process for a few pages or one worker, else
    in ``workers`` spawned processes. PdfUnavailable (no Pango) is raised before any page is
    handed out, and a worker's failure is raised here."""
    _start_printer()  # here first: a missing Pango is one clear error, not one per worker
    if workers <= 1 or len(pages) < POOL_FROM_PAGES:
        return [invoice_pdf(page) for page in pages]
    workers = min(workers, len(pages) // (POOL_FROM_PAGES // 2))
    chunk = max(1, len(pages) // (workers * 8))  # small chunks: the last ones finish together
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_printer) as pool:
        return list(pool.map(invoice_pdf, pages, chunksize=chunk))


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
