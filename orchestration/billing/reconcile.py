"""Independent reconciliation of one billing period, before anything is published.

``run_checks(con, catalog, period_start)`` re-derives the period from ``raw.*`` and the catalog
it is given (the CSVs as read, never the ``catalog.*`` tables the bill run loaded) and compares
the result with what the dbt path wrote to the marts. It shares no code with the SQL path:
aggregates are recomputed here in set-based SQL of its own (JSON pointers instead of the
models' ``$."key"`` paths, ordered aggregates instead of window ranks), and every line is priced
again by ``orchestration.billing.pricer`` in ``decimal.Decimal``.

Each check returns a ``CheckResult(name, passed, blocking, summary, figures)``; ``figures`` is
JSON-able (money and quantities as strings) and lists the first differences found. A check that
cannot run (a missing table, SQL error) fails, blocking: publishing must fail closed.

Checks (what each compares):
- ``landed_file_counts``: per ``raw.landed_files`` row, rows_read = landed + duplicate +
  quarantined, and each stored count = the file's rows in raw.usage_events /
  raw.duplicate_events (``is_relanded = false``) / raw.quarantined_events (once per file,
  resolved or not); per file, re-landed rows = resolved quarantine rows; no raw row of a file
  that raw.landed_files does not record.
- ``events_counted_once``: per (customer, meter) of the period, the raw event count =
  ``fct_meter_usage.event_count`` and the meter's aggregation recomputed from the raw events =
  ``fct_meter_usage.quantity``; one fct row per key, none without events.
- ``rated_quantity_matches_usage``: per (invoice, item), the usage lines' quantities add up to
  max(item aggregate, 0), the aggregate recomputed from the raw events the item's filter
  matches; every item with usage has lines; no event matches two items.
- ``line_amounts_match_decimal_pricer``: the Decimal pricer's usage and minimum_commitment lines
  vs ``fct_invoice_lines``: the same (customer, line type, item, tier) set, equal amounts to
  the minor unit, equal quantity, unit price and currency.
- ``invoice_totals_and_numbering``: per invoice, total = subtotal = sum of its lines,
  line_count = its lines, line numbers 1..n gap-free and in the contract's order; exactly one
  invoice per customer that must have one (active range overlaps the period, or usage in it),
  none for the others.
- ``unbilled_usage_reported`` (non-blocking): ``fct_unbilled_usage`` vs the events no item
  matches, recomputed; its figures are the period's unbilled counts and quantities.
- ``table_expectations``: great-expectations (pandas route) on invoices, lines and meter usage:
  keys unique and not null, value sets, integer minor units in a sane range. Only counts, keys
  and integers reach pandas: money is never summed as floats.

Scope: the marts are read for ``billing_period_start = period_start`` only. Events are those of
the period (the UTC month of ``event_at``). For a published period, lines and recipients are
compared with the events landed up to its ``published_at`` (later ones are late usage, billed by
adjustments elsewhere); meter and unbilled usage cover all events landed so far, as the marts do.
An invoice that only carries ``adjustment`` lines for earlier periods (late usage, contract
section 8) is not counted as an unexpected invoice.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from orchestration.billing import pricer as pricer_lib
from orchestration.lib import catalog as catalog_lib
from orchestration.lib.periods import next_period
from orchestration.lib.readers import format_quantity

CHECK_NAMES = (
    "landed_file_counts",
    "events_counted_once",
    "rated_quantity_matches_usage",
    "line_amounts_match_decimal_pricer",
    "invoice_totals_and_numbering",
    "unbilled_usage_reported",
    "table_expectations",
)
NON_BLOCKING = frozenset({"unbilled_usage_reported"})
MAX_LISTED = 20  # differences listed in figures (the total is always given)
LINE_TYPES = ("usage", "minimum_commitment", "adjustment")
STATUSES = ("draft", "published")
#: The sane range of one line or invoice amount, in minor units (10^13 USD is 10^15 cents).
MAX_MINOR_UNITS = 10**15


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    blocking: bool
    summary: str
    figures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        state = "passed" if self.passed else ("FAILED" if self.blocking else "warning")
        return f"{self.name}: {state}: {self.summary}"


def blocking_failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The failed checks that must stop publishing."""
    return [r for r in results if r.blocking and not r.passed]


# --------------------------------------------------------------------------- formatting
def _plain(value: Decimal | None) -> str | None:
    """A decimal as plain text without trailing zeros (``1506.500000000000`` -> ``1506.5``);
    None stays None and every zero is ``0``."""
    if value is None:
        return None
    return "0" if value == 0 else format_quantity(value)


def _money(value: Decimal | None, minor_unit: int | None) -> str | None:
    """Money as text at its currency's minor unit when exact there (``8.53``, ``26``), else in
    full (a wrong amount with sub-minor digits stays visible)."""
    if value is None:
        return None
    if minor_unit is not None:
        quantum = Decimal(1).scaleb(-minor_unit)
        try:
            exact = value.quantize(quantum, context=pricer_lib.EXACT)
        except Exception:  # noqa: BLE001 - Inexact: show it in full
            return _plain(value)
        if exact == value:
            return format(exact, "f")
    return _plain(value)


def _jsonable(value: Any) -> Any:
    """Figures must survive json.dumps: decimals as strings, numpy scalars as Python ones."""
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and value != value:  # NaN: a null that pandas made a float
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    return str(value)


def _pointer(key: str) -> str:
    """RFC 6901 JSON pointer of one object key (``a/b`` -> ``/a~1b``), any character allowed."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


# --------------------------------------------------------------------------- the run
TEMP_TABLES = ("_recon_meters", "_recon_items", "_recon_currencies", "_recon_period_events",
               "_recon_event_items")


class _Run:
    """Everything the checks share: the connection, the typed catalog, the period, the
    recomputed period events (temp tables) and the expected invoice recipients."""

    def __init__(self, con: duckdb.DuckDBPyConnection, parsed: catalog_lib.Parsed,
                 currencies: Mapping[str, int], period_start: date):
        self.con = con
        self.parsed = parsed
        self.currencies = dict(currencies)
        self.start = period_start
        self.end = next_period(period_start)
        self.params = {"start": f"{self.start.isoformat()} 00:00:00+00",
                       "end": f"{self.end.isoformat()} 00:00:00+00",
                       "period": self.start}
        self.invoice_prefix = f"INV-{self.start:%Y%m}-"
        self.published_at = None
        self.customer_currency = {c.customer_id: c.currency for c in parsed.customers
                                  if c.customer_id}
        self._item_usage: list[pricer_lib.ItemUsage] | None = None
        self._recipients: set[str] | None = None

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        con = self.con
        con.execute("set TimeZone = 'UTC'")
        row = con.execute("select max(published_at) from billing.published_periods "
                          "where billing_period_start = $period", {"period": self.start}
                          ).fetchone()
        self.published_at = row[0] if row else None
        self.params["cutoff"] = self.published_at
        con.execute("create or replace temp table _recon_meters (meter_id varchar, "
                    "aggregation varchar, unique_pointer varchar)")
        con.execute("create or replace temp table _recon_items (product_item_id varchar, "
                    "meter_id varchar, filter_key varchar, filter_pointer varchar, "
                    "filter_value varchar)")
        con.execute("create or replace temp table _recon_currencies (currency varchar, "
                    "minor_unit integer, scale_factor bigint)")
        meters = [(m.meter_id, m.aggregation,
                   _pointer(m.unique_dimension) if m.unique_dimension else None)
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
        # the period's events (UTC month of event_at), each with its meter's aggregation
        con.execute("""
            create or replace temp table _recon_period_events as
            select e.event_id, e.customer_id, e.meter_id, e.value, e.event_at, e.landed_at,
                   e.dimensions, m.aggregation,
                   case when m.aggregation = 'unique_count'
                        then json_extract_string(e.dimensions, m.unique_pointer) end
                       as unique_value
            from raw.usage_events as e
            left join temp._recon_meters as m on m.meter_id = e.meter_id
            where e.event_at >= $start::timestamptz and e.event_at < $end::timestamptz
        """, {"start": self.params["start"], "end": self.params["end"]})
        # which item(s) each event matches: same meter, and key=value exactly (no key, no match)
        con.execute("""
            create or replace temp table _recon_event_items as
            select e.event_id, i.product_item_id
            from temp._recon_period_events as e
            join temp._recon_items as i
              on i.meter_id = e.meter_id
             and (i.filter_key is null
                  or json_extract_string(e.dimensions, i.filter_pointer) = i.filter_value)
        """)

    def teardown(self) -> None:
        for table in TEMP_TABLES:
            try:
                self.con.execute(f"drop table if exists temp.{table}")
            except duckdb.Error:
                pass

    # ----------------------------------------------------------------- shared SQL
    @staticmethod
    def aggregate_sql(source: str, keys: str) -> str:
        """The five aggregations over ``source`` (rows with value, event_at, event_id,
        aggregation, unique_value), one row per ``keys`` and aggregation."""
        return f"""
            select {keys}, aggregation, count(*) as event_count,
                   case aggregation
                       when 'sum' then cast(sum(value) filter (where aggregation = 'sum')
                                            as decimal(38, 12))
                       when 'count' then cast(count(*) as decimal(38, 12))
                       when 'unique_count' then cast(count(distinct unique_value)
                                                     as decimal(38, 12))
                       when 'max' then cast(max(value) filter (where aggregation = 'max')
                                            as decimal(38, 12))
                       when 'latest' then cast(first(value order by event_at desc,
                                                     event_id desc)
                                               filter (where aggregation = 'latest')
                                               as decimal(38, 12))
                   end as quantity
            from ({source}) as source_rows
            group by {keys}, aggregation
        """

    def item_usage(self) -> list[pricer_lib.ItemUsage]:
        """Per (customer, item): the raw aggregate of the period's events the item matches
        (landed by ``published_at`` for a published period)."""
        if self._item_usage is None:
            rows = self.con.execute(self.aggregate_sql("""
                select e.customer_id, ei.product_item_id, e.value, e.event_at, e.event_id,
                       e.aggregation, e.unique_value
                from temp._recon_period_events as e
                join temp._recon_event_items as ei using (event_id)
                where $cutoff::timestamptz is null or e.landed_at <= $cutoff::timestamptz
            """, "customer_id, product_item_id") + " order by all",
                {"cutoff": self.published_at}).fetchall()
            self._item_usage = [pricer_lib.ItemUsage(c, i, q, n) for c, i, _agg, n, q in rows]
        return self._item_usage

    def recipients(self) -> set[str]:
        """Customers that must get an invoice: active range overlapping the period (always,
        without one), or any usage in it."""
        if self._recipients is None:
            active = {c.customer_id for c in self.parsed.customers if c.customer_id
                      and (c.active_from is None or c.active_from < self.end)
                      and (c.active_to is None or c.active_to > self.start)}
            with_usage = {r[0] for r in self.con.execute("""
                select distinct customer_id from temp._recon_period_events
                where $cutoff::timestamptz is null or landed_at <= $cutoff::timestamptz
            """, {"cutoff": self.published_at}).fetchall()}
            self._recipients = active | with_usage
        return self._recipients

    def minor_unit(self, currency: str | None) -> int | None:
        return self.currencies.get(currency or "")


def _result(name: str, differences: list[dict], summary_ok: str, summary_bad: str,
            figures: dict) -> CheckResult:
    figures = dict(figures)
    figures["difference_count"] = len(differences)
    figures["differences"] = differences[:MAX_LISTED]
    passed = not differences
    return CheckResult(name, passed, name not in NON_BLOCKING,
                       summary_ok if passed else summary_bad, _jsonable(figures))


# --------------------------------------------------------------------------- checks
def check_landed_file_counts(run: _Run) -> CheckResult:
    rows = run.con.execute("""
        with landed as (
            select file_sha256, count(*) as n from raw.usage_events
            where not is_relanded group by file_sha256
        ),
        duplicates as (
            select file_sha256, count(*) as n from raw.duplicate_events
            where not is_relanded group by file_sha256
        ),
        quarantined as (
            select file_sha256, count(*) as n,
                   count(*) filter (where resolved_at is not null) as resolved
            from raw.quarantined_events group by file_sha256
        ),
        relanded as (
            select file_sha256, count(*) as n from (
                select file_sha256 from raw.usage_events where is_relanded
                union all
                select file_sha256 from raw.duplicate_events where is_relanded
            ) group by file_sha256
        ),
        files as (
            select file_sha256 from raw.landed_files
            union select file_sha256 from landed
            union select file_sha256 from duplicates
            union select file_sha256 from quarantined
            union select file_sha256 from relanded
        )
        select files.file_sha256, f.source_file, f.file_sha256 is not null as is_recorded,
               f.rows_read, f.rows_landed, f.rows_duplicate, f.rows_quarantined,
               coalesce(landed.n, 0), coalesce(duplicates.n, 0), coalesce(quarantined.n, 0),
               coalesce(quarantined.resolved, 0), coalesce(relanded.n, 0)
        from files
        left join raw.landed_files as f on f.file_sha256 is not distinct from files.file_sha256
        left join landed on landed.file_sha256 is not distinct from files.file_sha256
        left join duplicates on duplicates.file_sha256 is not distinct from files.file_sha256
        left join quarantined on quarantined.file_sha256 is not distinct from files.file_sha256
        left join relanded on relanded.file_sha256 is not distinct from files.file_sha256
        order by f.landed_at nulls last, f.source_file, files.file_sha256
    """).fetchall()
    differences = []
    totals = Counter()
    for (sha, source, recorded, read, s_landed, s_dup, s_quar, c_landed, c_dup, c_quar,
         resolved, relanded) in rows:
        totals["files"] += int(recorded)
        totals["rows_read"] += read or 0
        totals["rows_landed"] += s_landed or 0
        totals["rows_duplicate"] += s_dup or 0
        totals["rows_quarantined"] += s_quar or 0
        totals["rows_relanded"] += relanded
        problems = []
        if not recorded:
            problems.append("rows of a file that raw.landed_files does not record")
        else:
            if read != s_landed + s_dup + s_quar:
                problems.append(f"rows_read {read} != landed {s_landed} + duplicate {s_dup} + "
                                f"quarantined {s_quar} = {s_landed + s_dup + s_quar}")
            for what, stored, counted, table in (
                    ("rows_landed", s_landed, c_landed, "raw.usage_events"),
                    ("rows_duplicate", s_dup, c_dup, "raw.duplicate_events"),
                    ("rows_quarantined", s_quar, c_quar, "raw.quarantined_events")):
                if stored != counted:
                    problems.append(f"{what} {stored} but {counted} rows in {table}")
        if relanded != resolved:
            problems.append(f"{relanded} re-landed rows (usage + duplicates) but {resolved} "
                            "resolved quarantine rows")
        if problems:
            differences.append({
                "file_sha256": sha, "source_file": source,
                "stored": None if not recorded else {
                    "rows_read": read, "rows_landed": s_landed, "rows_duplicate": s_dup,
                    "rows_quarantined": s_quar},
                "counted": {"rows_landed": c_landed, "rows_duplicate": c_dup,
                            "rows_quarantined": c_quar, "quarantine_resolved": resolved,
                            "rows_relanded": relanded},
                "problems": problems})
    n = totals["files"]
    return _result(
        "landed_file_counts", differences,
        f"{n} file(s): every rows_read = landed + duplicate + quarantined, and every count "
        "matches the rows in raw",
        f"{len(differences)} file(s) whose counts disagree, first: "
        + (f"{differences[0]['source_file']}: {'; '.join(differences[0]['problems'])}"
           if differences else ""),
        dict(totals))


def check_events_counted_once(run: _Run) -> CheckResult:
    rows = run.con.execute(f"""
        with recomputed as (
            {run.aggregate_sql('select customer_id, meter_id, value, event_at, event_id, '
                               'aggregation, unique_value from temp._recon_period_events',
                               'customer_id, meter_id')}
        ),
        fct as (
            select customer_id, meter_id, count(*) as fct_rows,
                   sum(event_count) as event_count, min(quantity) as quantity,
                   count(distinct quantity) as quantities,
                   bool_and(billing_period_end = $end_date) as end_ok
            from marts.fct_meter_usage
            where billing_period_start = $period
            group by customer_id, meter_id
        )
        select coalesce(r.customer_id, f.customer_id) as customer_id,
               coalesce(r.meter_id, f.meter_id) as meter_id, r.aggregation,
               coalesce(r.event_count, 0), r.quantity,
               coalesce(f.fct_rows, 0), f.event_count, f.quantity, f.quantities, f.end_ok
        from recomputed as r
        full outer join fct as f
          on f.customer_id = r.customer_id and f.meter_id = r.meter_id
        order by all
    """, {"period": run.start, "end_date": run.end}).fetchall()
    differences = []
    raw_events = fct_events = 0
    for (customer, meter, aggregation, raw_n, raw_q, fct_rows, fct_n, fct_q, quantities,
         end_ok) in rows:
        raw_events += raw_n
        fct_events += fct_n or 0
        problems = []
        if fct_rows == 0:
            problems.append(f"{raw_n} raw event(s) counted in no fct_meter_usage row")
        elif raw_n == 0:
            problems.append(f"an fct_meter_usage row with event_count {fct_n} and no raw "
                            "event in the period")
        else:
            if fct_rows > 1:
                problems.append(f"{fct_rows} fct_meter_usage rows for one customer and meter")
            if fct_n != raw_n:
                problems.append(f"event_count {fct_n} but {raw_n} raw event(s)")
            if aggregation is None:
                problems.append(f"meter {meter} is not in meters.csv: no aggregation")
            elif quantities != 1 or fct_q != raw_q:
                problems.append(f"quantity {_plain(fct_q)} but the {aggregation} of the raw "
                                f"events is {_plain(raw_q)}")
            if not end_ok:
                problems.append(f"billing_period_end is not {run.end}")
        if problems:
            differences.append({"customer_id": customer, "meter_id": meter,
                                "aggregation": aggregation, "raw_event_count": raw_n,
                                "fct_event_count": fct_n, "recomputed_quantity": raw_q,
                                "fct_quantity": fct_q, "problems": problems})
    figures = {"raw_events": raw_events, "fct_event_count": fct_events,
               "customer_meters": len(rows)}
    return _result(
        "events_counted_once", differences,
        f"{raw_events} event(s) of {run.start:%Y-%m} counted once in {len(rows)} "
        "fct_meter_usage row(s), every quantity equal to its recomputed aggregate",
        f"{len(differences)} customer/meter row(s) disagree ({raw_events} raw events, "
        f"{fct_events} counted), first: "
        + (f"{differences[0]['customer_id']}/{differences[0]['meter_id']}: "
           f"{'; '.join(differences[0]['problems'])}" if differences else ""),
        figures)


def check_rated_quantity_matches_usage(run: _Run) -> CheckResult:
    usage = {(u.customer_id, u.product_item_id): u for u in run.item_usage()}
    groups = run.con.execute("""
        select invoice_id, customer_id, product_item_id, sum(quantity), count(*),
               count(quantity)
        from marts.fct_invoice_lines
        where billing_period_start = $period and line_type = 'usage'
        group by all order by all
    """, {"period": run.start}).fetchall()
    multi = run.con.execute("""
        select event_id, list(product_item_id order by product_item_id)
        from temp._recon_event_items group by event_id having count(*) > 1
        order by event_id limit 10
    """).fetchall()
    multi_count = run.con.execute("""
        select count(*) from (select event_id from temp._recon_event_items
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
            problems.append("usage lines but no event of the period matches the item")
        elif u.quantity is None:
            problems.append("no aggregate: the item's meter is not in meters.csv")
        elif with_q != line_count or lines_q != expected:
            problems.append(f"lines add up to {_plain(lines_q)}, Q = max({_plain(u.quantity)}, "
                            f"0) = {_plain(expected)}")
        if invoice_id != run.invoice_prefix + str(customer):
            problems.append(f"on invoice {invoice_id}, not {run.invoice_prefix}{customer}")
        if problems:
            differences.append({
                "invoice_id": invoice_id, "customer_id": customer, "product_item_id": item,
                "expected_quantity": expected, "lines_quantity": lines_q,
                "aggregate": None if u is None else u.quantity,
                "event_count": None if u is None else u.event_count,
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
                "line_count": 0,
                "problems": [f"{u.event_count} event(s) match the item but it has no usage "
                             "line"]})
    if multi_count:
        differences.append({"events_matching_several_items": multi_count,
                            "examples": [{"event_id": e, "product_item_ids": list(i)}
                                         for e, i in multi],
                            "problems": ["events priced by more than one item"]})
    figures = {"items_with_usage": len(usage), "line_groups": len(groups),
               "events_matching_several_items": multi_count,
               "published_at": run.published_at.isoformat() if run.published_at else None}
    first = differences[0] if differences else {}
    return _result(
        "rated_quantity_matches_usage", differences,
        f"{len(usage)} (customer, item) usage group(s): every line group adds up to "
        "max(aggregate, 0) recomputed from raw events",
        f"{len(differences)} usage group(s) disagree, first: "
        f"{first.get('customer_id')}/{first.get('product_item_id')}: "
        f"{'; '.join(first.get('problems', []))}",
        figures)


def check_line_amounts(run: _Run) -> CheckResult:
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
            entry.update({"expected_amount": None, "actual_amount": _money(row[6], minor),
                          "invoice_id": row[8], "line_number": row[9],
                          "problems": ["a line the pricer does not produce"]})
            differences.append(entry)
            continue
        minor = run.minor_unit(want.currency)
        entry["expected_amount"] = _money(want.amount, minor)
        entry["exact_amount"] = _plain(want.exact_amount)
        if not got:
            entry.update({"actual_amount": None, "problems": ["line missing from the marts"]})
            differences.append(entry)
            continue
        row = got[0]
        _c, _t, _i, _tier, quantity, unit_price, amount, currency, invoice_id, number = row
        entry.update({"actual_amount": _money(amount, run.minor_unit(currency)),
                      "invoice_id": invoice_id, "line_number": number})
        problems = []
        if len(got) > 1:
            problems.append(f"{len(got)} lines with this key")
        if amount != want.amount:
            problems.append(f"amount {_money(amount, minor)} but the pricer gives "
                            f"{_money(want.amount, minor)} (exact {_plain(want.exact_amount)})")
        if quantity != want.quantity:
            problems.append(f"quantity {_plain(quantity)} but the pricer gives "
                            f"{_plain(want.quantity)}")
        if unit_price != want.unit_price:
            problems.append(f"unit_price {_plain(unit_price)} but the pricer gives "
                            f"{_plain(want.unit_price)}")
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
        return {c: _money(v, run.minor_unit(c)) for c, v in sorted(sums.items())}

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
    return _result(
        "line_amounts_match_decimal_pricer", differences,
        f"{len(expected)} usage/commitment line(s) equal to the Decimal pricer's, to the minor "
        "unit",
        f"{len(differences)} line(s) differ from the Decimal pricer, first: {first_text}",
        figures)


ORDER_SQL = """
    with lines as (
        select * from marts.fct_invoice_lines where billing_period_start = $period
    ),
    positioned as (
        select lines.*,
               row_number() over (
                   partition by invoice_id
                   order by case line_type when 'usage' then 0 when 'minimum_commitment' then 1
                                           when 'adjustment' then 2 else 3 end,
                            case when line_type = 'adjustment' then usage_period_start end
                                nulls first,
                            product_item_id nulls last, tier nulls first, line_number
               ) as contract_position
        from lines
    )
    select invoice_id, count(*) as line_rows, sum(amount) as lines_amount,
           min(line_number), max(line_number), count(distinct line_number),
           count(*) filter (where line_number <> contract_position) as out_of_order,
           list(distinct customer_id order by customer_id) as customers,
           list(distinct currency order by currency) as currencies,
           count(*) filter (where billing_period_end <> $end_date) as bad_period_end,
           count(*) filter (where line_type in ('usage', 'minimum_commitment')
                            and (usage_period_start <> $period or usage_period_end <> $end_date))
               as bad_usage_period,
           count(*) filter (where line_type = 'adjustment') as adjustment_lines
    from positioned
    group by invoice_id
"""


def check_invoice_totals_and_numbering(run: _Run) -> CheckResult:
    invoices = run.con.execute("""
        select invoice_id, customer_id, currency, subtotal, total, line_count, status,
               billing_period_end
        from marts.fct_invoices where billing_period_start = $period
        order by invoice_id
    """, {"period": run.start}).fetchall()
    lines = {row[0]: row for row in run.con.execute(
        ORDER_SQL, {"period": run.start, "end_date": run.end}).fetchall()}
    differences: list[dict] = []
    per_invoice_id = Counter(row[0] for row in invoices)
    by_customer: dict[str, list[str]] = defaultdict(list)
    for invoice_id, customer, currency, subtotal, total, line_count, status, end in invoices:
        by_customer[customer].append(invoice_id)
        minor = run.minor_unit(currency)
        agg = lines.get(invoice_id)
        n, amount = (agg[1], agg[2]) if agg else (0, Decimal(0))
        problems = []
        if per_invoice_id[invoice_id] > 1:
            problems.append(f"{per_invoice_id[invoice_id]} invoices with this id")
        if invoice_id != run.invoice_prefix + str(customer):
            problems.append(f"invoice_id is not {run.invoice_prefix}{customer}")
        if end != run.end:
            problems.append(f"billing_period_end {end} is not {run.end}")
        if total != subtotal:
            problems.append(f"total {_money(total, minor)} != subtotal {_money(subtotal, minor)}")
        if total != amount:
            problems.append(f"total {_money(total, minor)} but its lines add up to "
                            f"{_money(amount, minor)}")
        if line_count != n:
            problems.append(f"line_count {line_count} but {n} line(s)")
        if agg:
            _id, _n, _amt, first, last, distinct, out_of_order, customers, currencies, \
                bad_end, bad_usage_period, _adj = agg
            if first != 1 or last != n or distinct != n:
                problems.append(f"line numbers {first}..{last} with {distinct} distinct for "
                                f"{n} line(s): not 1..n gap-free")
            elif out_of_order:
                problems.append(f"{out_of_order} line(s) out of the contract order (usage by "
                                "item then tier, minimum_commitment, adjustments)")
            if list(customers) != [customer]:
                problems.append(f"lines of customer(s) {list(customers)}")
            if list(currencies) != [currency]:
                problems.append(f"lines in currency {list(currencies)}, invoice in {currency}")
            if bad_end:
                problems.append(f"{bad_end} line(s) with billing_period_end not {run.end}")
            if bad_usage_period:
                problems.append(f"{bad_usage_period} usage/commitment line(s) with a usage "
                                "period other than the billing period")
        if problems:
            differences.append({"invoice_id": invoice_id, "customer_id": customer,
                                "currency": currency, "total": _money(total, minor),
                                "subtotal": _money(subtotal, minor),
                                "lines_amount": _money(amount, minor), "line_count": line_count,
                                "lines": n, "problems": problems})
    invoice_ids = set(per_invoice_id)
    for invoice_id, agg in sorted(lines.items()):
        if invoice_id not in invoice_ids:
            differences.append({"invoice_id": invoice_id, "lines": agg[1],
                                "lines_amount": _plain(agg[2]),
                                "problems": ["lines of an invoice that fct_invoices lacks"]})
    expected = run.recipients()
    for customer in sorted(expected | set(by_customer)):
        found = by_customer.get(customer, [])
        if customer in expected and len(found) != 1:
            differences.append({"customer_id": customer, "invoices": found,
                                "problems": [f"must have exactly one invoice, has {len(found)}"]})
        elif customer not in expected and found:
            only_adjustments = all(
                (agg := lines.get(i)) is not None and agg[11] == agg[1] for i in found)
            if not only_adjustments:
                differences.append({"customer_id": customer, "invoices": found,
                                    "problems": ["an invoice for a customer neither active in "
                                                 "the period nor with usage in it"]})
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal(0))
    for row in invoices:
        totals[row[2]] = pricer_lib.EXACT.add(totals[row[2]], row[4])
    figures = {"invoices": len(invoices), "expected_invoices": len(expected),
               "lines": sum(agg[1] for agg in lines.values()),
               "total_by_currency": {c: _money(v, run.minor_unit(c))
                                     for c, v in sorted(totals.items())},
               "statuses": dict(Counter(row[6] for row in invoices))}
    first = differences[0] if differences else {}
    return _result(
        "invoice_totals_and_numbering", differences,
        f"{len(invoices)} invoice(s), one per customer due one: totals = subtotals = sum of "
        "lines, lines numbered 1..n",
        f"{len(differences)} invoice problem(s), first: "
        f"{first.get('invoice_id') or first.get('customer_id')}: "
        f"{'; '.join(first.get('problems', []))}",
        figures)


def check_unbilled_usage_reported(run: _Run) -> CheckResult:
    rows = run.con.execute(f"""
        with recomputed as (
            {run.aggregate_sql('''
                select customer_id, meter_id, value, event_at, event_id, aggregation,
                       unique_value
                from temp._recon_period_events as e
                where not exists (select 1 from temp._recon_event_items as ei
                                  where ei.event_id = e.event_id)''', 'customer_id, meter_id')}
        ),
        fct as (
            select customer_id, meter_id, count(*) as fct_rows, sum(event_count) as event_count,
                   min(quantity) as quantity
            from marts.fct_unbilled_usage
            where billing_period_start = $period
            group by customer_id, meter_id
        )
        select coalesce(r.customer_id, f.customer_id), coalesce(r.meter_id, f.meter_id),
               r.aggregation, coalesce(r.event_count, 0), r.quantity,
               coalesce(f.fct_rows, 0), f.event_count, f.quantity
        from recomputed as r
        full outer join fct as f on f.customer_id = r.customer_id and f.meter_id = r.meter_id
        order by all
    """, {"period": run.start}).fetchall()
    differences = []
    reported = []
    events = 0
    for customer, meter, aggregation, raw_n, raw_q, fct_rows, fct_n, fct_q in rows:
        if fct_rows:
            events += fct_n or 0
            reported.append({"customer_id": customer, "meter_id": meter,
                             "quantity": fct_q, "event_count": fct_n})
        problems = []
        if fct_rows != 1 and raw_n:
            problems.append(f"{raw_n} event(s) no item prices, reported in {fct_rows} "
                            "fct_unbilled_usage row(s)")
        elif fct_rows and not raw_n:
            problems.append("reported, but every event of the meter is priced by an item")
        elif fct_n != raw_n or fct_q != raw_q:
            problems.append(f"reported {fct_n} event(s), quantity {_plain(fct_q)}; recomputed "
                            f"{raw_n}, {_plain(raw_q)}")
        if problems:
            differences.append({"customer_id": customer, "meter_id": meter,
                                "recomputed_event_count": raw_n, "recomputed_quantity": raw_q,
                                "fct_event_count": fct_n, "fct_quantity": fct_q,
                                "problems": problems})
    figures = {"rows": len(reported), "events": events, "unbilled": reported[:MAX_LISTED]}
    ok = (f"{events} unbilled event(s) in {len(reported)} customer/meter row(s), as recomputed"
          if reported else "no unbilled usage in the period")
    return _result("unbilled_usage_reported", differences, ok,
                   f"fct_unbilled_usage disagrees with the recomputed unbilled usage in "
                   f"{len(differences)} row(s)", figures)


# --------------------------------------------------------------------------- great-expectations
def check_table_expectations(run: _Run) -> CheckResult:
    """great-expectations 1.x, pandas route: one ephemeral context, one pandas data source,
    a dataframe asset per table, whole-dataframe batches. Only keys, counts, value sets and
    INTEGER minor units reach pandas (amount * 10^minor_unit cast to BIGINT in SQL)."""
    clock = time.perf_counter()
    import great_expectations as gx  # imported on use: about 2 s
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column as GxColumn
    imported = time.perf_counter()

    def minor_units(amount: str, name: str) -> str:
        """``<name>_minor``: the amount in integer minor units, and ``<name>_is_whole_minor``."""
        minor = f"{amount} * c.scale_factor"
        return (f"try_cast({minor} as bigint) as {name}_minor, "
                f"coalesce({minor} = try_cast({minor} as bigint), false) as {name}_is_whole_minor")

    params = {"period": run.start}
    invoices = run.con.execute(f"""
        select i.invoice_id, i.customer_id, i.status, i.currency, i.line_count,
               i.invoice_number, {minor_units("i.total", "total")}
        from marts.fct_invoices as i
        left join temp._recon_currencies as c on c.currency = i.currency
        where i.billing_period_start = $period
    """, params).df()
    lines = run.con.execute(f"""
        select l.invoice_id, l.line_number, l.line_type, l.currency, l.product_item_id,
               {minor_units("l.amount", "amount")}
        from marts.fct_invoice_lines as l
        left join temp._recon_currencies as c on c.currency = l.currency
        where l.billing_period_start = $period
    """, params).df()
    usage = run.con.execute("""
        select customer_id, meter_id, event_count
        from marts.fct_meter_usage where billing_period_start = $period
    """, params).df()
    expected_invoices = len(run.recipients())
    expected_lines = int(invoices["line_count"].fillna(0).sum()) if len(invoices) else 0
    currencies = sorted(run.currencies)

    suites: dict[str, tuple[Any, list]] = {
        "fct_invoices": (invoices, [
            *([gxe.ExpectTableRowCountToBeBetween(min_value=1)] if expected_invoices else []),
            gxe.ExpectColumnValuesToNotBeNull(column="invoice_id"),
            gxe.ExpectColumnValuesToBeUnique(column="invoice_id"),
            gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
            gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
            gxe.ExpectColumnValuesToNotBeNull(column="status"),
            gxe.ExpectColumnValuesToNotBeNull(column="currency"),
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=currencies),
            gxe.ExpectColumnValuesToBeBetween(column="line_count", min_value=0),
            gxe.ExpectColumnValuesToNotBeNull(column="total_minor"),
            gxe.ExpectColumnValuesToBeBetween(column="total_minor",
                                              min_value=-MAX_MINOR_UNITS,
                                              max_value=MAX_MINOR_UNITS),
            gxe.ExpectColumnValuesToBeInSet(column="total_is_whole_minor", value_set=[True]),
        ]),
        "fct_invoice_lines": (lines, [
            gxe.ExpectTableRowCountToEqual(value=expected_lines),
            gxe.ExpectColumnValuesToNotBeNull(column="invoice_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="line_number"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["invoice_id", "line_number"]),
            gxe.ExpectColumnValuesToBeBetween(column="line_number", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="line_type", value_set=list(LINE_TYPES)),
            gxe.ExpectColumnValuesToNotBeNull(column="line_type"),
            gxe.ExpectColumnValuesToNotBeNull(column="currency"),
            gxe.ExpectColumnValuesToBeInSet(column="currency", value_set=currencies),
            gxe.ExpectColumnValuesToNotBeNull(column="product_item_id",
                                              row_condition=GxColumn("line_type") == "usage"),
            gxe.ExpectColumnValuesToNotBeNull(column="amount_minor"),
            gxe.ExpectColumnValuesToBeBetween(column="amount_minor",
                                              min_value=-MAX_MINOR_UNITS,
                                              max_value=MAX_MINOR_UNITS),
            gxe.ExpectColumnValuesToBeInSet(column="amount_is_whole_minor", value_set=[True]),
        ]),
        "fct_meter_usage": (usage, [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["customer_id", "meter_id"]),
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="meter_id"),
            gxe.ExpectColumnValuesToBeBetween(column="event_count", min_value=1),
        ]),
    }

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    source = context.data_sources.add_pandas("meterline_reconciliation")
    failures: list[dict] = []
    evaluated = 0
    for table, (frame, expectations) in suites.items():
        asset = source.add_dataframe_asset(table)
        batch = asset.add_batch_definition_whole_dataframe(f"{table}_{run.start:%Y_%m}") \
            .get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"{table}_{run.start:%Y_%m}")
        for expectation in expectations:
            suite.add_expectation(expectation)
        outcome = batch.validate(suite)
        for result in outcome.results:
            evaluated += 1
            if result.success:
                continue
            config = result.expectation_config
            kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
            details = result.result or {}
            failures.append({
                "table": table, "expectation": config.type, "kwargs": kwargs,
                "observed_value": details.get("observed_value"),
                "unexpected_count": details.get("unexpected_count"),
                "partial_unexpected_list": (details.get("partial_unexpected_list") or [])[:10],
                "exception": (result.exception_info or {}).get("exception_message")
                if isinstance(result.exception_info, dict)
                and result.exception_info.get("raised_exception") else None,
            })
    done = time.perf_counter()
    figures = {"expectations": evaluated,
               "rows": {"fct_invoices": len(invoices), "fct_invoice_lines": len(lines),
                        "fct_meter_usage": len(usage)},
               "seconds": {"import": round(imported - clock, 2),
                           "validate": round(done - imported, 2)}}
    first = failures[0] if failures else {}
    return _result(
        "table_expectations", failures,
        f"{evaluated} expectation(s) met on invoices, lines and meter usage",
        f"{len(failures)} expectation(s) failed, first: {first.get('table')}."
        f"{first.get('expectation')} {first.get('kwargs')} "
        f"(unexpected {first.get('partial_unexpected_list') or first.get('observed_value')})",
        figures)


CHECKS: dict[str, Callable[[_Run], CheckResult]] = {
    "landed_file_counts": check_landed_file_counts,
    "events_counted_once": check_events_counted_once,
    "rated_quantity_matches_usage": check_rated_quantity_matches_usage,
    "line_amounts_match_decimal_pricer": check_line_amounts,
    "invoice_totals_and_numbering": check_invoice_totals_and_numbering,
    "unbilled_usage_reported": check_unbilled_usage_reported,
    "table_expectations": check_table_expectations,
}


# --------------------------------------------------------------------------- entry point
def run_checks(con: duckdb.DuckDBPyConnection,
               catalog: catalog_lib.Catalog | catalog_lib.Parsed,
               period_start: date, *, checks: Iterable[str] | None = None,
               currencies: Mapping[str, int] | None = None) -> list[CheckResult]:
    """Every reconciliation check of ``period_start`` (the first day of a month), in
    ``CHECK_NAMES`` order, or only ``checks``. ``catalog`` is the price book as read
    (``catalog.load_catalog``) or already typed (``catalog.parse``). Uses temp tables named
    ``_recon_*`` on ``con`` (read-only connections work) and drops them before returning.
    ``figures['seconds']`` of each result is its runtime."""
    if period_start.day != 1:
        raise ValueError(f"period_start {period_start} is not the first day of a month")
    selected = list(CHECK_NAMES if checks is None else checks)
    unknown = [name for name in selected if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(CHECK_NAMES)}")
    currencies = catalog_lib.read_currencies() if currencies is None else currencies
    parsed = (catalog if isinstance(catalog, catalog_lib.Parsed)
              else catalog_lib.parse(catalog, currencies))
    run = _Run(con, parsed, currencies, period_start)
    results: list[CheckResult] = []
    try:
        try:
            run.setup()
        except Exception as exc:  # noqa: BLE001 - every check fails closed, saying why
            return [_could_not_run(name, f"setup failed: {exc}") for name in selected]
        for name in selected:
            clock = time.perf_counter()
            try:
                result = CHECKS[name](run)
            except Exception as exc:  # noqa: BLE001
                result = _could_not_run(name, f"{type(exc).__name__}: {exc}")
            result.figures.setdefault("seconds_total", round(time.perf_counter() - clock, 3))
            results.append(result)
    finally:
        run.teardown()
    return results


def _could_not_run(name: str, message: str) -> CheckResult:
    return CheckResult(name, False, name not in NON_BLOCKING, f"could not run: {message}",
                       {"error": message})


def format_results(results: Iterable[CheckResult]) -> str:
    """One line per check, for logs and refusal messages."""
    return "\n".join(str(r) for r in results)
