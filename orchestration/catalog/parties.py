"""The parties an invoice names (docs/contract.md E21): the seller (``seller.csv``, one row) and
each customer's billing details (optional columns of ``customers.csv``). Nothing here prices
anything: these cells only reach the published documents, and a period's fingerprint leaves
them out (a corrected address is not a changed price).

Columns, all optional text: ``legal_name`` (the name printed on the invoice; the seller's is
``seller_name``), ``address`` (lines separated by newlines inside a quoted cell, or by `` | ``),
``tax_id``, ``email``, ``payment_terms_days`` (a whole number of days, 0 to 365: the due date
is the issue date plus these days; a customer without one gets the seller's, and without that
``DEFAULT_TERMS_DAYS``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

DEFAULT_TERMS_DAYS = 30
MAX_TERMS_DAYS = 365
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
TERMS_RE = re.compile(r"\d{1,3}")
COLUMNS = ("legal_name", "address", "tax_id", "email", "payment_terms_days")


class Cells(Protocol):  # cells.Fields: a row's cells, recording a problem per bad one
    def text(self, column: str, *, required: bool = False) -> str | None: ...
    def problem(self, column: str | None, message: str) -> None: ...


@dataclass(frozen=True)
class Party:
    legal_name: str | None = None
    address: tuple[str, ...] = ()
    tax_id: str | None = None
    email: str | None = None
    payment_terms_days: int | None = None


def address_lines(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    parts = re.split(r"\r?\n| \| ", value)
    return tuple(p.strip() for p in parts if p.strip())


def parse_party(f: Cells, name_column: str = "legal_name") -> Party:
    """The party columns of one row; a bad email or term is a problem of that cell."""
    email = f.text("email")
    if email is not None and not EMAIL_RE.fullmatch(email):
        f.problem("email", f"email {email!r} is not an email address (name@example.com)")
        email = None
    terms_text = f.text("payment_terms_days")
    terms = None
    if terms_text is not None:
        if TERMS_RE.fullmatch(terms_text) and int(terms_text) <= MAX_TERMS_DAYS:
            terms = int(terms_text)
        else:
            f.problem("payment_terms_days", f"payment_terms_days {terms_text!r} is not a whole "
                      f"number of days from 0 to {MAX_TERMS_DAYS}")
    return Party(f.text(name_column), address_lines(f.text("address")), f.text("tax_id"),
                 email, terms)
