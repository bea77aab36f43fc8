"""An independent pricer in ``decimal.Decimal``, for reconciliation (CONTRACT.md sections 3-5).

The SQL path (dbt: ``int_usage_rated``, ``int_invoice_lines_drafted`` and the money macros) is
THE pricing of Meterline. This module prices the same usage a second time, sharing no code with
it: its own rate choice, tier walk, exact ceiling and rounding, so that
``orchestration.billing.reconcile`` can compare the two line by line before anything is
published. It only needs the typed catalog (``catalog.parse``) and, per customer and product
item, the item's raw aggregate Q_agg for the period.

Rules (CONTRACT.md):
- Q = max(Q_agg, 0).
- per_unit: one line, quantity Q, amount max(Q - free_units, 0) * unit_price.
- package: one line, quantity Q, unit_price the price of one package, amount
  ceil(max(Q - free_units, 0) / package_size) * unit_price, the ceiling exact.
- graduated: one line per tier with units in it (tier k holds the units above tier k-1's up_to up
  to and including its own), amount units * tier price + the tier's flat fee.
- volume: one line, the tier containing Q (a quantity of exactly up_to belongs to that tier)
  prices all Q units, plus its flat fee.
- Q = 0: one line of amount 0 (tier 1 for the tiered models), never a flat fee.
- The rate: the customer's own rate, else the list price, in the customer's currency, in effect
  on the period's first day (effective_from <= day < effective_to).
- Each line's amount is rounded once, half away from zero (ROUND_HALF_UP on the absolute value),
  to the currency's ISO 4217 minor unit (``catalog.read_currencies()``). All arithmetic before it
  runs in an 80-digit context that traps ``Inexact``: nothing is ever rounded silently earlier.
- The commitment in effect on the period's first day tops up the sum of the rounded usage lines
  with one ``minimum_commitment`` line when that sum is below it.

Problems (no rate, two rates, a tiered rate without tiers, an unknown currency...) raise
``PricingError`` naming the customer and item; the reconciliation reports them as differences.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from orchestration.catalog.model import TIERED_MODELS, Commitment, Parsed, Rate, RateTier, parse
from orchestration.catalog.read import Catalog, read_currencies

PRECISION = 80

#: Every computation before the single rounding: exact or an error, never a silent rounding.
EXACT = decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_EVEN,
                        traps=[decimal.Inexact, decimal.InvalidOperation,
                               decimal.DivisionByZero, decimal.Overflow])
#: The one rounding of a line amount: half away from zero, applied to the absolute value.
ROUNDING = decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_UP,
                           traps=[decimal.InvalidOperation, decimal.Overflow])

ZERO = Decimal(0)


class PricingError(ValueError):
    """Usage that the catalog cannot price, named by customer and item."""


@dataclass(frozen=True)
class PricedLine:
    """One expected invoice line. ``amount`` is rounded to the currency's minor unit;
    ``exact_amount`` is the amount before that rounding. A ``minimum_commitment`` line has no
    item, tier, quantity or unit price."""

    customer_id: str
    line_type: str  # 'usage' | 'minimum_commitment'
    product_item_id: str | None
    tier: int | None
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    exact_amount: Decimal
    currency: str
    rate_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None, int | None]:
        return (self.customer_id, self.line_type, self.product_item_id, self.tier)


# --------------------------------------------------------------------------- pure arithmetic
def round_half_away(amount: Decimal, minor_unit: int) -> Decimal:
    """``amount`` rounded once to ``minor_unit`` decimals, half away from zero:
    ``0.125 -> 0.13``, ``-0.125 -> -0.13``, ``5.5025 -> 5.503`` (3), ``12.5 -> 13`` (0)."""
    if minor_unit < 0:
        raise ValueError(f"minor unit {minor_unit} is negative")
    quantum = Decimal(1).scaleb(-minor_unit)
    # copy_abs / copy_negate never round (abs() and unary minus would, in the thread's context)
    magnitude = amount.copy_abs().quantize(quantum, rounding=decimal.ROUND_HALF_UP,
                                           context=ROUNDING)
    return magnitude.copy_negate() if amount < 0 and magnitude else magnitude


def ceil_div_exact(numerator: Decimal, denominator: Decimal) -> int:
    """``ceil(numerator / denominator)`` exactly, for numerator >= 0 and denominator > 0, as an
    int: both are scaled to integers first, so no division ever rounds
    (``ceil(100000.000000000001 / 100) == 1001``)."""
    if denominator <= 0:
        raise ValueError(f"denominator {denominator} must be > 0")
    if numerator < 0:
        raise ValueError(f"numerator {numerator} must be >= 0")
    exponent = min(numerator.as_tuple().exponent, denominator.as_tuple().exponent, 0)
    assert isinstance(exponent, int)
    n = int(numerator.scaleb(-exponent, context=EXACT))  # exact: Inexact is trapped
    d = int(denominator.scaleb(-exponent, context=EXACT))
    return -((-n) // d)


def _mul(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b)


def _add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.add(a, b)


def _sub(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.subtract(a, b)


# --------------------------------------------------------------------------- tier walks
@dataclass(frozen=True)
class _TierLine:
    tier: int
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal  # charged on this line (0 when no unit falls in the tier)


def graduated_tier_lines(q: Decimal, tiers: list[RateTier]) -> list[_TierLine]:
    """One line per tier with units in it; Q = 0 gives the tier-1 line with no units and no
    flat fee. ``tiers`` sorted by tier number; only the last may have no ``up_to``."""
    if q == 0:
        first = tiers[0]
        return [_TierLine(first.tier or 1, ZERO, first.unit_price or ZERO, ZERO)]
    lines = []
    lower = ZERO
    for t in tiers:
        upper = t.up_to
        if q <= lower:
            break
        top = q if upper is None or q < upper else upper
        units = _sub(top, lower)
        if units > 0:
            lines.append(_TierLine(t.tier or 0, units, t.unit_price or ZERO, t.flat_fee or ZERO))
        if upper is None:
            break
        lower = upper
    covered = ZERO
    for walked in lines:
        covered = _add(covered, walked.units)
    if covered != q:
        raise ValueError(f"the tiers cover {covered} of {q} units (last tier not open-ended?)")
    return lines


def volume_tier_line(q: Decimal, tiers: list[RateTier]) -> _TierLine:
    """The tier containing Q (lower < Q <= up_to; Q = 0 -> tier 1, no flat fee) pricing all Q."""
    if q == 0:
        first = tiers[0]
        return _TierLine(first.tier or 1, ZERO, first.unit_price or ZERO, ZERO)
    for t in tiers:
        if t.up_to is None or q <= t.up_to:
            return _TierLine(t.tier or 0, q, t.unit_price or ZERO, t.flat_fee or ZERO)
    raise ValueError(f"no tier contains {q} (last tier not open-ended?)")


# --------------------------------------------------------------------------- the pricer
class Pricer:
    """Prices one period's usage from a typed catalog (``catalog.parse`` output, or a raw
    ``Catalog`` that is parsed here)."""

    def __init__(self, catalog: Parsed | Catalog,
                 currencies: Mapping[str, int] | None = None):
        self.currencies = dict(read_currencies() if currencies is None
                               else currencies)
        parsed = (catalog if isinstance(catalog, Parsed)
                  else parse(catalog, self.currencies))
        self.parsed = parsed
        self.customers = {c.customer_id: c for c in parsed.customers if c.customer_id}
        self.items = {i.product_item_id: i for i in parsed.product_items if i.product_item_id}
        self.tiers: dict[str, list[RateTier]] = {}
        for t in parsed.rate_tiers:
            if t.rate_id:
                self.tiers.setdefault(t.rate_id, []).append(t)
        for tiers in self.tiers.values():
            tiers.sort(key=lambda t: t.tier or 0)

    # ----------------------------------------------------------------- lookups
    def currency_of(self, customer_id: str) -> tuple[str, int]:
        customer = self.customers.get(customer_id)
        if customer is None or not customer.currency:
            raise PricingError(f"customer {customer_id}: not in customers.csv (or no valid "
                               "currency), so it cannot be priced")
        if customer.currency not in self.currencies:
            raise PricingError(f"customer {customer_id}: currency {customer.currency} has no "
                               "ISO 4217 minor unit")
        return customer.currency, self.currencies[customer.currency]

    def rate_for(self, customer_id: str, product_item_id: str,
                 period_start: date) -> Rate:
        """The customer's own rate, else the list price, in its currency, in effect on
        ``period_start``."""
        currency, _ = self.currency_of(customer_id)
        candidates = [r for r in self.parsed.rates
                      if r.product_item_id == product_item_id and r.currency == currency
                      and r.in_effect(period_start)]
        own = [r for r in candidates if r.customer_id == customer_id]
        listed = [r for r in candidates if r.customer_id is None]
        for kind, rates in (("customer", own), ("list", listed)):
            if len(rates) > 1:
                raise PricingError(
                    f"customer {customer_id}, product item {product_item_id}: {len(rates)} "
                    f"{kind} rates in effect on {period_start} in {currency} "
                    f"({', '.join(str(r.rate_id) for r in rates)})")
            if rates:
                return rates[0]
        raise PricingError(f"customer {customer_id}, product item {product_item_id}: no rate in "
                           f"effect on {period_start} in {currency}")

    def commitment_for(self, customer_id: str,
                       period_start: date) -> Commitment | None:
        found = [c for c in self.parsed.commitments
                 if c.customer_id == customer_id and c.in_effect(period_start)]
        if len(found) > 1:
            raise PricingError(f"customer {customer_id}: {len(found)} commitments in effect on "
                               f"{period_start}")
        return found[0] if found else None

    # ----------------------------------------------------------------- pricing
    def price_item(self, customer_id: str, product_item_id: str, aggregate: Decimal,
                   period_start: date) -> list[PricedLine]:
        """The usage lines of one item for one customer and period, from its raw aggregate."""
        currency, minor_unit = self.currency_of(customer_id)
        rate = self.rate_for(customer_id, product_item_id, period_start)
        if aggregate is None:
            raise PricingError(f"customer {customer_id}, product item {product_item_id}: no "
                               "aggregate (is the item's meter in meters.csv?)")
        q = aggregate if aggregate > 0 else ZERO
        context = f"customer {customer_id}, product item {product_item_id}"

        def line(tier: int | None, quantity: Decimal, unit_price: Decimal,
                 exact: Decimal) -> PricedLine:
            return PricedLine(customer_id, "usage", product_item_id, tier, quantity, unit_price,
                              round_half_away(exact, minor_unit), exact, currency, rate.rate_id)

        model = rate.pricing_model
        try:
            if model in ("per_unit", "package"):
                if rate.unit_price is None:
                    raise PricingError(f"{context}: rate {rate.rate_id} has no unit_price")
                free = rate.free_units or ZERO
                chargeable = _sub(q, free) if q > free else ZERO
                if model == "per_unit":
                    return [line(None, q, rate.unit_price, _mul(chargeable, rate.unit_price))]
                if rate.package_size is None or rate.package_size <= 0:
                    raise PricingError(f"{context}: rate {rate.rate_id} needs package_size > 0")
                packages = Decimal(ceil_div_exact(chargeable, rate.package_size))
                return [line(None, q, rate.unit_price, _mul(packages, rate.unit_price))]
            if model in TIERED_MODELS:
                tiers = self.tiers.get(rate.rate_id or "")
                if not tiers:
                    raise PricingError(f"{context}: {model} rate {rate.rate_id} has no tiers")
                walked = (graduated_tier_lines(q, tiers) if model == "graduated"
                          else [volume_tier_line(q, tiers)])
                return [line(t.tier, t.units, t.unit_price,
                             _add(_mul(t.units, t.unit_price), t.flat_fee)) for t in walked]
        except decimal.DecimalException as exc:
            raise PricingError(f"{context}: arithmetic not exact in {PRECISION} digits "
                               f"({type(exc).__name__})") from exc
        except ValueError as exc:
            if isinstance(exc, PricingError):
                raise
            raise PricingError(f"{context}: {exc}") from exc
        raise PricingError(f"{context}: unknown pricing model {model!r} (rate {rate.rate_id})")

    def price_customer(self, customer_id: str, aggregates: Mapping[str, Decimal],
                       period_start: date) -> list[PricedLine]:
        """Every usage line of the customer's items (by product_item_id, then tier), then the
        minimum_commitment top-up if the commitment in effect is above their rounded sum."""
        currency, minor_unit = self.currency_of(customer_id)
        lines: list[PricedLine] = []
        for item_id in sorted(aggregates):
            lines.extend(self.price_item(customer_id, item_id, aggregates[item_id],
                                         period_start))
        commitment = self.commitment_for(customer_id, period_start)
        if commitment is not None and commitment.minimum_amount is not None:
            if commitment.currency != currency:
                raise PricingError(f"customer {customer_id}: commitment in "
                                   f"{commitment.currency}, customer in {currency}")
            subtotal = ZERO
            for usage_line in lines:
                subtotal = _add(subtotal, usage_line.amount)
            if commitment.minimum_amount > subtotal:
                top_up = _sub(commitment.minimum_amount, subtotal)
                lines.append(PricedLine(customer_id, "minimum_commitment", None, None, None,
                                        None, round_half_away(top_up, minor_unit), top_up,
                                        currency))
        return lines


@dataclass(frozen=True)
class ItemUsage:
    """One item's raw aggregate for a customer and period (``quantity`` may be negative). For
    an item of a level meter, ``carried_level`` is the level carried into the period (a non-zero
    one makes the item live without an event of its own); None on other meters."""

    customer_id: str
    product_item_id: str
    quantity: Decimal
    event_count: int = 0
    carried_level: Decimal | None = None


def price_period(catalog: Parsed | Catalog, usage: Iterable[ItemUsage],
                 period_start: date, customers: Iterable[str] = (),
                 currencies: Mapping[str, int] | None = None
                 ) -> tuple[dict[str, list[PricedLine]], dict[str, str]]:
    """Price a whole period: ``usage`` per (customer, item), plus ``customers`` that get an
    invoice without usage (their commitment may still top up to the minimum).

    Returns (lines per customer, pricing problems per customer): a customer whose usage cannot
    be priced gets its problem instead of lines, and the others are still priced."""
    pricer = Pricer(catalog, currencies)
    by_customer: dict[str, dict[str, Decimal]] = {c: {} for c in customers}
    for u in usage:
        items = by_customer.setdefault(u.customer_id, {})
        if u.product_item_id in items:
            raise ValueError(f"usage of {u.customer_id}, {u.product_item_id} given twice")
        items[u.product_item_id] = u.quantity
    lines: dict[str, list[PricedLine]] = {}
    problems: dict[str, str] = {}
    for customer_id in sorted(by_customer):
        try:
            lines[customer_id] = pricer.price_customer(customer_id, by_customer[customer_id],
                                                       period_start)
        except PricingError as exc:
            problems[customer_id] = str(exc)
    return lines, problems
