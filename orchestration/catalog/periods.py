"""The checks of the price book against the warehouse, before ingest and billing run.

``lookup_problems`` and ``ingest_lookup`` are what landing needs from the catalog;
``period_problems`` checks the period being billed against the landed events.

Decisions where CONTRACT.md is silent:
- For a period (``period_problems``), a customer that is no longer in customers.csv but has
  landed usage of an item in the period is a problem too (its usage could not be invoiced).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

import duckdb

from orchestration.catalog.model import parse
from orchestration.catalog.overflow import overflow_problems
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import Catalog
from orchestration.catalog.rules import validate
from orchestration.lib import snapshot
from orchestration.lib.periods import next_period
from orchestration.lib.readers import WarehouseBusy, format_quantity, table_exists
from orchestration.lib.sql import read_sql

_UNITS = 10 ** 12  # DECIMAL(38,12)'s units per 1


def ingest_lookup(catalog: Catalog) -> tuple[set[str], dict[str, str]]:
    """What landing needs: the customer ids and each meter's aggregation."""
    customers = {row["customer_id"] for row in catalog.customers if row["customer_id"]}
    meters: dict[str, str] = {}
    for row in catalog.meters:
        meter_id, aggregation = row["meter_id"], row["aggregation"]
        if meter_id and aggregation and meter_id not in meters:
            meters[meter_id] = aggregation
    return customers, meters


def lookup_problems(catalog: Catalog, currencies: Mapping[str, int] | None = None
                    ) -> list[Problem]:
    """The problems that make ingest's lookup unreliable: a missing or unreadable customers.csv
    or meters.csv, or a bad, missing or duplicate id or aggregation in them. Only these stop
    ``ingest`` (events keep landing while, say, a currency typo waits for a fix; billing
    still stops on every problem)."""
    lookup_fields = {None, "", "customer_id", "meter_id", "aggregation"}
    return [p for p in validate(catalog, currencies)
            if p.file in ("customers.csv", "meters.csv") and p.field in lookup_fields]


def period_problems(con: duckdb.DuckDBPyConnection, catalog: Catalog, period_start: date,
                    currencies: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems of the period being billed: a customer with landed usage of an item in
    [period_start, next month) (UTC) and no rate in effect on period_start in its currency
    (neither its own nor a list price); the item is live in the period (CONTRACT.md section 4)
    when one of the period's events matches it or, for a level meter, when the level it carries
    into the period (the sum of the values of the customer's events it matches before
    period_start) is not 0, even with no event in the period. Also landed events (of any month)
    whose customer is no longer in customers.csv or whose meter is no longer in meters.csv; and
    arithmetic that would overflow DECIMAL(38,12) in the build (``overflow_problems``: a `sum`
    meter's total in any month, a level meter's level or level x duration in any month, the
    package count of the periods this bill prices), named by customer and meter or item.

    Set-based over raw.usage_events; the catalog goes in as temp tables, so ``catalog.*``
    need not be loaded (and a read-only connection works). On the readers' snapshot, which
    holds no events, it raises WarehouseBusy."""
    if period_start.day != 1:
        raise ValueError(f"period_start {period_start} is not the first day of a month")
    if snapshot.is_snapshot(con):
        raise WarehouseBusy(
            "the warehouse is busy (a run is writing), and checking a period needs its landed "
            "events, which the readers' snapshot does not hold: try again when the run ends "
            "(or leave out --period)")
    if not table_exists(con, "raw", "usage_events"):
        return []
    parsed = parse(catalog, currencies)
    level_meters = {m.meter_id for m in parsed.meters if m.meter_id and m.is_level}
    items = [(i.product_item_id, i.meter_id, i.filter_key, i.filter_value,
              i.meter_id in level_meters)
             for i in parsed.product_items
             if i.product_item_id and i.meter_id and i.filter_ok]
    customers = [(c.customer_id, c.currency) for c in parsed.customers if c.customer_id]
    meters = [(m.meter_id,) for m in parsed.meters if m.meter_id]
    rates = [(r.product_item_id, r.customer_id, r.currency) for r in parsed.rates
             if r.product_item_id and r.currency and r.in_effect(period_start)]
    con.execute("create or replace temp table _meterline_check_items (product_item_id varchar,"
                " meter_id varchar, filter_key varchar, filter_value varchar, is_level boolean)")
    con.execute("create or replace temp table _meterline_check_customers ("
                "customer_id varchar, currency varchar)")
    con.execute("create or replace temp table _meterline_check_rates (product_item_id varchar,"
                " customer_id varchar, currency varchar)")
    con.execute("create or replace temp table _meterline_check_meters (meter_id varchar)")
    try:
        for table, rows, width in (("_meterline_check_items", items, 5),
                                   ("_meterline_check_customers", customers, 2),
                                   ("_meterline_check_rates", rates, 3),
                                   ("_meterline_check_meters", meters, 1)):
            if rows:
                placeholders = ", ".join("?" * width)
                con.executemany(f"insert into temp.{table} values ({placeholders})", rows)
        start = f"{period_start.isoformat()} 00:00:00+00"
        end = f"{next_period(period_start).isoformat()} 00:00:00+00"
        found = con.execute(read_sql(__file__, "period_unpriced_usage.sql"),
                            [start, end, start]).fetchall()
        # Landed events of any month whose customer or meter is no longer in the catalog: every
        # month's meter usage keeps them, so billing any month needs the rows back.
        removed = con.execute(read_sql(__file__, "removed_ids.sql")).fetchall()
        overflows = overflow_problems(con, parsed, period_start)
    finally:
        for table in ("_meterline_check_items", "_meterline_check_customers",
                      "_meterline_check_rates", "_meterline_check_meters"):
            con.execute(f"drop table if exists temp.{table}")
    period = f"{period_start:%Y-%m}"
    problems = []
    for file, field_name, key, count, first_event, first_month, last_month in removed:
        months = first_month if first_month == last_month else f"{first_month} to {last_month}"
        kind = "customer" if file == "customers.csv" else "meter"
        problems.append(Problem(
            file, None, field_name,
            f"{kind} {key} has {count} landed event{'s' if count != 1 else ''} ({months}, e.g. "
            f"{first_event}) but is not in {file}; landed events are never removed, so put the "
            f"row back" + (" (to stop billing the customer, give it an active_to)"
                           if kind == "customer" else ""), key))
    problems += overflows
    for (customer_id, currency, item_id, count, first_event, integer_part, fraction_units,
         earlier, first_earlier) in found:
        if count:
            events = f"{count} event{'s' if count != 1 else ''}, e.g. {first_event}"
        else:  # a level meter's item, live through the level it carries into the period
            level = format_quantity(Decimal(integer_part) + Decimal(fraction_units) / _UNITS)
            events = (f"no {period} event, but a level of {level} carried in from "
                      f"{earlier} earlier event{'s' if earlier != 1 else ''}, e.g. "
                      f"{first_earlier}")
        problems.append(Problem(
            "rates.csv", None, "product_item_id",
            f"{customer_id} ({currency or 'no valid currency'}) has {period} usage of "
            f"item {item_id} ({events}) "
            f"and no rate in effect on {period_start} in {currency} (no list price and no "
            f"rate of {customer_id}); add one", f"{item_id}, {customer_id}"))
    return problems
