"""The cells of one catalog row as exact values: ``Fields`` parses text, dates and decimals,
recording a problem for each bad cell by file, row and field (model.py's ``parse`` and
parties.py use it).

Decimals are written in plain notation (``12``, ``0.0125``, ``-3.5``; no exponent, no thousands
separator), have at most 12 decimal places and at most 26 digits before the point once trailing
zeros are dropped (DECIMAL(38,12))."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from orchestration.catalog.problems import Problem
from orchestration.catalog.read import FILES, Catalog, Row

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
MAX_SCALE = 12
MAX_INTEGER_DIGITS = 26  # DECIMAL(38, 12)


class Fields:
    """Parses the cells of one row, recording a problem for each bad one."""

    def __init__(self, catalog: Catalog, table: str, row: Row, key: str | None,
                 problems: list[Problem]):
        self.catalog, self.table, self.row, self.key = catalog, table, row, key
        self.file = FILES[table].name
        self.problems = problems

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, self.row.row, column, message, self.key))

    def text(self, column: str, *, required: bool = False) -> str | None:
        value = self.row[column]
        if value is None and required and self.catalog.has_column(self.table, column):
            self.problem(column, f"{column} is required")
        return value

    def date(self, column: str, *, required: bool = False) -> tuple[date | None, bool]:
        value = self.text(column, required=required)
        if value is None:
            return None, not required
        parsed = parse_date(value)
        if parsed is None:
            self.problem(column, f"{column} {value!r} is not a date (YYYY-MM-DD)")
            return None, False
        return parsed, True

    def decimal(self, column: str, *, required: bool = False,
                positive: bool = False) -> tuple[Decimal | None, bool]:
        value = self.text(column, required=required)
        if value is None:
            return None, not required
        parsed, error = parse_decimal(value)
        if error:
            self.problem(column, f"{column} {value!r} {error}")
            return None, False
        assert parsed is not None
        if positive and parsed <= 0:
            self.problem(column, f"{column} ({value}) must be greater than 0")
            return None, False
        if not positive and parsed < 0:
            self.problem(column, f"{column} ({value}) is negative; it must be >= 0")
            return None, False
        return parsed, True

    def currency(self, currencies: Mapping[str, int]) -> str | None:
        value = self.text("currency", required=True)
        if value is not None and value not in currencies:
            hint = f" (did you mean {value.upper()}?)" if value.upper() in currencies else ""
            self.problem("currency", f"{value} is not an ISO 4217 code{hint}")
            return None
        return value


def parse_date(value: str) -> date | None:
    if not DATE_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_decimal(value: str) -> tuple[Decimal | None, str | None]:
    """Exact decimal of plain text, or why not: at most 12 decimal places and 26 digits before
    the point once trailing zeros are dropped (DECIMAL(38,12))."""
    if not DECIMAL_RE.fullmatch(value):
        return None, "is not a decimal number (plain notation, e.g. 0.0125)"
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already rules these out
        return None, "is not a decimal number"
    scale = decimal_places(number)
    if scale > MAX_SCALE:
        return None, f"has {scale} decimal places; at most {MAX_SCALE} are allowed"
    integer_digits = max(number.adjusted() + 1, 0) if number else 0
    if integer_digits > MAX_INTEGER_DIGITS:
        return None, (f"has {integer_digits} digits before the point; at most "
                      f"{MAX_INTEGER_DIGITS} fit DECIMAL(38,12)")
    return number, None


def decimal_places(value: Decimal) -> int:
    """Decimal places once trailing zeros are dropped (``1.500`` has 1, ``100`` has 0)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return 0
    kept = list(digits)
    while exponent < 0 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    return -exponent if exponent < 0 else 0
