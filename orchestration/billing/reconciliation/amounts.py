"""``line_amounts_match_decimal_pricer``: every usage and commitment line against an
independent re-pricing of the month by ``orchestration.billing.pricer`` in decimal.Decimal."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from orchestration.billing import pricer as pricer_lib
from orchestration.billing.reconciliation.result import Findings, money, plain
from orchestration.billing.reconciliation.run import Run


def line_amounts_match_decimal_pricer(run: Run) -> Findings:
    recipients = run.recipients()
    expected_lines, pricing_problems = pricer_lib.price_period(
        run.parsed, run.item_usage(), run.start, customers=recipients,
        currencies=run.currencies)
    actual_rows = run.con.execute("""
        select customer_id, line_type, product_item_id, tier, quantity, unit_price, amount,
               currency, invoice_id, line_number
        from marts.fct_invoice_lines
        where billing_period_start = $period and line_type in ('usage', 'minimum_commitment')
        order by invoice_id, line_number
    """, {"period": run.start}).fetchall()
    actual: dict[tuple, list[tuple]] = defaultdict(list)
    for row in actual_rows:
        actual[(row[0], row[1], row[2], row[3])].append(row)
    expected: dict[tuple, pricer_lib.PricedLine] = {}
    for lines in expected_lines.values():
        for line in lines:
            expected[line.key] = line

    differences: list[dict] = []
    for customer, problem in sorted(pricing_problems.items()):
        differences.append({"customer_id": customer, "problems": [f"pricer: {problem}"]})

    def describe(key: tuple) -> dict:
        customer, line_type, item, tier = key
        return {"customer_id": customer, "line_type": line_type, "product_item_id": item,
                "tier": tier}

    for key in sorted(set(expected) | set(actual), key=lambda k: tuple(
            "" if v is None else str(v) for v in k)):
        if key[0] in pricing_problems:
            continue
        want = expected.get(key)
        got = actual.get(key, [])
        entry = describe(key)
        if want is None:
            row = got[0]
            minor = run.minor_unit(row[7])
            entry.update({"expected_amount": None, "actual_amount": money(row[6], minor),
                          "invoice_id": row[8], "line_number": row[9],
                          "problems": ["a line the pricer does not produce"]})
            differences.append(entry)
            continue
        minor = run.minor_unit(want.currency)
        entry["expected_amount"] = money(want.amount, minor)
        entry["exact_amount"] = plain(want.exact_amount)
        if not got:
            entry.update({"actual_amount": None, "problems": ["line missing from the marts"]})
            differences.append(entry)
            continue
        row = got[0]
        _c, _t, _i, _tier, quantity, unit_price, amount, currency, invoice_id, number = row
        entry.update({"actual_amount": money(amount, run.minor_unit(currency)),
                      "invoice_id": invoice_id, "line_number": number})
        problems = []
        if len(got) > 1:
            problems.append(f"{len(got)} lines with this key")
        if amount != want.amount:
            problems.append(f"amount {money(amount, minor)} but the pricer gives "
                            f"{money(want.amount, minor)} (exact {plain(want.exact_amount)})")
        if quantity != want.quantity:
            problems.append(f"quantity {plain(quantity)} but the pricer gives "
                            f"{plain(want.quantity)}")
        if unit_price != want.unit_price:
            problems.append(f"unit_price {plain(unit_price)} but the pricer gives "
                            f"{plain(want.unit_price)}")
        if currency != want.currency:
            problems.append(f"currency {currency} but the customer's is {want.currency}")
        if problems:
            entry.update({"expected_quantity": want.quantity, "actual_quantity": quantity,
                          "expected_unit_price": want.unit_price,
                          "actual_unit_price": unit_price, "rate_id": want.rate_id,
                          "problems": problems})
            differences.append(entry)

    def totals(pairs: Iterable[tuple[str, Decimal]]) -> dict[str, str | None]:
        sums: dict[str, Decimal] = defaultdict(lambda: Decimal(0))
        for currency, amount in pairs:
            sums[currency] = pricer_lib.EXACT.add(sums[currency], amount)
        return {c: money(v, run.minor_unit(c)) for c, v in sorted(sums.items())}

    figures = {
        "expected_lines": len(expected), "actual_lines": len(actual_rows),
        "customers_priced": len(expected_lines),
        "expected_total_by_currency": totals((line.currency, line.amount)
                                             for line in expected.values()),
        "actual_total_by_currency": totals((row[7], row[6]) for row in actual_rows),
    }
    first = differences[0] if differences else {}
    first_text = (f"{first.get('customer_id')}/{first.get('line_type') or ''}"
                  f"/{first.get('product_item_id') or ''}"
                  + (f" tier {first['tier']}" if first.get("tier") is not None else "")
                  + f": {'; '.join(first.get('problems', []))}")
    return Findings(
        differences,
        f"{len(expected)} usage/commitment line(s) equal to the Decimal pricer's, to the minor "
        "unit",
        f"{len(differences)} line(s) differ from the Decimal pricer, first: {first_text}",
        figures)
