"""``rated_quantity_matches_usage``: the quantities of every item's usage lines against the
item's aggregate recomputed from the raw events its filter matches (for an item of a level
meter, the aggregate of its level; the item is live, and has lines, when one of the period's
events matches it or the level it carries in is not 0)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from orchestration.billing.reconciliation.result import Findings, plain
from orchestration.billing.reconciliation.run import Run


def _is_level(run: Run, item: str) -> bool:
    return run.item_meters.get(item) in run.level_meters


def rated_quantity_matches_usage(run: Run) -> Findings:
    usage = {(u.customer_id, u.product_item_id): u for u in run.item_usage()}
    groups = run.con.execute("""
        select invoice_id, customer_id, product_item_id, sum(quantity), count(*),
               count(quantity)
        from marts.fct_invoice_lines
        where billing_period_start = $period and line_type = 'usage'
        group by all order by all
    """, {"period": run.start}).fetchall()
    # Only an event of a meter with several items can match more than one: the two queries
    # group those events only (nothing, when every meter has one item).
    several = """
        select event_id, product_item_id from temp._recon_event_items
        where meter_id in (select meter_id from temp._recon_items
                           group by meter_id having count(*) > 1)
    """
    multi = run.con.execute(f"""
        select event_id, list(product_item_id order by product_item_id)
        from ({several}) group by event_id having count(*) > 1
        order by event_id limit 10
    """).fetchall()
    multi_count = run.con.execute(f"""
        select count(*) from (select event_id from ({several})
                              group by event_id having count(*) > 1)
    """).fetchone()[0]
    differences: list[dict] = []
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for invoice_id, customer, item, lines_q, line_count, with_q in groups:
        seen[(customer, item)].append(invoice_id)
        u = usage.get((customer, item))
        expected = None if u is None or u.quantity is None else max(u.quantity, Decimal(0))
        problems = []
        if u is None:
            problems.append("usage lines but no event of the period matches the item"
                            + (" and the level it carries in is 0: it is not live"
                               if _is_level(run, item) else ""))
        elif u.quantity is None:
            problems.append("no aggregate: the item's meter is not in meters.csv")
        elif with_q != line_count or lines_q != expected:
            problems.append(f"lines add up to {plain(lines_q)}, Q = max({plain(u.quantity)}, "
                            f"0) = {plain(expected)}"
                            + ("" if u.carried_level is None
                               else f" (level {plain(u.carried_level)} carried in)"))
        if invoice_id != run.invoice_prefix + str(customer):
            problems.append(f"on invoice {invoice_id}, not {run.invoice_prefix}{customer}")
        if problems:
            differences.append({
                "invoice_id": invoice_id, "customer_id": customer, "product_item_id": item,
                "expected_quantity": expected, "lines_quantity": lines_q,
                "aggregate": None if u is None else u.quantity,
                "event_count": None if u is None else u.event_count,
                "carried_level": None if u is None else u.carried_level,
                "line_count": line_count, "problems": problems})
    for (customer, item), invoices in seen.items():
        if len(invoices) > 1:
            differences.append({"customer_id": customer, "product_item_id": item,
                                 "invoice_ids": invoices,
                                 "problems": ["usage lines on several invoices"]})
    for (customer, item), u in usage.items():
        if (customer, item) not in seen:
            differences.append({
                "invoice_id": None, "customer_id": customer, "product_item_id": item,
                "expected_quantity": (None if u.quantity is None
                                      else max(u.quantity, Decimal(0))),
                "lines_quantity": None, "aggregate": u.quantity, "event_count": u.event_count,
                "carried_level": u.carried_level, "line_count": 0,
                "problems": [f"{u.event_count} event(s) match the item but it has no usage "
                             "line" if u.event_count or u.carried_level is None
                             else f"the level {plain(u.carried_level)} it carries in makes it "
                             "live (no event of its own), but it has no usage line"]})
    if multi_count:
        differences.append({"events_matching_several_items": multi_count,
                            "examples": [{"event_id": e, "product_item_ids": list(i)}
                                         for e, i in multi],
                            "problems": ["events priced by more than one item"]})
    figures = {"items_with_usage": len(usage), "line_groups": len(groups),
               "events_matching_several_items": multi_count,
               "published_at": run.published_at.isoformat() if run.published_at else None}
    first = differences[0] if differences else {}
    return Findings(
        differences,
        f"{len(usage)} (customer, item) usage group(s): every line group adds up to "
        "max(aggregate, 0) recomputed from raw events",
        f"{len(differences)} usage group(s) disagree, first: "
        f"{first.get('customer_id')}/{first.get('product_item_id')}: "
        f"{'; '.join(first.get('problems', []))}",
        figures)
