"""Publishing a billing period (CONTRACT.md sections 7 and 8).

Publishing P appends all of P's draft invoices and lines to ``billing.published_*`` in one
transaction, with gap-free invoice numbers (MLN-000001 upwards), ``issued_at`` and the
fingerprint of the catalog rows that priced P, or writes nothing. It is refused while P's grace
period runs, when a reconciliation check fails, and when P is published already but the catalog
rows that priced it have changed since. Publishing a published period again does nothing.

The catalog rows behind P are kept in ``billing.published_catalog_rows`` (an extension), so a
refusal can name exactly the rows that changed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from orchestration.billing import ledger
from orchestration.catalog.model import Parsed
from orchestration.lib import periods


class PublishRefused(Exception):
    """Publishing is refused: exit 1, nothing written. ``details`` are one line each."""

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)

    def describe(self) -> str:
        return "\n".join([str(self), *(f"  - {d}" for d in self.details)])


@dataclass
class PublishResult:
    period_start: date
    already_published: bool
    invoice_count: int
    invoice_numbers: list[str] = field(default_factory=list)
    fingerprint: str = ""
    documents: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- fingerprint
def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def catalog_rows(parsed: Parsed, *, period_start: date, customer_ids: set[str],
                 rate_ids: set[str], item_ids: set[str]) -> dict[str, str]:
    """The catalog rows that priced a period's lines, as ``{row key: canonical values}``:
    its customers, their commitments in effect, the items of its lines with their meters, the
    rates of its lines with their tiers. Display names are left out (section 8); decimals are
    compared by value."""
    rows: dict[str, str] = {}
    items = {i.product_item_id: i for i in parsed.product_items}
    meters = {m.meter_id: m for m in parsed.meters}
    for c in parsed.customers:
        if c.customer_id in customer_ids:
            rows[f"customers.csv {c.customer_id}"] = "|".join(
                map(_text, (c.currency, c.active_from, c.active_to)))
    for c in parsed.commitments:
        if c.customer_id in customer_ids and c.in_effect(period_start):
            rows[f"commitments.csv {c.customer_id} from {c.effective_from}"] = "|".join(
                map(_text, (c.minimum_amount, c.currency, c.effective_from, c.effective_to)))
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None:
            rows[f"product_items.csv {item_id}"] = "(removed)"
            continue
        rows[f"product_items.csv {item_id}"] = "|".join(
            map(_text, (item.meter_id, item.dimension_filter)))
        meter = meters.get(item.meter_id)
        # time_unit only on level meters, so the fingerprint of a period priced before
        # v1.2 (no time_unit column) is unchanged
        rows[f"meters.csv {item.meter_id}"] = "(removed)" if meter is None else "|".join(
            map(_text, (meter.aggregation, meter.unique_dimension)
                + ((meter.time_unit,) if meter.is_level else ())))
    known_rates = {r.rate_id: r for r in parsed.rates}
    for rate_id in rate_ids:
        rate = known_rates.get(rate_id)
        rows[f"rates.csv {rate_id}"] = "(removed)" if rate is None else "|".join(map(_text, (
            rate.product_item_id, rate.customer_id, rate.currency, rate.pricing_model,
            rate.unit_price, rate.package_size, rate.free_units or Decimal(0),
            rate.effective_from, rate.effective_to)))
    for tier in parsed.rate_tiers:
        if tier.rate_id in rate_ids:
            rows[f"rate_tiers.csv {tier.rate_id} tier {tier.tier}"] = "|".join(map(_text, (
                tier.up_to, tier.unit_price, tier.flat_fee or Decimal(0))))
    return rows


def fingerprint(rows: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(rows):
        digest.update(f"{key}={rows[key]}\n".encode())
    return digest.hexdigest()


def _period_scope(con: duckdb.DuckDBPyConnection, table_invoices: str, table_lines: str,
                  period_start: date) -> tuple[set[str], set[str], set[str]]:
    customers = {r[0] for r in con.execute(
        f"select customer_id from {table_invoices} where billing_period_start = ?",
        [period_start]).fetchall()}
    rates = {r[0] for r in con.execute(
        f"select distinct rate_id from {table_lines} where billing_period_start = ? "
        f"and rate_id is not null", [period_start]).fetchall()}
    items = {r[0] for r in con.execute(
        f"select distinct product_item_id from {table_lines} where billing_period_start = ? "
        f"and product_item_id is not null", [period_start]).fetchall()}
    return customers, rates, items


def changed_catalog_rows(con: duckdb.DuckDBPyConnection, parsed: Parsed,
                         period_start: date) -> list[str]:
    """For a published period: the rows that priced it and differ now (empty: unchanged)."""
    stored = dict(con.execute(
        "select row_key, row_values from billing.published_catalog_rows "
        "where billing_period_start = ?", [period_start]).fetchall())
    customers, rates, items = _period_scope(con, "billing.published_invoices",
                                            "billing.published_invoice_lines", period_start)
    current = catalog_rows(parsed, period_start=period_start, customer_ids=customers,
                           rate_ids=rates, item_ids=items)
    changed = []
    for key in sorted(set(stored) | set(current)):
        before, now = stored.get(key), current.get(key)
        if before != now:
            changed.append(f"{key}: was {before or '(absent)'}, now {now or '(absent)'}")
    return changed


RESTATED_PERIODS_SQL = """
with published as (
    select billing_period_start, published_at
    from billing.published_periods
    where billing_period_start < ?
),
covered as (
    -- the latest publication that already carried adjustments for (customer, period)
    select l.customer_id, l.usage_period_start as billing_period_start,
           max(pp.published_at) as covered_at
    from billing.published_invoice_lines l
    join billing.published_periods pp on pp.billing_period_start = l.billing_period_start
    where l.line_type = 'adjustment'
    group by all
)
select distinct p.billing_period_start
from raw.usage_events e
join published p
  on e.event_at >= p.billing_period_start::timestamptz
 and e.event_at < (p.billing_period_start + interval 1 month)::timestamptz
left join covered c
  on c.customer_id = e.customer_id and c.billing_period_start = p.billing_period_start
where e.landed_at > greatest(p.published_at, coalesce(c.covered_at, p.published_at))
order by 1
"""


def restatement_problems(con: duckdb.DuckDBPyConnection, parsed: Parsed,
                         period_start: date) -> list[str]:
    """Billing ``period_start`` re-prices every published earlier period with late usage not
    yet billed (section 8): each of those needs the catalog rows that priced it unchanged."""
    problems = []
    for (restated,) in con.execute(RESTATED_PERIODS_SQL, [period_start]).fetchall():
        for row in changed_catalog_rows(con, parsed, restated):
            problems.append(f"restating late usage of published {periods.period_key(restated)} "
                            f"needs the catalog rows that priced it unchanged: {row}")
    return problems


def is_published(con: duckdb.DuckDBPyConnection, period_start: date) -> bool:
    return bool(con.execute("select count(*) from billing.published_periods "
                            "where billing_period_start = ?", [period_start]).fetchone()[0])


# ----------------------------------------------------------------------------- publish
def check_grace(period_start: date, grace_hours: int, now: datetime) -> None:
    opens = periods.grace_ends_at(period_start, grace_hours)
    if now < opens:
        raise PublishRefused(
            f"{periods.period_key(period_start)} cannot be published before "
            f"{opens.isoformat(timespec='minutes')} (its grace period of {grace_hours} h for "
            f"late events; METERLINE_GRACE_HOURS); nothing was written")


def refuse_tampered(con: duckdb.DuckDBPyConnection, invoices_dir: Path) -> None:
    """Publishing builds on the published ledger (numbers, late-usage restatements): refuse
    while it fails verification. Documents a killed publish left unwritten do not count."""
    tampered = ledger.verify(con, invoices_dir).tampered
    if tampered:
        raise PublishRefused(
            f"the published ledger fails verification ({len(tampered)} finding(s); "
            f"`meterline verify` lists them); nothing was written. The first: {tampered[0]}",
            [str(f) for f in tampered[:50]])


def publish(con: duckdb.DuckDBPyConnection, *, parsed: Parsed, period_start: date,
            now: datetime, grace_hours: int, failed_checks: list[str], invoices_dir: Path,
            render: Callable[[list[dict]], dict[str, str]]) -> PublishResult:
    """Append P's drafts (already built and reconciled in this run) to billing.*, atomically,
    with their documents (``render``: published invoices -> ``{file name: text}``) and seals.

    ``failed_checks`` are the blocking reconciliation checks that failed in this run, one line
    each with their figures: any of them refuses publishing, as does a ledger that fails
    verification."""
    key = periods.period_key(period_start)
    con.execute(ledger.DDL)
    refuse_tampered(con, invoices_dir)
    if is_published(con, period_start):
        changed = changed_catalog_rows(con, parsed, period_start)
        if changed:
            raise PublishRefused(
                f"{key} was published, and catalog rows that priced it have changed since; "
                f"rates are history: restore these rows, close a rate with effective_to and add "
                f"a new row instead", changed)
        count = con.execute("select count(*) from billing.published_invoices "
                            "where billing_period_start = ?", [period_start]).fetchone()[0]
        return PublishResult(period_start, True, count)
    check_grace(period_start, grace_hours, now)
    if failed_checks:
        raise PublishRefused(f"{key} was not published: reconciliation failed; nothing was "
                             f"written", failed_checks)
    customers, rates, items = _period_scope(con, "marts.fct_invoices",
                                            "marts.fct_invoice_lines", period_start)
    rows = catalog_rows(parsed, period_start=period_start, customer_ids=customers,
                        rate_ids=rates, item_ids=items)
    print_ = fingerprint(rows)
    con.execute("begin transaction")
    try:
        last = con.execute(
            "select coalesce(max(cast(substr(invoice_number, 5) as integer)), 0) "
            "from billing.published_invoices").fetchone()[0]
        con.execute("""
            insert into billing.published_invoices
            select invoice_id, customer_id, billing_period_start, billing_period_end, currency,
                   subtotal, total, line_count, 'published',
                   'MLN-' || lpad(cast(? + row_number() over (order by customer_id, invoice_id)
                                       as varchar), 6, '0'),
                   ?::timestamptz
            from marts.fct_invoices
            where billing_period_start = ? and status = 'draft'
        """, [last, now, period_start])
        con.execute("""
            insert into billing.published_invoice_lines
            select l.invoice_id, l.line_number, l.customer_id, l.billing_period_start,
                   l.billing_period_end, l.usage_period_start, l.usage_period_end, l.line_type,
                   l.product_item_id, l.meter_id, l.description, l.quantity, l.unit_price,
                   l.tier, l.amount, l.currency, l.rate_id
            from marts.fct_invoice_lines l
            join marts.fct_invoices i using (invoice_id)
            where l.billing_period_start = ? and i.status = 'draft'
        """, [period_start])
        count = con.execute("select count(*) from billing.published_invoices "
                            "where billing_period_start = ?", [period_start]).fetchone()[0]
        con.execute("insert into billing.published_periods values (?, ?::timestamptz, ?, ?)",
                    [period_start, now, count, print_])
        con.executemany("insert into billing.published_catalog_rows values (?, ?, ?)",
                        [(period_start, k, v) for k, v in sorted(rows.items())])
        ledger.seal_period(con, period_start, render(published_documents(con, period_start)))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    numbers = [r[0] for r in con.execute(
        "select invoice_number from billing.published_invoices where billing_period_start = ? "
        "order by invoice_number", [period_start]).fetchall()]
    return PublishResult(period_start, False, count, numbers, print_)


def published_documents(con: duckdb.DuckDBPyConnection, period_start: date) -> list[dict]:
    """The published invoices of a period with their lines, money as exact Decimals."""
    inv_cols = ["invoice_id", "customer_id", "billing_period_start", "billing_period_end",
                "currency", "subtotal", "total", "line_count", "status", "invoice_number",
                "issued_at"]
    line_cols = ["invoice_id", "line_number", "line_type", "product_item_id", "meter_id",
                 "description", "usage_period_start", "usage_period_end", "quantity",
                 "unit_price", "tier", "amount", "rate_id"]
    invoices = [dict(zip(inv_cols, r, strict=True)) for r in con.execute(
        f"select {', '.join(inv_cols)} from billing.published_invoices "
        f"where billing_period_start = ? order by invoice_number", [period_start]).fetchall()]
    lines: dict[str, list[dict]] = {}
    for r in con.execute(
            f"select {', '.join('l.' + c for c in line_cols)} "
            f"from billing.published_invoice_lines l "
            f"where l.billing_period_start = ? order by l.invoice_id, l.line_number",
            [period_start]).fetchall():
        row = dict(zip(line_cols, r, strict=True))
        lines.setdefault(row["invoice_id"], []).append(row)
    before = {(c, p, i): (q, a) for c, p, i, q, a in con.execute(
        BILLED_BEFORE_SQL, [period_start]).fetchall()}
    for inv in invoices:
        inv["lines"] = lines.get(inv["invoice_id"], [])
        for line in inv["lines"]:
            if line["line_type"] == "adjustment":
                line["billed_before"] = before.get(
                    (inv["customer_id"], line["usage_period_start"], line["product_item_id"]),
                    (None, Decimal(0)))
    return invoices


# What a period's adjustment lines restate, as billed before them: per (customer, restated
# period, item) the quantity and amount of its published lines and earlier adjustments (item
# null: the commitment top-up and its earlier true-ups), for the documents (E21).
BILLED_BEFORE_SQL = """
select customer_id, usage_period_start, product_item_id,
       sum(quantity) filter (where line_type <> 'minimum_commitment'), sum(amount)
from billing.published_invoice_lines
where billing_period_start < ?
group by all
"""
