"""The static rules of the price book (CONTRACT.md section 3): ``validate`` reports *every*
problem of a catalog that holds whatever the period (duplicates, references, overlapping
filters, rates and commitments, tier tables), each by file, row and field.

Decisions where CONTRACT.md is silent:
- Tier tables: numbered exactly 1..n, ``up_to`` strictly increasing, every tier but the last
  has an ``up_to`` and the last one has none (open-ended, so every quantity has a price). A
  ``graduated``/``volume`` rate needs at least one tier; tiers of a ``per_unit``/``package`` rate
  are a problem.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date

from orchestration.catalog.model import (
    TIERED_MODELS,
    Commitment,
    Customer,
    Parsed,
    ProductItem,
    Rate,
    RateTier,
    fmt,
    parse,
)
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import FILE_ORDER, Catalog


def validate(catalog: Catalog, currencies: Mapping[str, int] | None = None) -> list[Problem]:
    """Every problem of the catalog (CONTRACT.md section 3), period-independent ones only,
    sorted by file (in catalog order) and row."""
    parsed = parse(catalog, currencies)
    problems = list(parsed.problems)  # the parsed model is shared: never extend its own list
    _check_duplicates(parsed, problems)
    _check_references(parsed, problems)
    _check_item_filters(parsed, problems)
    _check_rate_overlaps(parsed, problems)
    _check_tiers(parsed, problems)
    _check_commitment_overlaps(parsed, problems)
    return _sorted(problems)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (FILE_ORDER.get(p.file, 99),
                                           p.row if p.row is not None else 0))


def _check_duplicates(parsed: Parsed, problems: list[Problem]) -> None:
    def dupes(records, key_of, file, column, label=None):
        first: dict = {}
        for rec in records:
            key = key_of(rec)
            if key is None or (isinstance(key, tuple) and None in key):
                continue
            if key in first:
                shown = label(rec) if label else key
                problems.append(Problem(file, rec.row, column,
                                        f"duplicate {column} {shown} (also on row {first[key]})",
                                        shown))
            else:
                first[key] = rec.row

    dupes(parsed.customers, lambda r: r.customer_id, "customers.csv", "customer_id")
    dupes(parsed.meters, lambda r: r.meter_id, "meters.csv", "meter_id")
    dupes(parsed.product_items, lambda r: r.product_item_id, "product_items.csv",
          "product_item_id")
    dupes(parsed.rates, lambda r: r.rate_id, "rates.csv", "rate_id")
    dupes(parsed.rate_tiers, lambda r: (r.rate_id, r.tier), "rate_tiers.csv", "tier",
          lambda r: f"{r.rate_id} tier {r.tier}")


def _check_references(parsed: Parsed, problems: list[Problem]) -> None:
    meters = {m.meter_id for m in parsed.meters if m.meter_id}
    items = {i.product_item_id for i in parsed.product_items if i.product_item_id}
    customers: dict[str, Customer] = {}
    for c in parsed.customers:
        if c.customer_id:
            customers.setdefault(c.customer_id, c)
    rates: dict[str, Rate] = {}
    for r in parsed.rates:
        if r.rate_id:
            rates.setdefault(r.rate_id, r)

    for item in parsed.product_items:
        if item.meter_id and item.meter_id not in meters:
            problems.append(Problem("product_items.csv", item.row, "meter_id",
                                    f"unknown meter {item.meter_id} (not in meters.csv)",
                                    item.product_item_id))
    for rate in parsed.rates:
        if rate.product_item_id and rate.product_item_id not in items:
            problems.append(Problem("rates.csv", rate.row, "product_item_id",
                                    f"unknown product item {rate.product_item_id} "
                                    "(not in product_items.csv)", rate.rate_id))
        if rate.customer_id:
            customer = customers.get(rate.customer_id)
            if customer is None:
                problems.append(Problem("rates.csv", rate.row, "customer_id",
                                        f"unknown customer {rate.customer_id} "
                                        "(not in customers.csv)", rate.rate_id))
            elif customer.currency and rate.currency and customer.currency != rate.currency:
                problems.append(Problem(
                    "rates.csv", rate.row, "currency",
                    f"a rate in {rate.currency} for a {customer.currency} customer "
                    f"({rate.customer_id}); a customer is always priced in its own currency",
                    rate.rate_id))
    tiers_by_rate: dict[str, int] = Counter(t.rate_id for t in parsed.rate_tiers if t.rate_id)
    for tier in parsed.rate_tiers:
        if not tier.rate_id:
            continue
        rate = rates.get(tier.rate_id)
        key = f"{tier.rate_id} tier {tier.tier if tier.tier is not None else '?'}"
        if rate is None:
            problems.append(Problem("rate_tiers.csv", tier.row, "rate_id",
                                    f"unknown rate {tier.rate_id} (not in rates.csv)", key))
        elif rate.pricing_model in ("per_unit", "package"):
            problems.append(Problem("rate_tiers.csv", tier.row, "rate_id",
                                    f"{tier.rate_id} is a {rate.pricing_model} rate; only "
                                    "graduated and volume rates have tiers", key))
    for rate in parsed.rates:
        if rate.pricing_model in TIERED_MODELS and rate.rate_id \
                and not tiers_by_rate.get(rate.rate_id):
            problems.append(Problem("rates.csv", rate.row, "pricing_model",
                                    f"a {rate.pricing_model} rate needs tiers: no row of "
                                    f"rate_tiers.csv has rate_id {rate.rate_id}", rate.rate_id))
    for commitment in parsed.commitments:
        if not commitment.customer_id:
            continue
        customer = customers.get(commitment.customer_id)
        if customer is None:
            problems.append(Problem("commitments.csv", commitment.row, "customer_id",
                                    f"unknown customer {commitment.customer_id} "
                                    "(not in customers.csv)", commitment.customer_id))
        elif customer.currency and commitment.currency \
                and customer.currency != commitment.currency:
            problems.append(Problem("commitments.csv", commitment.row, "currency",
                                    f"a commitment in {commitment.currency} for a "
                                    f"{customer.currency} customer", commitment.customer_id))


def _describe_filter(item: ProductItem) -> str:
    return f"{item.product_item_id} ({item.dimension_filter or 'no filter'})"


def _check_item_filters(parsed: Parsed, problems: list[Problem]) -> None:
    """Items of one meter must never match the same event: one item without a filter, or
    items filtering the same key on different values. Reported on the later row of each pair."""
    by_meter: dict[str, list[ProductItem]] = defaultdict(list)
    for item in parsed.product_items:
        if item.meter_id and item.product_item_id and item.filter_ok:
            by_meter[item.meter_id].append(item)
    for meter_id, items in by_meter.items():
        for j, later in enumerate(items):
            for earlier in items[:j]:
                if earlier.product_item_id == later.product_item_id:
                    continue  # a duplicate id, reported as such
                if earlier.filter_key is None or later.filter_key is None:
                    why = ""
                elif earlier.filter_key != later.filter_key:
                    why = (f" (an event with both {earlier.filter_key} and {later.filter_key} "
                           "matches both; filter every item of a meter on the same key)")
                elif earlier.filter_value == later.filter_value:
                    why = ""
                else:
                    continue
                problems.append(Problem(
                    "product_items.csv", later.row, "dimension_filter",
                    f"{_describe_filter(earlier)} and {_describe_filter(later)} are items of "
                    f"meter {meter_id} that can match the same event{why}",
                    later.product_item_id))


def _overlap_start(a_from: date, a_to: date | None, b_from: date, b_to: date | None
                   ) -> date | None:
    start = max(a_from, b_from)
    ends = [d for d in (a_to, b_to) if d is not None]
    if ends and start >= min(ends):
        return None
    return start


def _check_rate_overlaps(parsed: Parsed, problems: list[Problem]) -> None:
    groups: dict[tuple, list[Rate]] = defaultdict(list)
    for rate in parsed.rates:
        if rate.dates_ok and rate.product_item_id and rate.currency and rate.rate_id:
            groups[(rate.product_item_id, rate.customer_id, rate.currency)].append(rate)
    for (item_id, customer_id, currency), rates in groups.items():
        rates.sort(key=lambda r: r.row)
        for j, b in enumerate(rates):
            for a in rates[:j]:
                assert a.effective_from and b.effective_from
                start = _overlap_start(a.effective_from, a.effective_to,
                                       b.effective_from, b.effective_to)
                if start is None:
                    continue
                who = (f"two list rates for item {item_id} in {currency}" if customer_id is None
                       else f"two rates of customer {customer_id} for item {item_id} in "
                            f"{currency}")
                first, second = sorted((a, b), key=lambda r: (r.effective_from, r.row))
                hint = (f"close {first.rate_id} with effective_to {second.effective_from}"
                        if first.effective_from < second.effective_from
                        else "keep one of them")
                problems.append(Problem(
                    "rates.csv", a.row, "effective_from/effective_to",
                    f"{who} both in effect from {start}; {hint}",
                    f"{a.rate_id}, {b.rate_id}", other_rows=(b.row,)))


def _check_commitment_overlaps(parsed: Parsed, problems: list[Problem]) -> None:
    groups: dict[str, list[Commitment]] = defaultdict(list)
    for c in parsed.commitments:
        if c.dates_ok and c.customer_id:
            groups[c.customer_id].append(c)
    for customer_id, commitments in groups.items():
        for j, b in enumerate(commitments):
            for a in commitments[:j]:
                assert a.effective_from and b.effective_from
                start = _overlap_start(a.effective_from, a.effective_to,
                                       b.effective_from, b.effective_to)
                if start is not None:
                    problems.append(Problem(
                        "commitments.csv", a.row, "effective_from/effective_to",
                        f"two commitments of customer {customer_id} both in effect from "
                        f"{start}; a customer has at most one commitment at a time",
                        customer_id, other_rows=(b.row,)))


def _check_tiers(parsed: Parsed, problems: list[Problem]) -> None:
    models: dict[str, str | None] = {}
    for r in parsed.rates:
        if r.rate_id:
            models.setdefault(r.rate_id, r.pricing_model)
    by_rate: dict[str, list[RateTier]] = defaultdict(list)
    for tier in parsed.rate_tiers:
        if tier.rate_id and models.get(tier.rate_id) in TIERED_MODELS:
            by_rate[tier.rate_id].append(tier)
    for rate_id, tiers in by_rate.items():
        if any(t.tier is None for t in tiers):
            continue  # an invalid tier number is already reported
        numbers = sorted(t.tier for t in tiers if t.tier is not None)
        n = len(tiers)
        if numbers != list(range(1, n + 1)):
            if len(set(numbers)) == len(numbers):  # duplicates are reported as such
                missing, more = _missing_tiers(numbers)
                first = min(tiers, key=lambda t: t.row)
                listed = ", ".join(map(str, missing)) + (f" and {more} more" if more else "")
                detail = f"tier {listed} missing" if missing else "they do not start at 1"
                problems.append(Problem(
                    "rate_tiers.csv", first.row, "tier",
                    f"the tiers of {rate_id} are numbered {', '.join(map(str, numbers))} "
                    f"({detail}); number them 1..{n} without gaps",
                    f"{rate_id} tier {first.tier}"))
            continue
        ordered = sorted(tiers, key=lambda t: t.tier or 0)
        if any(not t.up_to_ok for t in ordered):
            continue  # a bad up_to is already reported
        previous: RateTier | None = None
        for t in ordered:
            key = f"{rate_id} tier {t.tier}"
            last = t.tier == n
            if t.up_to is None and not last:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"up_to is empty but tier {t.tier} is not the last of {rate_id}'s {n} "
                    "tiers; only the last tier is open-ended", key))
            if t.up_to is not None and last:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"the last tier of {rate_id} has up_to {fmt(t.up_to)}; the last tier "
                    f"must be open-ended (empty up_to), or quantities above {fmt(t.up_to)} "
                    "have no price", key))
            if previous is not None and previous.up_to is not None and t.up_to is not None \
                    and t.up_to <= previous.up_to:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"up_to ({fmt(t.up_to)}) is not above tier {previous.tier}'s up_to "
                    f"({fmt(previous.up_to)}): the tiers overlap; up_to must strictly "
                    "increase", key))
            if t.up_to is not None:
                previous = t


def _missing_tiers(numbers: list[int], shown: int = 20) -> tuple[list[int], int]:
    """The first ``shown`` tier numbers missing from 1..max(numbers) (sorted, distinct), and how
    many more are missing: walks the gaps, so a tier numbered 10^26 costs nothing."""
    missing: list[int] = []
    more, previous = 0, 0
    for number in numbers:
        gap = number - previous - 1
        if gap > 0:
            take = min(gap, shown - len(missing))
            missing.extend(range(previous + 1, previous + 1 + take))
            more += gap - take
        previous = number
    return missing, more
