"""Level meters (``time_weighted_sum``, ``running_total``) recomputed from the raw events, for
the usage and rated checks (CONTRACT.md v1.2 section 3).

A level set is the customer's events of a meter (``meter``: the fct_meter_usage row), those an
item's filter matches (``item``: the item's usage lines) or those no item matches
(``unbilled``: the fct_unbilled_usage row). Per set and period [s, e), ``sql/level_sets.sql``
gives the level carried in (the sum of the values before s, from the checks' own month sums,
``load_month_sums``: never a rescan of every level event), the closing level (before the bound
E: e, or the run's instant in a month not yet over) and the integral of the level over [s, E)
summed step by step over the distinct instants of the period's events, an exact integer of
10^-12 units x microseconds. Here it is divided by the
meter's ``time_unit`` in exact integer arithmetic and rounded once to 12 places, half away from
zero. The dbt models derive the same figures in closed form; nothing is shared with them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

from orchestration.catalog.model import LEVEL_AGGREGATIONS, Meter
from orchestration.lib.periods import next_period
from orchestration.lib.sql import read_sql

#: microseconds of a ``day`` and an ``hour`` time unit; ``period`` is the month's own length
UNIT_MICROSECONDS = {"day": 86_400_000_000, "hour": 3_600_000_000}
SCALE = 10**12  # a level's units: 10^-12 (DECIMAL(38,12))
_MICROSECOND = 1_000_000

#: The period's events of each kind of set (customer_id, set_id, value, event_at), from the level
#: meters' events of the period (temp._recon_level_events) and the items each one matches
#: (temp._recon_level_event_items). ``$cutoff`` keeps the events landed by then (or all).
_LANDED = "($cutoff::timestamptz is null or e.landed_at <= $cutoff::timestamptz)"
SOURCES = {
    "meter": f"""select e.customer_id, e.meter_id as set_id, e.value, e.event_at
                 from temp._recon_level_events as e where {_LANDED}""",
    "item": f"""select e.customer_id, ei.product_item_id as set_id, e.value, e.event_at
                from temp._recon_level_events as e
                join temp._recon_level_event_items as ei using (event_id)
                where {_LANDED}""",
    "unbilled": f"""select e.customer_id, e.meter_id as set_id, e.value, e.event_at
                    from temp._recon_level_events as e
                    where {_LANDED} and not exists (
                        select 1 from temp._recon_level_event_items as ei
                        where ei.event_id = e.event_id)""",
}
#: The level carried into the period by each kind of set (customer_id, set_id, change_sum):
#: the sums of the months before it (temp._recon_level_months), landed by ``$cutoff``.
_BEFORE = f"e.month_start < cast($start::timestamptz as date) and {_LANDED}"
CARRIED = {
    "meter": f"""select e.customer_id, e.meter_id as set_id, e.change_sum
                 from temp._recon_level_months as e where {_BEFORE}""",
    "item": f"""select e.customer_id, e.product_item_id as set_id, e.change_sum
                from temp._recon_level_months as e
                where {_BEFORE} and e.product_item_id is not null""",
    "unbilled": f"""select e.customer_id, e.meter_id as set_id, e.change_sum
                    from temp._recon_level_months as e
                    where {_BEFORE} and e.product_item_id is null""",
}
KINDS = tuple(SOURCES)
#: (customer, meter) pairs into which an item's events or the unbilled events carry a non-zero
#: level: each makes a usage row of the meter (and an invoice for the customer)
CARRIED_SUBSETS = f"""
    select distinct customer_id, meter_id from (
        select e.customer_id, e.meter_id, e.product_item_id
        from temp._recon_level_months as e
        where {_BEFORE}
        group by e.customer_id, e.meter_id, e.product_item_id
        having sum(e.change_sum) <> 0
    ) as carried
"""
#: The level meters' events landed after ``$after`` (landing_seq), summed per customer, meter,
#: item (NULL: no item matches; temp._recon_items), month and landing instant.
MONTH_SUMS = """
    select e.customer_id, e.meter_id, i.product_item_id,
           cast(date_trunc('month', e.event_at) as date) as month_start, e.landed_at,
           cast(sum(e.value) as decimal(38, 12)) as change_sum, count(*) as event_count,
           max(e.landing_seq) as through_landing_seq
    from raw.usage_events as e
    left {matching}
    where e.landing_seq > $after
      and e.meter_id in (select meter_id from temp._recon_meters where is_level)
    group by e.customer_id, e.meter_id, i.product_item_id, month_start, e.landed_at
"""
_MONTH_COLUMNS = ("customer_id, meter_id, product_item_id, month_start, landed_at, change_sum, "
                  "event_count, through_landing_seq")


def level_fingerprint(meters: dict[str, Meter], items: list[tuple]) -> str:
    """What the month sums depend on: the level meters and the filters of their items
    (``items``: product_item_id, meter_id, filter_key, filter_value)."""
    lines = sorted([f"meter|{m}" for m in meters]
                   + [f"item|{i}|{m}|{k}|{v}" for i, m, k, v in items if m in meters])
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_month_sums(con: duckdb.DuckDBPyConnection, matching: str, fingerprint: str) -> str:
    """Fill temp._recon_level_months with the level meters' month sums of every landed event;
    return how (``kept``: billing.reconciliation_level_months, brought up to date with the
    events landed since the last check run; ``scanned``: every level event read, on a read-only
    connection). Each statement leaves the kept sums whole: a killed run loses nothing, and the
    next one adds from the highest landing_seq they hold."""
    con.execute(f"create or replace temp table _recon_level_months as "
                f"select {_MONTH_COLUMNS} from ({MONTH_SUMS.format(matching=matching)}) "
                f"as sums where false", {"after": -1})
    read_only = con.execute("select current_setting('access_mode')").fetchone()[0] == "read_only"
    if read_only:
        con.execute(f"insert into temp._recon_level_months {MONTH_SUMS.format(matching=matching)}",
                    {"after": -1})
        return "scanned"
    con.execute("delete from billing.reconciliation_level_months "
                "where level_fingerprint <> $fp", {"fp": fingerprint})
    after = con.execute("select coalesce(max(through_landing_seq), -1) "
                        "from billing.reconciliation_level_months").fetchone()[0]
    con.execute(f"insert into billing.reconciliation_level_months "
                f"select $fp, * from ({MONTH_SUMS.format(matching=matching)}) as added",
                {"fp": fingerprint, "after": after})
    con.execute(f"insert into temp._recon_level_months select {_MONTH_COLUMNS} "
                f"from billing.reconciliation_level_months")
    return "kept"


def instant(moment: date | datetime) -> str:
    """A query parameter for an instant: a DATE is its first instant in UTC."""
    if isinstance(moment, datetime):
        return moment.isoformat()
    return f"{moment.isoformat()} 00:00:00+00"


def period_microseconds(start: date) -> int:
    """The length of the period starting on ``start``, in microseconds."""
    return (next_period(start) - start).days * 86_400 * _MICROSECOND


def divisor(meter: Meter, start: date) -> int:
    """The microseconds of the meter's ``time_unit`` (``period``: the whole month, month to
    date or not)."""
    return UNIT_MICROSECONDS.get(meter.time_unit or "period") or period_microseconds(start)


def quotient_12(units_microseconds: int, divisor_microseconds: int) -> Decimal:
    """``units_microseconds`` (10^-12 units x microseconds) / ``divisor_microseconds`` as a
    decimal of 12 places, rounded once, half away from zero: integer division only."""
    if divisor_microseconds <= 0:
        raise ValueError(f"divisor {divisor_microseconds} must be > 0")
    whole, rest = divmod(abs(units_microseconds), divisor_microseconds)
    if 2 * rest >= divisor_microseconds:
        whole += 1
    return Decimal(-whole if units_microseconds < 0 else whole).scaleb(-12)


@dataclass(frozen=True)
class LevelSet:
    """One level set's figures for the period. ``set_id`` is the meter (``meter`` and
    ``unbilled`` sets) or the product item (``item`` sets); ``integral`` is in 10^-12 units x
    microseconds (the level x microseconds, times 10^12); ``steps`` counts the period's first
    instant and each later distinct instant of its events before the bound. ``live``: it has a
    usage row or lines in the period (an event of the period, or a non-zero level carried in:
    for a ``meter`` set, by one of its items' events or its unbilled events)."""

    kind: str
    customer_id: str
    set_id: str
    meter_id: str
    aggregation: str
    time_unit: str | None
    carried_level: Decimal
    closing_level: Decimal
    integral: int
    divisor: int
    event_count: int
    steps: int
    live: bool

    @property
    def quantity(self) -> Decimal:
        if self.aggregation == "running_total":
            return self.closing_level
        return quotient_12(self.integral, self.divisor)

    def describe(self) -> dict:
        """The figures behind the quantity, for a check's differences (JSON-able)."""
        figures: dict = {"carried_level": self.carried_level, "event_count": self.event_count}
        if self.aggregation == "running_total":
            figures["closing_level"] = self.closing_level
        else:
            figures.update({"steps": self.steps,
                            "integral_microseconds": Decimal(self.integral).scaleb(-12),
                            "divisor_microseconds": self.divisor,
                            "time_unit": self.time_unit})
        return figures


def level_meters(meters: list[Meter]) -> dict[str, Meter]:
    return {m.meter_id: m for m in meters
            if m.meter_id and m.aggregation in LEVEL_AGGREGATIONS}


def level_sets(con: duckdb.DuckDBPyConnection, kind: str, meters: dict[str, Meter],
               item_meters: dict[str, str], start: date, bound: datetime,
               cutoff: datetime | None = None) -> list[LevelSet]:
    """Every set of ``kind`` with events of the level ``meters`` before the period's end
    (``item_meters``: product item -> meter), live or not, in (customer, set) order. ``bound``
    is the instant the period accrues up to; ``cutoff`` keeps the events landed by then."""
    params = {"start": instant(start), "bound": instant(bound),
              "cutoff": None if cutoff is None else instant(cutoff)}
    rows = con.execute(read_sql(__file__, "level_sets.sql", source=SOURCES[kind],
                                carried=CARRIED[kind]), params).fetchall()
    carried_meters = set()
    if kind == "meter":
        carried_meters = {tuple(r) for r in con.execute(
            CARRIED_SUBSETS, {"start": params["start"], "cutoff": params["cutoff"]}).fetchall()}
    found = []
    for customer, set_id, carried, closing, event_count, integral, steps in rows:
        meter_id = item_meters[set_id] if kind == "item" else set_id
        meter = meters[meter_id]
        live = event_count > 0 or (carried != 0 if kind != "meter"
                                   else (customer, meter_id) in carried_meters)
        found.append(LevelSet(kind, customer, set_id, meter_id, meter.aggregation or "",
                              meter.time_unit, carried, closing, int(integral),
                              divisor(meter, start), event_count, steps, live))
    return found


def customers_carrying(con: duckdb.DuckDBPyConnection, start: date,
                       cutoff: datetime | None = None) -> set[str]:
    """Customers with a non-zero level carried into the period by an item's events or by the
    unbilled events of a level meter (landed by ``cutoff``): usage, so an invoice."""
    rows = con.execute(CARRIED_SUBSETS, {"start": instant(start),
                                         "cutoff": None if cutoff is None else instant(cutoff)})
    return {customer for customer, _meter in rows.fetchall()}
