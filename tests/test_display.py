"""How quantities and amounts are shown (orchestration/lib/readers.py): exact at every size
DECIMAL(38, 12) and the money types hold, never through Decimal's 28-digit default context."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestration.lib.readers import format_money, format_quantity


@pytest.mark.parametrize(("value", "shown"), [
    ("12345678901234567890123456.123456789012", "12345678901234567890123456.123456789012"),
    ("12.500000000000", "12.5"),
    ("100.000000000000", "100"),
    ("0E-12", "0"),
    ("-31.000000000000", "-31"),
    ("0.000000000063", "0.000000000063"),
])
def test_quantities_are_shown_exactly(value, shown):
    assert format_quantity(Decimal(value)) == shown


def test_amounts_are_shown_exactly_at_their_minor_unit():
    assert format_money(Decimal("1234567890123456789012345678901234.5600"), 2) == (
        "1234567890123456789012345678901234.56")
    assert format_money(Decimal("12949.0000"), 0) == "12949"
    assert format_money(Decimal("-3.2500"), 2) == "-3.25"
    assert format_money(Decimal("0.1230"), 3) == "0.123"
    assert format_money(None, 2) == ""
