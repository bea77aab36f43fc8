"""How each line of a published invoice is computed, written into its documents (docs/contract.md
E21) so that a reader recomputes every amount by hand from the document's own figures.

One ``calculation`` per line, its ``method`` saying which formula applies (then one rounding,
half away from zero, to the currency's minor unit):

- ``per_unit``: ``chargeable_units = max(quantity - free_units, 0)``; amount = chargeable_units x
  unit_price.
- ``package``: ``packages = ceil(chargeable_units / package_size)``; amount = packages x
  unit_price (the price of one package).
- ``graduated``: the line holds the ``units`` of one tier (``above`` < unit <= ``up_to``);
  amount = units x the tier's unit_price + its flat_fee (charged when the tier holds units).
- ``volume``: the tier that contains the whole quantity prices ``units`` = every unit; amount =
  units x the tier's unit_price + its flat_fee.
- ``minimum_commitment``: amount = minimum_amount - usage_total (the invoice's own usage lines).
- ``adjustment``: a restatement of ``restates.period`` for ``restates.product_item_id`` (or the
  commitment top-up when null): amount = ``repriced_amount`` (what the period's lines come to
  now, with ``quantity_now``) - ``billed_before`` (its lines and earlier adjustments);
  ``quantity_change`` = quantity_now - quantity_billed_before; ``repriced`` (when the pricer
  agrees) lists the lines of ``repriced_amount``, each a calculation as above.

Figures are exact strings (quantities without trailing zeros, money at the minor unit)."""

from __future__ import annotations

from decimal import Decimal

from orchestration.catalog.model import Commitment, Rate
from orchestration.lib.readers import format_money, format_quantity

ZERO = Decimal(0)
TierRanges = dict[tuple[str, int], tuple[Decimal, Decimal | None, Decimal]]


def _q(value: Decimal | None) -> str | None:
    return None if value is None else format_quantity(value)


def _ceil_div(numerator: Decimal, denominator: Decimal) -> int:
    whole = numerator // denominator
    return int(whole) + (1 if whole * denominator < numerator else 0)


def usage_calculation(line: dict, rate: Rate | None, tiers: TierRanges,
                      minor_unit: int) -> dict:
    """The calculation of one usage line (also the lines an adjustment re-prices)."""
    quantity = line["quantity"] if line["quantity"] is not None else ZERO
    unit_price = line["unit_price"] if line["unit_price"] is not None else ZERO
    amount = format_money(line["amount"], minor_unit)
    model = rate.pricing_model if rate else None
    if model in ("per_unit", "package") and rate is not None:
        free = rate.free_units or ZERO
        chargeable = quantity - free if quantity > free else ZERO
        calc = {"method": model, "quantity": _q(quantity), "free_units": _q(free),
                "chargeable_units": _q(chargeable), "unit_price": _q(unit_price)}
        if model == "package" and rate.package_size:
            calc.update(package_size=_q(rate.package_size),
                        packages=str(_ceil_div(chargeable, rate.package_size)))
        return {**calc, "amount": amount}
    if model in ("graduated", "volume") and line["tier"] is not None:
        lower, upper, flat = tiers.get((line["rate_id"], line["tier"]), (ZERO, None, ZERO))
        charged_flat = flat if quantity > 0 else ZERO  # no units in the tier: no flat fee
        return {"method": model, "tier": line["tier"],
                "tier_range": {"above": _q(lower), "up_to": _q(upper)},
                "units": _q(quantity), "unit_price": _q(unit_price),
                "flat_fee": format_money(charged_flat, minor_unit), "amount": amount}
    return {"method": model or "unknown", "quantity": _q(quantity),
            "unit_price": _q(unit_price), "amount": amount}


def commitment_calculation(line: dict, commitment: Commitment | None, usage_total: Decimal,
                           minor_unit: int) -> dict:
    calc: dict = {"method": "minimum_commitment",
                  "usage_total": format_money(usage_total, minor_unit),
                  "amount": format_money(line["amount"], minor_unit)}
    if commitment is not None:
        calc["commitment"] = {
            "minimum_amount": format_money(commitment.minimum_amount or ZERO, minor_unit),
            "effective_from": commitment.effective_from.isoformat()
            if commitment.effective_from else None,
            "effective_to": commitment.effective_to.isoformat()
            if commitment.effective_to else None}
        calc["minimum_amount"] = calc["commitment"]["minimum_amount"]
    return calc


def adjustment_calculation(line: dict, minor_unit: int) -> dict:
    """``line["billed_before"]``: (quantity, amount) billed for the restated period and item
    before this invoice (publish.published_documents reads them from the ledger)."""
    before_q, before_amount = line.get("billed_before") or (None, ZERO)
    amount = line["amount"]
    restates: dict = {"period": line["usage_period_start"].isoformat()[:7],
                      "usage_period": {"start": line["usage_period_start"].isoformat(),
                                       "end": line["usage_period_end"].isoformat()},
                      "product_item_id": line["product_item_id"]}
    if line["product_item_id"] is not None:
        change = line["quantity"] if line["quantity"] is not None else ZERO
        before = before_q if before_q is not None else ZERO
        restates.update(quantity_billed_before=_q(before), quantity_change=_q(change),
                        quantity_now=_q(before + change))
    else:
        restates["restates"] = "minimum commitment top-up"
    return {"method": "adjustment", "restates": restates,
            "billed_before": format_money(before_amount, minor_unit),
            "repriced_amount": format_money(before_amount + amount, minor_unit),
            "amount": format_money(amount, minor_unit)}


def explain(calc: dict, currency: str, unit: str | None) -> str:
    """The calculation as one line of text, the figures as in the JSON document."""
    u = f" {unit}" if unit else ""
    method = calc["method"]
    if method in ("per_unit", "package"):
        text = (f"{calc['quantity']}{u} - {calc['free_units']} free = "
                f"{calc['chargeable_units']}{u} chargeable")
        if method == "package":
            return (f"{text}; ceil({calc['chargeable_units']} / {calc['package_size']} per "
                    f"package) = {calc['packages']} packages x {calc['unit_price']} per package "
                    f"= {currency} {calc['amount']}")
        return f"{text} x {calc['unit_price']} = {currency} {calc['amount']}"
    if method in ("graduated", "volume"):  # the tier's range is printed beside it
        kind = ("graduated, each tier prices its own units" if method == "graduated"
                else "volume, the tier reached prices every unit")
        return (f"{kind}: {calc['units']}{u} x {calc['unit_price']} + flat fee "
                f"{calc['flat_fee']} = {currency} {calc['amount']}")
    if method == "minimum_commitment":
        return (f"minimum commitment {currency} {calc.get('minimum_amount', '?')} - usage "
                f"{calc['usage_total']} = {currency} {calc['amount']}")
    if method == "adjustment":
        r = calc["restates"]
        head = f"restates {r['period']}"
        if r["product_item_id"]:
            head += (f" {r['product_item_id']}: quantity {r['quantity_billed_before']} -> "
                     f"{r['quantity_now']} (change {r['quantity_change']}{u})")
        else:
            head += " minimum commitment top-up"
        repriced = "; ".join(explain(c, currency, unit) for c in calc.get("repriced", ()))
        return (f"{head}; re-priced {calc['repriced_amount']}"
                f"{f' ({repriced})' if repriced else ''} - billed before "
                f"{calc['billed_before']} = {currency} {calc['amount']}")
    return f"{calc.get('quantity')}{u} x {calc.get('unit_price')} = {currency} {calc['amount']}"
