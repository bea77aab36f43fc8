"""The overflow checks of the price book against the landed events.

CONTRACT.md section 4: arithmetic that would overflow stops billing naming the customer and
item (or meter), never an engine error naming nobody. DECIMAL(38,12) holds |x| < 10^26, i.e.
10^38 units of 10^-12. Two places in the build can overflow with valid events and catalog:
1. The usage aggregates (int_meter_usage_aggregated, int_item_usage_aggregated,
   int_unbilled_usage_aggregated) sum a `sum` meter's values per (customer, meter or item,
   month) for EVERY month, so an overflowing month stops the bill of every month. DuckDB
   raises when the total is 10^26 or more ("Overflow in SUM of DECIMAL") and also when a
   running total does, in its 128-bit accumulator of 10^-12 units, at (2^127 - 1) x 10^-12 =
   1.7e26 ("Overflow in HUGEINT addition"), in an order it chooses: so the positive values
   (and the negative ones) of a (customer, meter, month) must add up to less than that.
2. macro ceil_divide_exact (package pricing) checks its estimate n exactly with
   (n - 1) * package_size and n * package_size, which overflow DECIMAL(38,12) when
   quantity + package_size is near 10^26. (exact_line_amount, the quantity x unit_price
   product, never overflows: its guards name the line first.)
3. Level meters (time_weighted_sum, running_total; int_level_usage_periods) carry a level from
   period to period, so every month from a set's first event to the current month counts: the
   level (a running sum of the values, like a `sum` meter's total) and, for time_weighted_sum,
   the integral (level x duration in microseconds, up to 2.68 x 10^12 in a month, summed) must
   stay below 10^26, and their accumulated parts below 1.7 x 10^26, for each item's events,
   the events no item matches and the meter's own level (all its events).
The first two checks are exact: a DOUBLE estimate picks the candidates (same-sign sums, so its
relative error stays below n x 2^-53, far below the 10^-6 margin for any realistic number of
events), then integer and fractional parts summed apart (no overflow) decide; the package check
evaluates the macro's own expressions under try(). The level check is a safe estimate: the
candidates are the (customer, level meter) pairs whose absolute values add up to the limit
(divided by a 31-day month for time_weighted_sum), below which no figure can reach it; their
figures are then bounded per set and month in DOUBLE (``sql/overflow_levels.sql``), so a
problem is named only where a figure comes within a millionth of the limit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

import duckdb

from orchestration.catalog.model import Parsed, iso, plain
from orchestration.catalog.problems import Problem
from orchestration.lib import clock
from orchestration.lib.periods import next_period
from orchestration.lib.readers import format_quantity, table_exists
from orchestration.lib.sql import read_sql

_UNITS = 10 ** 12  # DECIMAL(38,12)'s units per 1
_DECIMAL_LIMIT_UNITS = 10 ** 38  # |total| must stay below 10^26
_HUGEINT_MAX = 2 ** 127 - 1  # DuckDB's DECIMAL(38) sum accumulator
_ESTIMATE_THRESHOLD = 1e26 * (1 - 1e-6)

# Candidates: (customer, `sum` meter) whose positive or negative values, over all months, add up
# to about 10^26 or more (a month's sums are at most these).
SUM_CANDIDATES_SQL = """
select e.customer_id, e.meter_id
from raw.usage_events as e
join _meterline_check_meter_aggs as m on m.meter_id = e.meter_id and m.aggregation = 'sum'
group by all
having sum(case when e.value > 0 then cast(e.value as double) else 0 end) >= ?
    or sum(case when e.value < 0 then cast(e.value as double) else 0 end) <= ?
"""

RESTATED_SQL = """restated as (
    select distinct e.customer_id, p.billing_period_start as usage_period_start
    from raw.usage_events as e
    join billing.published_periods as p
      on cast(date_trunc('month', e.event_at at time zone 'UTC') as date) = p.billing_period_start
    where p.billing_period_start < ?::date and e.landed_at > p.published_at
),"""
# Candidates: (customer, level meter) whose absolute values (x a 31-day month in microseconds
# for time_weighted_sum) add up to about 10^26 or more; below that, no level, integral or part
# of one can reach 10^26.
LEVEL_CANDIDATES_SQL = """
select e.customer_id, e.meter_id
from raw.usage_events as e
join _meterline_check_meter_aggs as m
  on m.meter_id = e.meter_id and m.aggregation in ('time_weighted_sum', 'running_total')
group by all
having sum(abs(cast(e.value as double)))
       * case when any_value(m.aggregation) = 'time_weighted_sum' then ? else 1 end >= ?
"""
_LONGEST_MONTH_US = 31 * 86_400_000_000
_LIMIT = 1e26 * (1 - 1e-6)  # DECIMAL(38,12) holds less than 10^26
_ACCUMULATOR_LIMIT = _HUGEINT_MAX / _UNITS * (1 - 1e-6)  # 1.7 x 10^26

OR_RESTATED_SQL = """or (e.event_at < ?::timestamptz and exists (
              select 1 from restated as r
              where r.customer_id = e.customer_id and r.usage_period_start
                  = cast(date_trunc('month', e.event_at at time zone 'UTC') as date)))"""


def _plain_units(units: int) -> str:
    """10^-12 units as a plain decimal (``180000000000000000000000000``, ``-0.5``)."""
    return format_quantity(Decimal(units) / _UNITS)


def overflow_problems(con: duckdb.DuckDBPyConnection, parsed: Parsed,
                      period_start: date) -> list[Problem]:
    """The overflow problems of billing ``period_start`` (see the module docstring); called by
    period_problems while its temp tables (items, customers) exist."""
    meters = [(m.meter_id, m.aggregation, m.unique_dimension) for m in parsed.meters
              if m.meter_id and m.aggregation]
    rates = [(r.rate_id, r.row, r.product_item_id, r.customer_id, r.currency, r.pricing_model,
              plain(r.package_size), plain(r.free_units if r.free_units is not None
                                           else Decimal(0)),
              iso(r.effective_from), iso(r.effective_to))
             for r in parsed.rates
             if r.rate_id and r.product_item_id and r.currency and r.pricing_model
             and r.dates_ok and r.effective_from is not None]
    tables = ("_meterline_check_meter_aggs", "_meterline_check_price_rates",
              "_meterline_check_overflow_groups", "_meterline_check_level_groups")
    con.execute("create or replace temp table _meterline_check_meter_aggs (meter_id varchar,"
                " aggregation varchar, unique_dimension varchar)")
    con.execute("create or replace temp table _meterline_check_price_rates (rate_id varchar,"
                " rate_row integer, product_item_id varchar, customer_id varchar,"
                " currency varchar, pricing_model varchar, package_size decimal(38, 12),"
                " free_units decimal(38, 12), effective_from date, effective_to date)")
    con.execute("create or replace temp table _meterline_check_overflow_groups ("
                "customer_id varchar, meter_id varchar)")
    con.execute("create or replace temp table _meterline_check_level_groups ("
                "customer_id varchar, meter_id varchar)")
    try:
        if meters:
            con.executemany("insert into temp._meterline_check_meter_aggs values (?, ?, ?)",
                            meters)
        if rates:
            con.executemany("insert into temp._meterline_check_price_rates values (?, ?, ?, ?, ?,"
                            " ?, ?::decimal(38, 12), ?::decimal(38, 12), ?::date, ?::date)",
                            rates)
        candidates = con.execute(SUM_CANDIDATES_SQL, [_ESTIMATE_THRESHOLD,
                                                      -_ESTIMATE_THRESHOLD]).fetchall()
        sums = []
        if candidates:
            con.executemany("insert into temp._meterline_check_overflow_groups values (?, ?)",
                            candidates)
            # Exact sums for the candidates, per month, item (NULL: unbilled) and sign, in
            # integer parts and 10^-12 units of the fractional parts: neither can overflow.
            sums = con.execute(read_sql(__file__, "overflow_sum_exact.sql")).fetchall()
        levels = []
        level_candidates = con.execute(LEVEL_CANDIDATES_SQL, [_LONGEST_MONTH_US,
                                                              _LIMIT]).fetchall()
        if level_candidates:
            con.executemany("insert into temp._meterline_check_level_groups values (?, ?)",
                            level_candidates)
            current_month = clock.today().replace(day=1)
            levels = con.execute(read_sql(__file__, "overflow_levels.sql"),
                                 [current_month]).fetchall()
        restated = table_exists(con, "billing", "published_periods") and con.execute(
            "select count(*) from billing.published_periods where billing_period_start < ?",
            [period_start]).fetchone()[0] > 0
        start, end = (f"{day.isoformat()} 00:00:00+00"
                      for day in (period_start, next_period(period_start)))
        # The package count check of int_usage_rated (macro duckdb__ceil_divide_exact), with
        # the same types and expressions, for each (customer, package-priced item, usage period)
        # the bill prices: the billed period, and the published periods it may restate
        # (restated: events landed after their period was published re-price every item of that
        # customer and period).
        sql = read_sql(__file__, "overflow_package_counts.sql",
                       restated=RESTATED_SQL if restated else "",
                       or_restated=OR_RESTATED_SQL if restated else "")
        params = ([period_start.isoformat()] if restated else []) + [start, end] \
            + ([start] if restated else [])
        packages = con.execute(sql, params).fetchall()
    finally:
        for table in tables:
            con.execute(f"drop table if exists temp.{table}")
    return (_sum_overflow_problems(sums) + _level_overflow_problems(levels)
            + _package_overflow_problems(packages))


def _sum_overflow_problems(rows: list[tuple]) -> list[Problem]:
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for customer_id, meter_id, month, item_id, *figures in rows:
        groups[(customer_id, meter_id, month)].append((item_id, *figures))
    problems = []
    for (customer_id, meter_id, month), parts in groups.items():
        period = f"{month:%Y-%m}"
        positive = negative = events = 0
        largest_value, largest_event = Decimal(-1), None
        sets = []  # (label, total units) of each set the build sums
        for item_id, count, pos_int, pos_frac, neg_int, neg_frac, big_event, big_value in parts:
            pos = int(pos_int) * _UNITS + int(pos_frac)
            neg = int(neg_int) * _UNITS + int(neg_frac)
            positive, negative, events = positive + pos, negative + neg, events + count
            if big_value is not None and Decimal(big_value) > largest_value:
                largest_value, largest_event = Decimal(big_value), big_event
            sets.append((f"item {item_id}" if item_id else "its unbilled usage", pos + neg))
        total = positive + negative
        sets = [("its meter usage", total)] + (sets if len(sets) > 1 or parts[0][0] else [])
        over = [(label, units) for label, units in sets if abs(units) >= _DECIMAL_LIMIT_UNITS]
        summing = positive > _HUGEINT_MAX or negative < -_HUGEINT_MAX - 1
        if not over and not summing:
            continue
        head = (f"customer {customer_id}, meter {meter_id}, period {period}: its "
                f"{events} event{'s' if events != 1 else ''} (the largest {largest_event}, "
                f"{format_quantity(largest_value)})")
        if over:
            totals = "; ".join(f"{label} {_plain_units(units)}" for label, units in over)
            what = (f" add up to more than DECIMAL(38,12) holds (less than 10^26 in size): "
                    f"{totals}")
        else:
            what = f" add up to {_plain_units(total)}"
        if summing:
            what += (f"; its positive values add up to {_plain_units(positive)} and its negative "
                     f"ones to {_plain_units(negative)}, and the warehouse cannot add up a "
                     f"running total of 1.7 x 10^26 or more in DECIMAL(38,12) even when the "
                     f"total fits: no month can be billed until these values are corrected at "
                     f"their source (landed events are never removed or changed by Meterline)")
        else:
            what += (f"; no month can be billed (every month's usage marts sum every month): "
                     f"landed events are never removed, so land a correcting event (a new "
                     f"event_id, a value of the opposite sign, a timestamp in {period}) that "
                     f"brings each total below 10^26")
        problems.append(Problem("raw.usage_events", None, "value", head + what,
                                f"{customer_id}, {meter_id}, {period}"))
    return problems


def _level_overflow_problems(rows: list[tuple]) -> list[Problem]:
    """One problem per (customer, level set) whose bounds reach a limit in some month: each
    item's, the unbilled events', or, when none of those does, the meter's own level."""
    flagged: dict[tuple, list[tuple]] = defaultdict(list)
    largest: dict[tuple, tuple[Decimal, str]] = {}  # per set: its largest change (any month)
    for (customer_id, meter_id, level_set, aggregation, month, _count, level_hi, level_acc_hi,
         integral_hi, term_hi, integral_acc_hi, sets_level_hi, sets_integral_hi,
         largest_event, largest_value) in rows:
        key = (customer_id, meter_id, level_set)
        if largest_event is not None and (key not in largest
                                          or Decimal(largest_value) > largest[key][0]):
            largest[key] = (Decimal(largest_value), largest_event)
        if level_set is None:  # the meter's level: the build adds up its sets' figures
            level_over = level_hi >= _LIMIT or sets_level_hi >= _ACCUMULATOR_LIMIT
            integral_over = integral_hi >= _LIMIT or sets_integral_hi >= _ACCUMULATOR_LIMIT
        else:
            level_over = level_hi >= _LIMIT or level_acc_hi >= _ACCUMULATOR_LIMIT
            integral_over = (integral_hi >= _LIMIT or term_hi >= _LIMIT
                             or integral_acc_hi >= _ACCUMULATOR_LIMIT)
        integral_over = integral_over and aggregation == "time_weighted_sum"
        if level_over or integral_over:
            flagged[key].append((month, aggregation, level_over, integral_over, level_hi,
                                 max(integral_hi, term_hi)))
    sets_flagged = {(c, m) for c, m, level_set in flagged if level_set is not None}
    problems = []
    for (customer_id, meter_id, level_set), months in flagged.items():
        if level_set is None and (customer_id, meter_id) in sets_flagged:
            continue  # the meter's level overflows through a set already named
        aggregation = months[0][1]
        if level_set is None:
            what = f"meter {meter_id} ({aggregation}, its level over all its events)"
        elif level_set == "":
            what = f"meter {meter_id}'s unbilled usage ({aggregation}, the events no item matches)"
        else:
            what = f"item {level_set} (meter {meter_id}, {aggregation})"
        first = min(m[0] for m in months)
        later = len(months) - 1
        when = f"period {first:%Y-%m}" + (f" and {later} later period{'s' if later != 1 else ''}"
                                           if later else "")
        figures = []
        if any(m[2] for m in months):
            figures.append(f"its level (the running sum of its events' values) reaches about "
                           f"{max(m[4] for m in months):.3g}")
        if any(m[3] for m in months):
            figures.append(f"its level x duration (in microseconds, up to 2.68 x 10^12 in a "
                           f"month) about {max(m[5] for m in months):.3g}")
        size, event_id = largest[(customer_id, meter_id, level_set)]
        biggest = f" (the largest change {event_id}, {format_quantity(size)} in size)"
        problems.append(Problem(
            "raw.usage_events", None, "value",
            f"customer {customer_id}, {what}, {when}: {' and '.join(figures)}{biggest}, more "
            f"than DECIMAL(38,12) holds (less than 10^26 in size); a level carries into every "
            f"later month, so no month can be billed until these values are corrected at their "
            f"source (landed events are never removed or changed by Meterline): keep a level "
            f"below 10^26 and, for time_weighted_sum, below about 3.7 x 10^13 held for a whole "
            f"month (e.g. measure it in a larger unit)",
            f"{customer_id}, {level_set or meter_id}"))
    return problems


def _package_overflow_problems(rows: list[tuple]) -> list[Problem]:
    problems = []
    for customer_id, item_id, month, rate_id, rate_row, quantity, size, chargeable in rows:
        bound = (Decimal(10) ** 26 - Decimal(chargeable)) / 2
        problems.append(Problem(
            "rates.csv", rate_row, "package_size",
            f"customer {customer_id}, item {item_id}, period {month:%Y-%m}: rate {rate_id} "
            f"prices {format_quantity(quantity)} units in packages of "
            f"{format_quantity(size)}, and the exact package count "
            f"(packages x package_size compared with the units) would overflow DECIMAL(38,12) "
            f"(10^26 or more); give the rate a package_size below "
            f"{format(bound.quantize(Decimal(1)), 'f')} (a smaller package, priced per package "
            f"accordingly, from a new rate row: close this one with effective_to)",
            f"{rate_id}, {customer_id}"))
    return problems
