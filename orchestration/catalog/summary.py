"""The plain-text overview of the price book that ``meterline catalog`` prints."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from orchestration.catalog.model import Rate, RateTier, fmt, parse
from orchestration.catalog.read import Catalog


def summary(catalog: Catalog, on: date, currencies: Mapping[str, int] | None = None) -> str:
    """A plain-text overview for ``meterline catalog``: customers by currency, meters by
    aggregation (a time_weighted_sum meter with its time_unit), items, the rates in effect on
    ``on`` per item and currency, commitments."""
    p = parse(catalog, currencies)
    lines: list[str] = []
    by_currency = Counter(c.currency for c in p.customers if c.currency)
    active = [c for c in p.customers
              if (c.active_from is None or c.active_from <= on)
              and (c.active_to is None or on < c.active_to)]
    lines.append(f"{len(p.customers)} customers ("
                 + ", ".join(f"{cur} {n}" for cur, n in sorted(by_currency.items()))
                 + f"); {len(active)} active on {on}")
    not_active = sorted(c.customer_id or "?" for c in p.customers if c not in active)
    if not_active:
        lines.append(f"  not active on {on}: {', '.join(not_active)}")

    by_aggregation: dict[str, list[str]] = defaultdict(list)
    for m in p.meters:  # a time_weighted_sum meter with its time_unit: "storage_gb per period"
        by_aggregation[m.aggregation or "?"].append(
            (m.meter_id or "?") + (f" per {m.time_unit}" if m.time_unit else ""))
    lines.append(f"{len(p.meters)} meters: " + "; ".join(
        f"{agg} {len(ids)} ({', '.join(ids)})" for agg, ids in sorted(by_aggregation.items())))
    priced_meters = {i.meter_id for i in p.product_items}
    unbilled = [m.meter_id for m in p.meters if m.meter_id not in priced_meters]
    if unbilled:
        lines.append(f"  without a product item (unbilled usage): {', '.join(map(str, unbilled))}")

    tiers: dict[str, list[RateTier]] = defaultdict(list)
    for t in p.rate_tiers:
        if t.rate_id:
            tiers[t.rate_id].append(t)
    lines.append(f"{len(p.product_items)} product items; rates in effect on {on}:")
    in_effect = [r for r in p.rates if r.in_effect(on)]
    units = {m.meter_id: m.unit for m in p.meters if m.meter_id}
    width = max([len(i.product_item_id or "") for i in p.product_items] + [4])
    for item in sorted(p.product_items, key=lambda i: i.product_item_id or ""):
        filt = item.dimension_filter or "all events"
        lines.append(f"  {item.product_item_id:<{width}}  meter {item.meter_id} ({filt})")
        item_rates = sorted((r for r in in_effect if r.product_item_id == item.product_item_id),
                            key=lambda r: (r.currency or "", r.customer_id or ""))
        if not item_rates:
            lines.append(f"  {'':<{width}}    no rate in effect")
        unit = units.get(item.meter_id or "") or "unit"
        for r in item_rates:
            who = f"for {r.customer_id}" if r.customer_id else "list price"
            lines.append(f"  {'':<{width}}    {r.currency} {_describe_rate(r, tiers, unit)}  "
                         f"[{r.rate_id}, {who}, since {r.effective_from}"
                         + (f", until {r.effective_to}" if r.effective_to else "") + "]")

    current = [c for c in p.commitments if c.in_effect(on)]
    lines.append(f"{len(current)} commitment(s) in effect on {on}"
                 + (": " + ", ".join(f"{c.customer_id} minimum {fmt(c.minimum_amount)} "
                                     f"{c.currency}" for c in current) if current else ""))
    return "\n".join(lines)


def _describe_rate(rate: Rate, tiers: Mapping[str, list[RateTier]], unit: str) -> str:
    model = rate.pricing_model
    free = (f", first {fmt(rate.free_units)} free" if rate.free_units else "")
    if model == "per_unit":
        return f"per_unit {fmt(rate.unit_price)} per {unit}{free}"
    if model == "package":
        return f"package {fmt(rate.unit_price)} per {fmt(rate.package_size)} {unit}s{free}"
    rate_tiers = sorted(tiers.get(rate.rate_id or "", []), key=lambda t: t.tier or 0)
    parts = []
    previous: Decimal | None = None
    for t in rate_tiers:
        bound = (f"<= {fmt(t.up_to)}" if t.up_to is not None
                 else f"above {fmt(previous)}" if previous is not None else "all")
        fee = f" + {fmt(t.flat_fee)} flat" if t.flat_fee else ""
        parts.append(f"{bound}: {fmt(t.unit_price)}{fee}")
        previous = t.up_to
    return f"{model} ({len(rate_tiers)} tiers: {'; '.join(parts)})"
