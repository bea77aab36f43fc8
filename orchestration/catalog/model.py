"""The price book as typed records: ``parse`` turns the text of each row into exact values
(``decimal.Decimal``, ``datetime.date``), recording a problem for every bad cell, each by file,
row and field, never stopping at the first.

Decisions where CONTRACT.md is silent:
- Values required: the ids and references, ``currency``, ``aggregation``, ``pricing_model``,
  ``effective_from``, ``minimum_amount`` and a tier's ``tier`` and ``unit_price``. Display names
  and ``unit`` may be empty.
- Decimals are written in plain notation (``12``, ``0.0125``, ``-3.5``; no exponent, no
  thousands separator), have at most 12 decimal places and at most 26 digits before the point
  once trailing zeros are dropped (DECIMAL(38,12)). ``package_size`` and ``up_to`` must be > 0.
- ``package_size`` is only for ``package`` rates; on any other model it is a problem (it would be
  silently ignored). ``unit_price`` is required for ``per_unit``/``package`` and must be empty on
  ``graduated``/``volume`` (their tiers carry the prices).
- ``free_units`` of 0 on a tiered rate is accepted as "none"; any other value is a problem.
- ``dimension_filter`` is split at the first ``=``; the key must be non-empty, the value may be
  empty. Nothing inside is trimmed: matching is exact.
- Currency codes are matched exactly (``usd`` is not ``USD``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal

from orchestration.catalog.cells import Fields, decimal_places
from orchestration.catalog.parties import Party, parse_party
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import Catalog, read_currencies

AGGREGATIONS = ("sum", "count", "unique_count", "max", "latest", "time_weighted_sum",
                "running_total")
#: level meters (CONTRACT.md v1.2 section 3): each event is a signed change of a level
LEVEL_AGGREGATIONS = ("time_weighted_sum", "running_total")
TIME_UNITS = ("period", "day", "hour")
PRICING_MODELS = ("per_unit", "package", "graduated", "volume")
TIERED_MODELS = ("graduated", "volume")
CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TIER_RE = re.compile(r"\d+")


def _in_effect(dates_ok: bool, start: date | None, end: date | None, on: date) -> bool:
    """``start <= on < end`` (an empty end is open), for rows whose dates parsed."""
    return dates_ok and start is not None and start <= on and (end is None or on < end)


@dataclass(frozen=True)
class Customer:
    row: int
    customer_id: str | None
    customer_name: str | None
    currency: str | None
    active_from: date | None
    active_to: date | None
    details: Party = Party()  # E21: legal name, address, tax id, email, payment terms


@dataclass(frozen=True)
class Meter:
    row: int
    meter_id: str | None
    display_name: str | None
    unit: str | None
    aggregation: str | None
    unique_dimension: str | None
    time_unit: str | None = None  # period (also when empty), day, hour: time_weighted_sum only

    @property
    def is_level(self) -> bool:
        return self.aggregation in LEVEL_AGGREGATIONS


@dataclass(frozen=True)
class ProductItem:
    row: int
    product_item_id: str | None
    display_name: str | None
    meter_id: str | None
    dimension_filter: str | None
    filter_key: str | None
    filter_value: str | None
    filter_ok: bool


@dataclass(frozen=True)
class Rate:
    row: int
    rate_id: str | None
    product_item_id: str | None
    customer_id: str | None
    currency: str | None
    pricing_model: str | None
    unit_price: Decimal | None
    package_size: Decimal | None
    free_units: Decimal | None
    effective_from: date | None
    effective_to: date | None
    dates_ok: bool

    def in_effect(self, on: date) -> bool:
        return _in_effect(self.dates_ok, self.effective_from, self.effective_to, on)


@dataclass(frozen=True)
class RateTier:
    row: int
    rate_id: str | None
    tier: int | None
    up_to: Decimal | None
    unit_price: Decimal | None
    flat_fee: Decimal | None
    up_to_ok: bool


@dataclass(frozen=True)
class Commitment:
    row: int
    customer_id: str | None
    minimum_amount: Decimal | None
    currency: str | None
    effective_from: date | None
    effective_to: date | None
    dates_ok: bool

    def in_effect(self, on: date) -> bool:
        return _in_effect(self.dates_ok, self.effective_from, self.effective_to, on)


@dataclass
class Parsed:
    customers: list[Customer]
    meters: list[Meter]
    product_items: list[ProductItem]
    rates: list[Rate]
    rate_tiers: list[RateTier]
    commitments: list[Commitment]
    problems: list[Problem]
    sellers: list[Party] = field(default_factory=list)  # seller.csv (E21): at most one row


def plain(value: Decimal | None) -> str | None:
    """A Decimal as plain text (never an exponent), for exact transfer into SQL."""
    return None if value is None else format(value, "f")


def fmt(value: Decimal | None) -> str:
    """A Decimal for messages, as written in the catalog (``4.60`` stays ``4.60``, unlike
    ``readers.format_quantity``, which drops trailing zeros)."""
    return "" if value is None else format(value, "f")


def iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def parse(catalog: Catalog, currencies: Mapping[str, int] | None = None) -> Parsed:
    """The catalog as typed records (invalid cells become None) plus the per-row problems.

    Parsed once per process and content: a catalog read from the same bytes (its fingerprint),
    with the same currencies, is parsed once; each caller gets its own lists of the same records."""
    currencies = read_currencies() if currencies is None else currencies
    key = (catalog.fingerprint, tuple(sorted(currencies.items())))
    if not catalog.fingerprint:  # built by hand, not read from files: nothing to share
        return _parse(catalog, currencies)
    if key not in _PARSED:
        if len(_PARSED) >= 8:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = _parse(catalog, currencies)
    # the records are frozen; fresh lists, so a caller that edits one changes no other's
    return Parsed(**{f.name: list(getattr(_PARSED[key], f.name)) for f in fields(Parsed)})


_PARSED: dict[tuple, Parsed] = {}


def _parse(catalog: Catalog, currencies: Mapping[str, int]) -> Parsed:
    problems: list[Problem] = list(catalog.read_problems)

    customers = []
    for row in catalog.customers:
        f = Fields(catalog, "customers", row, row["customer_id"], problems)
        customer_id = f.text("customer_id", required=True)
        if customer_id is not None and not CUSTOMER_ID_RE.fullmatch(customer_id):
            f.problem("customer_id", f"{customer_id!r} is not a valid customer_id: use 1-64 of "
                      "A-Z a-z 0-9 _ . - (it appears in invoice ids, file names and URLs)")
        currency = f.currency(currencies)
        active_from, _ = f.date("active_from")
        active_to, _ = f.date("active_to")
        if active_from and active_to and active_to <= active_from:
            f.problem("active_to", f"active_to ({active_to}) must be after active_from "
                      f"({active_from}); active_to is exclusive")
        customers.append(Customer(row.row, customer_id, f.text("customer_name"), currency,
                                  active_from, active_to, parse_party(f)))

    meters = []
    for row in catalog.meters:
        f = Fields(catalog, "meters", row, row["meter_id"], problems)
        meter_id = f.text("meter_id", required=True)
        aggregation = f.text("aggregation", required=True)
        if aggregation is not None and aggregation not in AGGREGATIONS:
            f.problem("aggregation", f"aggregation {aggregation!r} is not one of "
                      f"{', '.join(AGGREGATIONS)}")
            aggregation = None
        unique_dimension = f.text("unique_dimension")
        if aggregation == "unique_count" and unique_dimension is None \
                and catalog.has_column("meters", "unique_dimension"):
            f.problem("unique_dimension", "a unique_count meter needs unique_dimension: the "
                      "dimension whose distinct values it counts (e.g. user_id)")
        elif aggregation not in (None, "unique_count") and unique_dimension is not None:
            f.problem("unique_dimension", f"unique_dimension ({unique_dimension}) is only for "
                      f"unique_count meters, not {aggregation}; leave it empty")
        time_unit = f.text("time_unit")
        if time_unit is not None and time_unit not in TIME_UNITS:
            f.problem("time_unit", f"time_unit {time_unit!r} is not one of period, day, hour")
        elif time_unit is not None and aggregation not in (None, "time_weighted_sum"):
            f.problem("time_unit", f"time_unit ({time_unit}) is only for time_weighted_sum "
                      f"meters, not {aggregation}; leave it empty")
        time_unit = ((time_unit if time_unit in TIME_UNITS else "period")
                     if aggregation == "time_weighted_sum" else None)  # empty: period
        meters.append(Meter(row.row, meter_id, f.text("display_name"), f.text("unit"),
                            aggregation, unique_dimension, time_unit))

    items = []
    for row in catalog.product_items:
        f = Fields(catalog, "product_items", row, row["product_item_id"], problems)
        item_id = f.text("product_item_id", required=True)
        meter_id = f.text("meter_id", required=True)
        dimension_filter = f.text("dimension_filter")
        key = value = None
        filter_ok = True
        if dimension_filter is not None:
            key, sep, value = dimension_filter.partition("=")
            if not sep or not key:
                f.problem("dimension_filter", f"dimension_filter {dimension_filter!r} is not "
                          "key=value (e.g. region=eu)")
                key = value = None
                filter_ok = False
        items.append(ProductItem(row.row, item_id, f.text("display_name"), meter_id,
                                 dimension_filter, key, value, filter_ok))

    rates = []
    for row in catalog.rates:
        f = Fields(catalog, "rates", row, row["rate_id"], problems)
        rate_id = f.text("rate_id", required=True)
        item_id = f.text("product_item_id", required=True)
        currency = f.currency(currencies)
        model = f.text("pricing_model", required=True)
        if model is not None and model not in PRICING_MODELS:
            f.problem("pricing_model", f"pricing_model {model!r} is not one of "
                      f"{', '.join(PRICING_MODELS)}")
            model = None
        unit_price, _ = f.decimal("unit_price")
        package_size, _ = f.decimal("package_size", positive=True)
        free_units, _ = f.decimal("free_units")
        if model in ("per_unit", "package") and row["unit_price"] is None:
            what = "the price of one package" if model == "package" else "the price per unit"
            f.problem("unit_price", f"a {model} rate needs unit_price ({what})")
        if model in TIERED_MODELS and row["unit_price"] is not None:
            f.problem("unit_price", f"unit_price ({row['unit_price']}) on a {model} rate: its "
                      "tiers in rate_tiers.csv carry the prices; leave it empty")
        if model == "package" and row["package_size"] is None:
            f.problem("package_size", "a package rate needs package_size (> 0): the units in "
                      "one package")
        if model not in (None, "package") and row["package_size"] is not None:
            f.problem("package_size", f"package_size ({row['package_size']}) on a {model} "
                      "rate; it is only for package rates: leave it empty")
        if model in TIERED_MODELS and free_units is not None and free_units != 0:
            f.problem("free_units", f"free_units ({row['free_units']}) on a {model} rate; "
                      "remove it or give tier 1 a zero price")
        effective_from, from_ok = f.date("effective_from", required=True)
        effective_to, to_ok = f.date("effective_to")
        dates_ok = from_ok and to_ok and effective_from is not None
        if effective_from and effective_to and effective_to <= effective_from:
            f.problem("effective_to", f"effective_to ({effective_to}) must be after "
                      f"effective_from ({effective_from}); effective_to is exclusive")
            dates_ok = False
        rates.append(Rate(row.row, rate_id, item_id, f.text("customer_id"), currency, model,
                          unit_price, package_size, free_units, effective_from, effective_to,
                          dates_ok))

    tiers = []
    for row in catalog.rate_tiers:
        key = f"{row['rate_id'] or '?'} tier {row['tier'] or '?'}"
        f = Fields(catalog, "rate_tiers", row, key, problems)
        rate_id = f.text("rate_id", required=True)
        tier_text = f.text("tier", required=True)
        tier = None
        if tier_text is not None:
            if TIER_RE.fullmatch(tier_text) and int(tier_text) >= 1:
                tier = int(tier_text)
            else:
                f.problem("tier", f"tier {tier_text!r} is not a whole number >= 1")
        up_to, up_to_ok = f.decimal("up_to", positive=True)
        unit_price, _ = f.decimal("unit_price", required=True)
        flat_fee, _ = f.decimal("flat_fee")
        tiers.append(RateTier(row.row, rate_id, tier, up_to, unit_price, flat_fee, up_to_ok))

    commitments = []
    for row in catalog.commitments:
        f = Fields(catalog, "commitments", row, row["customer_id"], problems)
        customer_id = f.text("customer_id", required=True)
        minimum, _ = f.decimal("minimum_amount", required=True)
        currency = f.currency(currencies)
        if minimum is not None and currency is not None \
                and decimal_places(minimum) > currencies[currency]:
            f.problem("minimum_amount", f"minimum_amount ({row['minimum_amount']}) has more "
                      f"decimal places than {currency}'s minor unit ({currencies[currency]})")
        effective_from, from_ok = f.date("effective_from", required=True)
        effective_to, to_ok = f.date("effective_to")
        dates_ok = from_ok and to_ok and effective_from is not None
        if effective_from and effective_to and effective_to <= effective_from:
            f.problem("effective_to", f"effective_to ({effective_to}) must be after "
                      f"effective_from ({effective_from}); effective_to is exclusive")
            dates_ok = False
        commitments.append(Commitment(row.row, customer_id, minimum, currency, effective_from,
                                      effective_to, dates_ok))

    sellers = []
    for row in catalog.seller:
        f = Fields(catalog, "seller", row, None, problems)
        f.text("seller_name", required=True)
        if sellers:
            f.problem(None, "seller.csv has one seller: only its first row is used")
            continue
        sellers.append(parse_party(f, "seller_name"))
    return Parsed(customers, meters, items, rates, tiers, commitments, problems, sellers)
