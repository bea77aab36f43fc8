"""The run context every check shares: the connection, the typed catalog, the period, the
recomputed period events (temp tables), the level meters' sets and the expected invoice
recipients."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, date, datetime

import duckdb

from orchestration.billing import pricer as pricer_lib
from orchestration.billing.reconciliation import levels as levels_lib
from orchestration.catalog.model import Parsed
from orchestration.lib import clock
from orchestration.lib.periods import next_period, period_end_instant
from orchestration.lib.sql import read_sql

TEMP_TABLES = ("_recon_meters", "_recon_items", "_recon_currencies", "_recon_period_events",
               "_recon_event_items", "_recon_level_events", "_recon_level_event_items",
               "_recon_level_months", "_recon_level_usage")


# The item(s) an event `e` matches: same meter, and key=value exactly (no key, no match).
MATCHING_ITEMS = """join temp._recon_items as i
              on i.meter_id = e.meter_id
             and (i.filter_key is null
                  or json_extract_string(e.dimensions, i.filter_pointer) = i.filter_value)"""


def _pointer(key: str) -> str:
    """RFC 6901 JSON pointer of one object key (``a/b`` -> ``/a~1b``), any character allowed."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def aggregate_sql(source: str, keys: str) -> str:
    """The five aggregations over ``source`` (rows with value, event_at, event_id,
    aggregation, unique_value), one row per ``keys`` and aggregation."""
    return read_sql(__file__, "aggregate.sql", source=source, keys=keys)


class Run:
    """Everything the checks share: the connection, the typed catalog, the period, the
    recomputed period events (temp tables), the level meters' sets and the expected invoice
    recipients.

    ``run_instant`` is the run's one instant (``clock.run_instant``; now when not given): a
    month not yet over accrues its level meters up to it. ``bound`` is that instant within the
    period, or the period's end once it is over."""

    def __init__(self, con: duckdb.DuckDBPyConnection, parsed: Parsed,
                 currencies: Mapping[str, int], period_start: date,
                 run_instant: datetime | None = None):
        self.con = con
        self.parsed = parsed
        self.currencies = dict(currencies)
        self.start = period_start
        self.end = next_period(period_start)
        self.run_instant = clock.now() if run_instant is None else run_instant
        start_instant = datetime(period_start.year, period_start.month, 1, tzinfo=UTC)
        self.bound = max(start_instant, min(period_end_instant(period_start), self.run_instant))
        self.invoice_prefix = f"INV-{self.start:%Y%m}-"
        self.published_at = None
        self.level_meters = levels_lib.level_meters(parsed.meters)
        self.item_meters = {i.product_item_id: i.meter_id for i in parsed.product_items
                            if i.product_item_id and i.meter_id and i.filter_ok}
        self._item_usage: list[pricer_lib.ItemUsage] | None = None
        self._recipients: set[str] | None = None
        self._levels: dict[str, list[levels_lib.LevelSet]] = {}
        self._level_table: set[str] = set()
        self.month_sums = ""  # how the level month sums were read (levels.load_month_sums)

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        con = self.con
        con.execute("set TimeZone = 'UTC'")
        row = con.execute("select max(published_at) from billing.published_periods "
                          "where billing_period_start = $period", {"period": self.start}
                          ).fetchone()
        self.published_at = row[0] if row else None
        con.execute("create or replace temp table _recon_meters (meter_id varchar, "
                    "aggregation varchar, unique_pointer varchar, is_level boolean)")
        con.execute("create or replace temp table _recon_items (product_item_id varchar, "
                    "meter_id varchar, filter_key varchar, filter_pointer varchar, "
                    "filter_value varchar)")
        con.execute("create or replace temp table _recon_currencies (currency varchar, "
                    "minor_unit integer, scale_factor bigint)")
        meters = [(m.meter_id, m.aggregation,
                   _pointer(m.unique_dimension) if m.unique_dimension else None,
                   m.meter_id in self.level_meters)
                  for m in self.parsed.meters if m.meter_id]
        items = [(i.product_item_id, i.meter_id, i.filter_key,
                  _pointer(i.filter_key) if i.filter_key is not None else None, i.filter_value)
                 for i in self.parsed.product_items
                 if i.product_item_id and i.meter_id and i.filter_ok]
        currencies = [(code, minor, 10**minor) for code, minor in self.currencies.items()]
        for table, rows in (("_recon_meters", meters), ("_recon_items", items),
                            ("_recon_currencies", currencies)):
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                con.executemany(f"insert into temp.{table} values ({marks})", rows)
        # the period's events (UTC month of event_at), each with its meter's aggregation; their
        # dimensions stay in raw.usage_events (read once more below, only for item filters)
        period = {"start": f"{self.start.isoformat()} 00:00:00+00",
                  "end": f"{self.end.isoformat()} 00:00:00+00"}
        con.execute("""
            create or replace temp table _recon_period_events as
            select e.event_id, e.customer_id, e.meter_id, e.value, e.event_at, e.landed_at,
                   m.aggregation, coalesce(m.is_level, false) as is_level,
                   case when m.aggregation = 'unique_count'
                        then json_extract_string(e.dimensions, m.unique_pointer) end
                       as unique_value
            from raw.usage_events as e
            left join temp._recon_meters as m on m.meter_id = e.meter_id
            where e.event_at >= $start::timestamptz and e.event_at < $end::timestamptz
        """, period)
        # which item(s) each event matches: same meter, and key=value exactly (no key, no match)
        con.execute(f"""
            create or replace temp table _recon_event_items as
            select e.event_id, e.meter_id, i.product_item_id
            from raw.usage_events as e
            {MATCHING_ITEMS}
            where e.event_at >= $start::timestamptz and e.event_at < $end::timestamptz
        """, period)
        # level meters: the period's events and the item(s) each one matches; the level they
        # carry in comes from the checks' own month sums (levels.load_month_sums)
        con.execute("""
            create or replace temp table _recon_level_events as
            select event_id, customer_id, meter_id, value, event_at, landed_at
            from temp._recon_period_events where is_level
        """)
        con.execute("""
            create or replace temp table _recon_level_event_items as
            select ei.event_id, ei.product_item_id
            from temp._recon_event_items as ei
            where ei.meter_id in (select meter_id from temp._recon_meters where is_level)
        """)
        fingerprint = levels_lib.level_fingerprint(
            self.level_meters, [(i[0], i[1], i[2], i[4]) for i in items])
        self.month_sums = levels_lib.load_month_sums(con, MATCHING_ITEMS, fingerprint)

    def teardown(self) -> None:
        for table in TEMP_TABLES:
            with contextlib.suppress(duckdb.Error):
                self.con.execute(f"drop table if exists temp.{table}")

    # ----------------------------------------------------------------- shared figures
    def levels(self, kind: str) -> list[levels_lib.LevelSet]:
        """The level meters' sets of ``kind`` (``levels.KINDS``) with events before the period's
        end, live or not; ``item`` sets count the events landed by ``published_at`` for a
        published period (as its lines did), the others every event landed (as the marts)."""
        if kind not in self._levels:
            self._levels[kind] = levels_lib.level_sets(
                self.con, kind, self.level_meters, self.item_meters, self.start, self.bound,
                self.published_at if kind == "item" else None)
        return self._levels[kind]

    def level_usage_sql(self, kind: str) -> str:
        """A query of the live ``meter`` or ``unbilled`` sets shaped like ``aggregate_sql`` rows
        keyed by (customer_id, meter_id), plus their carried level: they are usage rows of the
        period even without an event of their own (event_count 0)."""
        if kind not in ("meter", "unbilled"):
            raise ValueError(f"no usage rows of {kind!r} level sets")
        if not self._level_table:
            self.con.execute("create or replace temp table _recon_level_usage (kind varchar, "
                             "customer_id varchar, meter_id varchar, aggregation varchar, "
                             "event_count bigint, quantity decimal(38, 12), "
                             "carried_level decimal(38, 12))")
        if kind not in self._level_table:
            rows = [(s.kind, s.customer_id, s.set_id, s.aggregation, s.event_count,
                     s.quantity, s.carried_level) for s in self.levels(kind) if s.live]
            if rows:
                self.con.executemany("insert into temp._recon_level_usage values "
                                     "(?, ?, ?, ?, ?, ?, ?)", rows)
            self._level_table.add(kind)
        return ("select customer_id, meter_id, aggregation, event_count, quantity, "
                f"carried_level from temp._recon_level_usage where kind = '{kind}'")

    def item_usage(self) -> list[pricer_lib.ItemUsage]:
        """Per (customer, item): the raw aggregate of the period's events the item matches
        (landed by ``published_at`` for a published period); for an item of a level meter, its
        level's aggregate when the item is live (an event of the period, or a non-zero level
        carried in)."""
        if self._item_usage is None:
            rows = self.con.execute(aggregate_sql("""
                select e.customer_id, ei.product_item_id, e.value, e.event_at, e.event_id,
                       e.aggregation, e.unique_value
                from temp._recon_period_events as e
                join temp._recon_event_items as ei using (event_id)
                where not e.is_level
                  and ($cutoff::timestamptz is null or e.landed_at <= $cutoff::timestamptz)
            """, "customer_id, product_item_id") + " order by all",
                {"cutoff": self.published_at}).fetchall()
            usage = [pricer_lib.ItemUsage(c, i, q, n) for c, i, _agg, n, q in rows]
            usage += [pricer_lib.ItemUsage(s.customer_id, s.set_id, s.quantity, s.event_count,
                                           s.carried_level)
                      for s in self.levels("item") if s.live]
            self._item_usage = sorted(usage, key=lambda u: (u.customer_id, u.product_item_id))
        return self._item_usage

    def recipients(self) -> set[str]:
        """Customers that must get an invoice: active range overlapping the period (always,
        without one), or any usage in it: an event of the period, or a non-zero level carried
        in by an item's events or a level meter's unbilled events (landed by
        ``published_at`` for a published period)."""
        if self._recipients is None:
            active = {c.customer_id for c in self.parsed.customers if c.customer_id
                      and (c.active_from is None or c.active_from < self.end)
                      and (c.active_to is None or c.active_to > self.start)}
            with_usage = {r[0] for r in self.con.execute("""
                select distinct customer_id from temp._recon_period_events
                where $cutoff::timestamptz is null or landed_at <= $cutoff::timestamptz
            """, {"cutoff": self.published_at}).fetchall()}
            carrying = levels_lib.customers_carrying(self.con, self.start, self.published_at)
            self._recipients = active | with_usage | carrying
        return self._recipients

    def minor_unit(self, currency: str | None) -> int | None:
        return self.currencies.get(currency or "")
