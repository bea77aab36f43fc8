"""The level section of `meterline explain` for a level meter's line (CONTRACT.md v1.2 section
6): the level carried into the period, the level's steps, the integral, the divisor and the
quantity, recomputed from the one customer's landed events of the meter (sql/explain_level.sql),
exact to the microsecond and to 12 places."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal

from orchestration.lib import readers
from orchestration.lib.readers import format_quantity as fmt_q
from orchestration.lib.sql import read_sql

#: what an item's lines for a period were billed before this invoice: the period's own usage
#: lines and the adjustments of earlier invoices (an adjustment restates from there)
BILLED_BEFORE_SQL = """
select coalesce(sum(quantity), 0) from marts.fct_invoice_lines
where customer_id = ? and product_item_id = ? and usage_period_start = ?
  and (line_type = 'usage' or (line_type = 'adjustment' and billing_period_start < ?))
"""
#: microseconds of a `day` and an `hour` time unit; `period` is the month's own length
UNIT_MICROSECONDS = {"day": 86_400_000_000, "hour": 3_600_000_000}
_US_PER_DAY = UNIT_MICROSECONDS["day"]
STEPS_SHOWN = 10  # sql/explain_level.sql returns the first 10 steps


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _us(later: datetime, earlier: datetime) -> int:
    return (later - earlier) // timedelta(microseconds=1)


# Level figures (level x microseconds) outgrow the 28 digits of Decimal's default context, which
# would round them silently: every sum, product and text of them goes through this one.
_EXACT = Context(prec=200)


def _q(value: Decimal | int | None) -> str | None:
    """Exact text of a level figure (``quantity_or_none``, without the 28-digit context)."""
    return None if value is None else format(_EXACT.normalize(Decimal(value)), "f")


def quotient_12(numerator: Decimal, divisor: int) -> Decimal:
    """``numerator / divisor`` rounded once to 12 places, half away from zero, in integer
    arithmetic (``numerator`` has at most 12 places)."""
    units = _EXACT.scaleb(numerator, 12)
    if units != units.to_integral_value():
        raise ValueError(f"{numerator} has more than 12 decimal places")
    whole, rest = divmod(abs(int(units)), divisor)
    whole += 2 * rest >= divisor
    return Decimal(f"{'-' if units < 0 else ''}{whole}E-12")


def span(microseconds: int) -> str:
    """A duration for people: `22 d`, `9 d 12 h`, `11 d 11 h 44 min 29.5 s`."""
    days, rest = divmod(microseconds, _US_PER_DAY)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    if rest:
        parts.append(f"{fmt_q(Decimal(rest).scaleb(-6))} s")
    return " ".join(parts) or "0 s"


def _signed(value: Decimal) -> str:
    return fmt_q(value) if value < 0 else f"+{fmt_q(value)}"


def level_figures(con, *, customer_id: str, meter_id: str, aggregation: str,
                  time_unit: str | None, dimension_filter: str | None, period_start: date,
                  period_end: date, accrued_to: datetime, landed_by: datetime | None,
                  landed_after: datetime | None = None) -> dict:
    """The level behind a level meter's figures for [period_start, period_end) (CONTRACT.md
    v1.2 section 3), from the customer's events of the meter that ``dimension_filter`` matches,
    landed by ``landed_by`` (None: all): the level carried in and how many events it sums, the
    steps (one per distinct instant of the period's events before ``accrued_to``, the first 10
    shown), for ``time_weighted_sum`` the carried segment (from the start to the first step, at
    the carried level: not a step), the integral (level x microseconds), the divisor and the
    quantity; for ``running_total`` the level at ``accrued_to``, which is the quantity. JSON-able
    (numbers as exact strings); ``quantity`` is the aggregate before max(., 0)."""
    key, _, value = (dimension_filter or "").partition("=")
    params = {"customer_id": customer_id, "meter_id": meter_id,
              "filter_key": key if dimension_filter else None,
              "filter_value": value if dimension_filter else None,
              "period_start": _instant(period_start), "period_end": _instant(period_end),
              "accrued_to": accrued_to, "landed_by": landed_by, "landed_after": landed_after}
    rows = con.execute(read_sql(__file__, "explain_level.sql"), params).fetchall()
    (carried, carried_count, step_count, first_step_at, steps_integral, closing,
     period_events, not_accrued, landed_after_count) = rows[0][:9]
    weighted = aggregation == "time_weighted_sum"
    steps = []
    for *_summary, _n, at, change, count, level, duration, level_x_duration in rows:
        if at is None:
            continue
        step = {"at": _iso(at), "change": _q(change), "event_count": count, "level": _q(level)}
        if weighted:
            step.update(duration_us=duration, until=_iso(at + timedelta(microseconds=duration)),
                        level_x_duration=_q(level_x_duration))
        steps.append(step)
    figures: dict = {
        "aggregation": aggregation, "meter_id": meter_id, "dimension_filter": dimension_filter,
        "usage_period_start": period_start.isoformat(), "usage_period_end": period_end.isoformat(),
        "accrued_to": _iso(accrued_to),
        "events_landed_by": None if landed_by is None else _iso(landed_by),
        "carried_level": _q(carried), "carried_event_count": carried_count,
        "period_event_count": period_events, "events_not_accrued": not_accrued,
        "step_count": step_count, "steps": steps}
    if landed_after is not None:
        figures["landed_after"] = {"at": _iso(landed_after), "event_count": landed_after_count}
    if not weighted:
        figures.update(closing_level=_q(closing), quantity=_q(closing))
        return figures
    segment_end = first_step_at or accrued_to
    segment_us = max(_us(segment_end, _instant(period_start)), 0)
    segment = None
    if segment_us:
        segment = {"from": _iso(_instant(period_start)), "to": _iso(segment_end),
                   "level": _q(carried), "duration_us": segment_us,
                   "level_x_duration": _q(_EXACT.multiply(carried, segment_us))}
    integral = _EXACT.add(_EXACT.multiply(carried, segment_us), steps_integral)
    unit = time_unit or "period"
    divisor = UNIT_MICROSECONDS.get(unit) or (period_end - period_start).days * _US_PER_DAY
    figures.update(time_unit=unit, carried_segment=segment, steps_integral=_q(steps_integral),
                   integral=_q(integral), divisor_us=divisor,
                   quantity=_q(quotient_12(integral, divisor)))
    return figures


def say_level(say, level: dict) -> None:
    """The level section in words, step by step (the figures of ``level_figures``)."""
    if "unavailable" in level:
        say(f"  the level: {level['unavailable']}")
        return
    weighted = level["aggregation"] == "time_weighted_sum"
    landed = (f"landed by {level['events_landed_by']}, when the invoice was published"
              if level["events_landed_by"] else "every landed event (a draft)")
    matching = f" matching {level['dimension_filter']}" if level["dimension_filter"] else ""
    say(f"  the level ({level['aggregation']}"
        f"{', time unit ' + level['time_unit'] if weighted else ''}): the customer's "
        f"{level['meter_id']} events{matching}, {landed}")
    start = f"{level['usage_period_start']}T00:00:00+00:00"
    say(f"    carried into {start}: {level['carried_level']}, the sum of the "
        f"{level['carried_event_count']} event(s) before it")
    segment = level.get("carried_segment")
    if weighted and segment:
        say(f"    carried segment (not a step): from {segment['from']} to {segment['to']} the "
            f"level is {segment['level']}: {segment['duration_us']} us "
            f"({span(segment['duration_us'])}); {segment['level']} x {segment['duration_us']} = "
            f"{segment['level_x_duration']}")
    elif weighted:
        say("    no carried segment: the first step is at the period's first instant")
    shown = len(level["steps"])
    if not shown:
        say(f"    no step: no event of the period before {level['accrued_to']}")
    else:
        say(f"    {level['step_count']} step(s), one per distinct timestamp of the period's "
            f"events{f', the first {shown}' if shown < level['step_count'] else ''}:")
    for step in level["steps"]:
        change = f"change {_signed(Decimal(step['change']))} ({step['event_count']} event(s))"
        if weighted:
            say(f"      {step['at']}: {change}, level {step['level']} until {step['until']}: "
                f"{step['duration_us']} us ({span(step['duration_us'])}); {step['level']} x "
                f"{step['duration_us']} = {step['level_x_duration']}")
        else:
            say(f"      {step['at']}: {change}, level {step['level']} from then")
    if shown < level["step_count"]:
        say(f"      ... {level['step_count'] - shown} more step(s), in the figures below")
    if level["events_not_accrued"]:
        say(f"    {level['events_not_accrued']} event(s) of the period at or after "
            f"{level['accrued_to']} are not accrued yet (the month is not over)")
    end = f"{level['usage_period_end']}T00:00:00+00:00"
    until = (f"the period's end, {end}" if level["accrued_to"] == end
             else f"{level['accrued_to']}, the run's instant (the month is not over)")
    if not weighted:
        say(f"    the level at {until}, from the events before that instant: "
            f"{level['closing_level']} = the quantity {level['quantity']}")
        return
    parts = (f"{segment['level_x_duration']} (carried segment) + {level['steps_integral']} "
             f"(steps) = " if segment and level["step_count"] else "")
    say(f"    integral up to {until} = {parts}{level['integral']} (level x microseconds)")
    unit = level["time_unit"]
    say(f"    divisor: time unit {unit}"
        f"{', the whole month' if unit == 'period' else ''} = {level['divisor_us']} us "
        f"({span(level['divisor_us'])})")
    say(f"    quantity = {level['integral']} / {level['divisor_us']} = {level['quantity']} "
        f"(exact, rounded once to 12 places, half away from zero)")


def line_level(con, invoice: tuple, line: dict, item_q: Decimal | None, meter: tuple,
                events_served: bool) -> dict:
    """``level_figures`` for a level meter's line: a usage line's own period, accruing up to the
    invoice's ``usage_accrued_to``; an adjustment line's restated period (published, so over),
    with how many events landed after that period was published (the late ones). The events
    are those landed when the line was built: by the invoice's publication, or all (a draft)."""
    if not events_served:
        return {"unavailable": "the steps need the landed events, which the readers' snapshot "
                               "does not hold (a run is writing): explain again when it ends"}
    customer, billing_start, status, accrued_to, invoice_published_at = invoice
    aggregation, _unique, time_unit, dimension_filter = meter
    start = date.fromisoformat(line["usage_period_start"])
    end = date.fromisoformat(line["usage_period_end"])
    landed_after = None
    if line["line_type"] == "adjustment":
        accrued_to = _instant(end)
        landed_after = published_at(con, start)
    figures = level_figures(
        con, customer_id=customer, meter_id=line["meter_id"], aggregation=aggregation,
        time_unit=time_unit, dimension_filter=dimension_filter, period_start=start,
        period_end=end, accrued_to=accrued_to or _instant(end),
        landed_by=invoice_published_at if status == "published" else None,
        landed_after=landed_after)
    quantity = max(Decimal(figures["quantity"]), Decimal(0))
    item_q = item_q or Decimal(0)
    if line["line_type"] == "adjustment":
        before = con.execute(BILLED_BEFORE_SQL, [customer, line["product_item_id"], start,
                                                 billing_start]).fetchone()[0]
        change = _EXACT.subtract(quantity, before)
        figures["restated"] = {"quantity": _q(quantity), "billed_before": _q(before),
                               "change": _q(change), "matches_line": change == item_q}
    else:
        figures["billed_quantity"] = _q(quantity)
        figures["matches_line"] = quantity == item_q
    return figures


def say_outcome(say, line: dict, level: dict) -> None:
    if "unavailable" in level:
        return
    item_q = line["item_quantity"]
    rebuilt = ("an event landed after the line was built (`meterline bill --period` rebuilds a "
               "draft), or the catalog changed since")
    if "restated" in level:
        r = level["restated"]
        late = level.get("landed_after")
        if late:
            say(f"    {late['event_count']} of these events landed after "
                f"{level['usage_period_start'][:7]} was published ({late['at']}): the late "
                f"usage this adjustment restates")
        if level["carried_level"] == "0" and not level["period_event_count"]:
            say(f"    the item is no longer live in {level['usage_period_start'][:7]} (no level "
                f"carried in, no event): it re-prices to no lines, 0")
        say(f"    restated Q = max({level['quantity']}, 0) = {r['quantity']}; billed before "
            f"for this item and period (its usage lines, earlier adjustments) {r['billed_before']}"
            f"; change {r['quantity']} - {r['billed_before']} = {r['change']}")
        if r["matches_line"]:
            say(f"    = this adjustment's quantity {item_q}")
        else:
            say(f"    note: this adjustment's quantity is {item_q}, not {r['change']}: {rebuilt}")
    elif level["matches_line"]:
        say(f"    billed Q = max({level['quantity']}, 0) = {level['billed_quantity']}, the "
            f"item's quantity on this invoice")
    else:
        say(f"    note: max({level['quantity']}, 0) = {level['billed_quantity']}, but the item's "
            f"quantity on this invoice is {item_q}: {rebuilt}")


def published_at(con, period_start: date) -> datetime | None:
    if not readers.table_exists(con, "billing", "published_periods"):
        return None
    row = con.execute("select published_at from billing.published_periods "
                      "where billing_period_start = ?", [period_start]).fetchone()
    return row[0] if row else None
