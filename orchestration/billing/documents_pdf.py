"""The PDF of a published invoice (docs/contract.md E21): its HTML document printed on A4 by
WeasyPrint, so the PDF and the page are one template and the PDF's figures are text.

The bytes are deterministic: the creation and modification dates come from the document's own
``dcterms.created``/``dcterms.modified`` (the invoice's ``issued_at``), never the clock, and
nothing else varies between two renderings on one machine. Published PDFs are stored in
``billing.published_documents`` as base64 text (``encode``), so a document rewritten after a
killed publish is the sealed bytes, whatever WeasyPrint or the fonts do later."""

from __future__ import annotations

import base64

PDF_SUFFIX = ".pdf"


PANGO_HINT = ("WeasyPrint prints the invoice PDFs on Pango, which this machine lacks: install "
              "it (Debian: apt-get install -y libpango-1.0-0 libpangoft2-1.0-0) and publish "
              "again; nothing was published")


class PdfUnavailable(Exception):
    """The PDF cannot be printed on this machine (a system library is missing)."""


def invoice_pdf(page_html: str) -> bytes:
    try:
        import weasyprint  # only when publishing: its import takes a moment
    except OSError as exc:  # cffi cannot load libpango / libpangoft2
        raise PdfUnavailable(f"{PANGO_HINT} ({str(exc).splitlines()[0]})") from None
    return weasyprint.HTML(string=page_html).write_pdf()


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
