"""What a check found and what it reports: ``Findings`` from a check function, the
``CheckResult`` the registry makes of it, and the JSON-able formatting of its figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from orchestration.billing import pricer as pricer_lib
from orchestration.lib.readers import format_quantity

MAX_LISTED = 20  # differences listed in figures (the total is always given)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    blocking: bool
    summary: str
    figures: dict = field(default_factory=dict)

    def __str__(self) -> str:
        state = "passed" if self.passed else ("FAILED" if self.blocking else "warning")
        return f"{self.name}: {state}: {self.summary}"


@dataclass(frozen=True)
class Findings:
    """One check's outcome before it is named: the differences found (none: it passed), the
    summary for either outcome, and the figures it compared."""

    differences: list[dict]
    summary_ok: str
    summary_bad: str
    figures: dict


def check_result(name: str, blocking: bool, findings: Findings) -> CheckResult:
    """The result of check ``name``: figures with the difference count and the first
    ``MAX_LISTED`` differences, made JSON-able."""
    figures = dict(findings.figures)
    figures["difference_count"] = len(findings.differences)
    figures["differences"] = findings.differences[:MAX_LISTED]
    passed = not findings.differences
    return CheckResult(name, passed, blocking,
                       findings.summary_ok if passed else findings.summary_bad,
                       jsonable(figures))


def could_not_run(name: str, blocking: bool, message: str) -> CheckResult:
    return CheckResult(name, False, blocking, f"could not run: {message}", {"error": message})


# --------------------------------------------------------------------------- formatting
def plain(value: Decimal | None) -> str | None:
    """A decimal as plain text without trailing zeros (``1506.500000000000`` -> ``1506.5``);
    None stays None and every zero is ``0``."""
    if value is None:
        return None
    return "0" if value == 0 else format_quantity(value)


def money(value: Decimal | None, minor_unit: int | None) -> str | None:
    """Money as text at its currency's minor unit when exact there (``8.53``, ``26``), else in
    full (a wrong amount with sub-minor digits stays visible)."""
    if value is None:
        return None
    if minor_unit is not None:
        quantum = Decimal(1).scaleb(-minor_unit)
        try:
            exact = value.quantize(quantum, context=pricer_lib.EXACT)
        except Exception:  # Inexact: show it in full
            return plain(value)
        if exact == value:
            return format(exact, "f")
    return plain(value)


def jsonable(value: Any) -> Any:
    """Figures must survive json.dumps: decimals as strings, numpy scalars as Python ones."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and value != value:  # NaN: a null that pandas made a float
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    return str(value)
