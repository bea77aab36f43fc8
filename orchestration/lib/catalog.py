"""The price book (CONTRACT.md section 3): read the catalog CSVs, validate them, load them.

Reading never infers a type: every cell is text (stripped, empty -> None) and keeps its 1-based
data row number (the header is not counted) for messages. ``validate`` parses the text into
exact values (``decimal.Decimal``, ``datetime.date``) and reports *every* problem it finds, each
by file, row and field, never stopping at the first. ``write_catalog`` loads a clean catalog into
the ``catalog.*`` tables of docs/architecture.md, passing decimals as text and casting them in
SQL, so no value ever goes through a binary float.

Decisions where CONTRACT.md is silent:
- Files: customers.csv, meters.csv, product_items.csv and rates.csv are required;
  rate_tiers.csv and commitments.csv may be absent (read as empty). A file needs a header row
  with every column of section 3; only ``active_from``/``active_to`` of customers.csv may be left
  out. Extra columns are ignored. A row with more or fewer fields than the header is a problem;
  a row of empty cells is skipped (it still counts in the row numbers, as in a spreadsheet).
- Values required: the ids and references, ``currency``, ``aggregation``, ``pricing_model``,
  ``effective_from``, ``minimum_amount`` and a tier's ``tier`` and ``unit_price``. Display names
  and ``unit`` may be empty.
- Decimals are written in plain notation (``12``, ``0.0125``, ``-3.5``; no exponent, no
  thousands separator), have at most 12 decimal places and at most 26 digits before the point
  once trailing zeros are dropped (DECIMAL(38,12)). ``package_size`` and ``up_to`` must be > 0.
- ``package_size`` is only for ``package`` rates; on any other model it is a problem (it would be
  silently ignored). ``unit_price`` is required for ``per_unit``/``package`` and must be empty on
  ``graduated``/``volume`` (their tiers carry the prices).
- ``free_units`` of 0 on a tiered rate is accepted as "none"; any other value is a problem.
- Tier tables: numbered exactly 1..n, ``up_to`` strictly increasing, every tier but the last
  has an ``up_to`` and the last one has none (open-ended, so every quantity has a price). A
  ``graduated``/``volume`` rate needs at least one tier; tiers of a ``per_unit``/``package`` rate
  are a problem.
- ``dimension_filter`` is split at the first ``=``; the key must be non-empty, the value may be
  empty. Nothing inside is trimmed: matching is exact.
- Currency codes are matched exactly (``usd`` is not ``USD``).
- For a period (``period_problems``), a customer that is no longer in customers.csv but has
  landed usage of an item in the period is a problem too (its usage could not be invoiced).
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

from orchestration.lib.periods import next_period
from orchestration.lib.readers import table_exists

REPO_ROOT = Path(__file__).resolve().parents[2]
CURRENCIES_SEED = REPO_ROOT / "dbt_project" / "seeds" / "iso_4217_currencies.csv"

AGGREGATIONS = ("sum", "count", "unique_count", "max", "latest")
PRICING_MODELS = ("per_unit", "package", "graduated", "volume")
TIERED_MODELS = ("graduated", "volume")
CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
TIER_RE = re.compile(r"\d+")
MAX_SCALE = 12
MAX_INTEGER_DIGITS = 26  # DECIMAL(38, 12)


@dataclass(frozen=True)
class FileSpec:
    name: str
    columns: tuple[str, ...]
    optional_columns: tuple[str, ...] = ()
    required_file: bool = True


FILES: dict[str, FileSpec] = {
    "customers": FileSpec("customers.csv", ("customer_id", "customer_name", "currency"),
                          ("active_from", "active_to")),
    "meters": FileSpec("meters.csv",
                       ("meter_id", "display_name", "unit", "aggregation", "unique_dimension")),
    "product_items": FileSpec("product_items.csv",
                              ("product_item_id", "display_name", "meter_id", "dimension_filter")),
    "rates": FileSpec("rates.csv", ("rate_id", "product_item_id", "customer_id", "currency",
                                    "pricing_model", "unit_price", "package_size", "free_units",
                                    "effective_from", "effective_to")),
    "rate_tiers": FileSpec("rate_tiers.csv", ("rate_id", "tier", "up_to", "unit_price",
                                              "flat_fee"), required_file=False),
    "commitments": FileSpec("commitments.csv", ("customer_id", "minimum_amount", "currency",
                                                "effective_from", "effective_to"),
                            required_file=False),
}
FILE_ORDER = {spec.name: i for i, spec in enumerate(FILES.values())}


# --------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class Problem:
    """One catalog problem, located by file, data row (1-based, header not counted) and field.

    ``key`` is the row's id as shown in messages (``r_disk_new``, ``r_api tier 2``);
    ``other_rows`` names further rows of a problem that involves several (an overlap)."""

    file: str
    row: int | None
    field: str | None
    message: str
    key: str | None = None
    other_rows: tuple[int, ...] = ()

    @property
    def rows(self) -> tuple[int, ...]:
        return ((self.row,) if self.row is not None else ()) + self.other_rows

    def __str__(self) -> str:
        text = self.file
        rows = self.rows
        if len(rows) == 1:
            text += f" row {rows[0]}"
        elif rows:
            text += " rows " + ", ".join(map(str, rows[:-1])) + f" and {rows[-1]}"
        if self.key:
            text += f" ({self.key})"
        if self.field:
            text += f", {self.field}"
        return f"{text}: {self.message}"


@dataclass(frozen=True)
class Row:
    """One data row of a catalog file: its 1-based row number and its cells as stripped text
    (empty -> None). Columns absent from the file read as None."""

    row: int
    values: Mapping[str, str | None]

    def __getitem__(self, column: str) -> str | None:
        return self.values.get(column)

    def get(self, column: str) -> str | None:
        return self.values.get(column)


@dataclass(frozen=True)
class Catalog:
    """The price book as read: rows of text per file, plus the problems met while reading
    (missing file or column, rows of the wrong width), which ``validate`` reports first."""

    directory: Path | None
    customers: tuple[Row, ...] = ()
    meters: tuple[Row, ...] = ()
    product_items: tuple[Row, ...] = ()
    rates: tuple[Row, ...] = ()
    rate_tiers: tuple[Row, ...] = ()
    commitments: tuple[Row, ...] = ()
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    read_problems: tuple[Problem, ...] = ()

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, ())


class CatalogInvalid(ValueError):
    """Raised by ``write_catalog`` for a catalog that does not validate."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"the catalog has {len(self.problems)} problem(s):\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


# --------------------------------------------------------------------------- reading
def load_catalog(catalog_dir: Path) -> Catalog:
    """Read the six CSV files of ``catalog_dir`` as text; never raises for bad content."""
    catalog_dir = Path(catalog_dir)
    tables: dict[str, tuple[Row, ...]] = {}
    columns: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for table, spec in FILES.items():
        rows, header, file_problems = _read_file(catalog_dir / spec.name, spec)
        tables[table] = rows
        columns[table] = header
        problems.extend(file_problems)
    return Catalog(directory=catalog_dir, columns=columns, read_problems=tuple(problems),
                   **tables)


def _read_file(path: Path, spec: FileSpec) -> tuple[tuple[Row, ...], tuple[str, ...],
                                                    list[Problem]]:
    if not path.is_file():
        if not spec.required_file:
            return (), spec.columns, []
        return (), (), [Problem(spec.name, None, None,
                                f"missing file {path}; it needs the header "
                                f"{','.join(spec.columns)}")]
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        return (), (), [Problem(spec.name, None, None, f"not UTF-8 text ({exc.reason})")]
    except csv.Error as exc:
        return (), (), [Problem(spec.name, None, None, f"not readable as CSV ({exc})")]
    if not records or not any(cell.strip() for cell in records[0]):
        return (), (), [Problem(spec.name, None, None,
                                f"no header row; the first line must be "
                                f"{','.join(spec.columns)}")]
    header = tuple(cell.strip() for cell in records[0])
    problems: list[Problem] = []
    for column, count in Counter(header).items():
        if count > 1 and column:
            problems.append(Problem(spec.name, None, column,
                                    f"column {column} appears {count} times in the header"))
    for column in spec.columns:
        if column not in header:
            problems.append(Problem(spec.name, None, column, f"missing column {column}"))
    rows: list[Row] = []
    for number, record in enumerate(records[1:], start=1):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(Problem(
                spec.name, number, None,
                f"the row has {len(record)} fields but the header has {len(header)}"))
            continue
        values: dict[str, str | None] = {}
        for column, cell in zip(header, record, strict=True):
            if column and column not in values:
                values[column] = cell.strip() or None
        rows.append(Row(number, values))
    return tuple(rows), header, problems


def read_currencies(path: Path | str | None = None) -> dict[str, int]:
    """ISO 4217 currency -> minor unit, from the dbt seed (the one source of truth)."""
    with Path(path or CURRENCIES_SEED).open(newline="", encoding="utf-8") as handle:
        return {row["currency"].strip(): int(row["minor_unit"])
                for row in csv.DictReader(handle)}


# --------------------------------------------------------------------------- parsed view
def _in_effect(dates_ok: bool, start: date | None, end: date | None, on: date) -> bool:
    """``start <= on < end`` (an empty end is open), for rows whose dates parsed."""
    return dates_ok and start is not None and start <= on and (end is None or on < end)


@dataclass(frozen=True)
class Customer:
    row: int
    customer_id: str | None
    customer_name: str | None
    currency: str | None
    active_from: date | None
    active_to: date | None


@dataclass(frozen=True)
class Meter:
    row: int
    meter_id: str | None
    display_name: str | None
    unit: str | None
    aggregation: str | None
    unique_dimension: str | None


@dataclass(frozen=True)
class ProductItem:
    row: int
    product_item_id: str | None
    display_name: str | None
    meter_id: str | None
    dimension_filter: str | None
    filter_key: str | None
    filter_value: str | None
    filter_ok: bool


@dataclass(frozen=True)
class Rate:
    row: int
    rate_id: str | None
    product_item_id: str | None
    customer_id: str | None
    currency: str | None
    pricing_model: str | None
    unit_price: Decimal | None
    package_size: Decimal | None
    free_units: Decimal | None
    effective_from: date | None
    effective_to: date | None
    dates_ok: bool

    def in_effect(self, on: date) -> bool:
        return _in_effect(self.dates_ok, self.effective_from, self.effective_to, on)


@dataclass(frozen=True)
class RateTier:
    row: int
    rate_id: str | None
    tier: int | None
    up_to: Decimal | None
    unit_price: Decimal | None
    flat_fee: Decimal | None
    up_to_ok: bool


@dataclass(frozen=True)
class Commitment:
    row: int
    customer_id: str | None
    minimum_amount: Decimal | None
    currency: str | None
    effective_from: date | None
    effective_to: date | None
    dates_ok: bool

    def in_effect(self, on: date) -> bool:
        return _in_effect(self.dates_ok, self.effective_from, self.effective_to, on)


@dataclass
class Parsed:
    customers: list[Customer]
    meters: list[Meter]
    product_items: list[ProductItem]
    rates: list[Rate]
    rate_tiers: list[RateTier]
    commitments: list[Commitment]
    problems: list[Problem]


class _Fields:
    """Parses the cells of one row, recording a problem for each bad one."""

    def __init__(self, catalog: Catalog, table: str, row: Row, key: str | None,
                 problems: list[Problem]):
        self.catalog, self.table, self.row, self.key = catalog, table, row, key
        self.file = FILES[table].name
        self.problems = problems

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, self.row.row, column, message, self.key))

    def text(self, column: str, *, required: bool = False) -> str | None:
        value = self.row[column]
        if value is None and required and self.catalog.has_column(self.table, column):
            self.problem(column, f"{column} is required")
        return value

    def date(self, column: str, *, required: bool = False) -> tuple[date | None, bool]:
        value = self.text(column, required=required)
        if value is None:
            return None, not required
        parsed = _parse_date(value)
        if parsed is None:
            self.problem(column, f"{column} {value!r} is not a date (YYYY-MM-DD)")
            return None, False
        return parsed, True

    def decimal(self, column: str, *, required: bool = False,
                positive: bool = False) -> tuple[Decimal | None, bool]:
        value = self.text(column, required=required)
        if value is None:
            return None, not required
        parsed, error = _parse_decimal(value)
        if error:
            self.problem(column, f"{column} {value!r} {error}")
            return None, False
        assert parsed is not None
        if positive and parsed <= 0:
            self.problem(column, f"{column} ({value}) must be greater than 0")
            return None, False
        if not positive and parsed < 0:
            self.problem(column, f"{column} ({value}) is negative; it must be >= 0")
            return None, False
        return parsed, True

    def currency(self, currencies: Mapping[str, int]) -> str | None:
        value = self.text("currency", required=True)
        if value is not None and value not in currencies:
            hint = f" (did you mean {value.upper()}?)" if value.upper() in currencies else ""
            self.problem("currency", f"{value} is not an ISO 4217 code{hint}")
            return None
        return value


def _parse_date(value: str) -> date | None:
    if not DATE_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _parse_decimal(value: str) -> tuple[Decimal | None, str | None]:
    """Exact decimal of plain text, or why not: at most 12 decimal places and 26 digits before
    the point once trailing zeros are dropped (DECIMAL(38,12))."""
    if not DECIMAL_RE.fullmatch(value):
        return None, "is not a decimal number (plain notation, e.g. 0.0125)"
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already rules these out
        return None, "is not a decimal number"
    scale = _decimal_places(number)
    if scale > MAX_SCALE:
        return None, f"has {scale} decimal places; at most {MAX_SCALE} are allowed"
    integer_digits = max(number.adjusted() + 1, 0) if number else 0
    if integer_digits > MAX_INTEGER_DIGITS:
        return None, (f"has {integer_digits} digits before the point; at most "
                      f"{MAX_INTEGER_DIGITS} fit DECIMAL(38,12)")
    return number, None


def _decimal_places(value: Decimal) -> int:
    """Decimal places once trailing zeros are dropped (``1.500`` has 1, ``100`` has 0)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return 0
    kept = list(digits)
    while exponent < 0 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    return -exponent if exponent < 0 else 0


def _plain(value: Decimal | None) -> str | None:
    """A Decimal as plain text (never an exponent), for exact transfer into SQL."""
    return None if value is None else format(value, "f")


def _fmt(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def parse(catalog: Catalog, currencies: Mapping[str, int] | None = None) -> Parsed:
    """The catalog as typed records (invalid cells become None) plus the per-row problems."""
    currencies = read_currencies() if currencies is None else currencies
    problems: list[Problem] = list(catalog.read_problems)

    customers = []
    for row in catalog.customers:
        f = _Fields(catalog, "customers", row, row["customer_id"], problems)
        customer_id = f.text("customer_id", required=True)
        if customer_id is not None and not CUSTOMER_ID_RE.fullmatch(customer_id):
            f.problem("customer_id", f"{customer_id!r} is not a valid customer_id: use 1-64 of "
                      "A-Z a-z 0-9 _ . - (it appears in invoice ids, file names and URLs)")
        currency = f.currency(currencies)
        active_from, from_ok = f.date("active_from")
        active_to, to_ok = f.date("active_to")
        if active_from and active_to and active_to <= active_from:
            f.problem("active_to", f"active_to ({active_to}) must be after active_from "
                      f"({active_from}); active_to is exclusive")
        customers.append(Customer(row.row, customer_id, f.text("customer_name"), currency,
                                  active_from, active_to))

    meters = []
    for row in catalog.meters:
        f = _Fields(catalog, "meters", row, row["meter_id"], problems)
        meter_id = f.text("meter_id", required=True)
        aggregation = f.text("aggregation", required=True)
        if aggregation is not None and aggregation not in AGGREGATIONS:
            f.problem("aggregation", f"aggregation {aggregation!r} is not one of "
                      f"{', '.join(AGGREGATIONS)}")
            aggregation = None
        unique_dimension = f.text("unique_dimension")
        if aggregation == "unique_count" and unique_dimension is None \
                and catalog.has_column("meters", "unique_dimension"):
            f.problem("unique_dimension", "a unique_count meter needs unique_dimension: the "
                      "dimension whose distinct values it counts (e.g. user_id)")
        elif aggregation not in (None, "unique_count") and unique_dimension is not None:
            f.problem("unique_dimension", f"unique_dimension ({unique_dimension}) is only for "
                      f"unique_count meters, not {aggregation}; leave it empty")
        meters.append(Meter(row.row, meter_id, f.text("display_name"), f.text("unit"),
                            aggregation, unique_dimension))

    items = []
    for row in catalog.product_items:
        f = _Fields(catalog, "product_items", row, row["product_item_id"], problems)
        item_id = f.text("product_item_id", required=True)
        meter_id = f.text("meter_id", required=True)
        dimension_filter = f.text("dimension_filter")
        key = value = None
        filter_ok = True
        if dimension_filter is not None:
            key, sep, value = dimension_filter.partition("=")
            if not sep or not key:
                f.problem("dimension_filter", f"dimension_filter {dimension_filter!r} is not "
                          "key=value (e.g. region=eu)")
                key = value = None
                filter_ok = False
        items.append(ProductItem(row.row, item_id, f.text("display_name"), meter_id,
                                 dimension_filter, key, value, filter_ok))

    rates = []
    for row in catalog.rates:
        f = _Fields(catalog, "rates", row, row["rate_id"], problems)
        rate_id = f.text("rate_id", required=True)
        item_id = f.text("product_item_id", required=True)
        currency = f.currency(currencies)
        model = f.text("pricing_model", required=True)
        if model is not None and model not in PRICING_MODELS:
            f.problem("pricing_model", f"pricing_model {model!r} is not one of "
                      f"{', '.join(PRICING_MODELS)}")
            model = None
        unit_price, _ = f.decimal("unit_price")
        package_size, _ = f.decimal("package_size", positive=True)
        free_units, _ = f.decimal("free_units")
        if model in ("per_unit", "package") and row["unit_price"] is None:
            what = "the price of one package" if model == "package" else "the price per unit"
            f.problem("unit_price", f"a {model} rate needs unit_price ({what})")
        if model in TIERED_MODELS and row["unit_price"] is not None:
            f.problem("unit_price", f"unit_price ({row['unit_price']}) on a {model} rate: its "
                      "tiers in rate_tiers.csv carry the prices; leave it empty")
        if model == "package" and row["package_size"] is None:
            f.problem("package_size", "a package rate needs package_size (> 0): the units in "
                      "one package")
        if model not in (None, "package") and row["package_size"] is not None:
            f.problem("package_size", f"package_size ({row['package_size']}) on a {model} "
                      "rate; it is only for package rates: leave it empty")
        if model in TIERED_MODELS and free_units is not None and free_units != 0:
            f.problem("free_units", f"free_units ({row['free_units']}) on a {model} rate; "
                      "remove it or give tier 1 a zero price")
        effective_from, from_ok = f.date("effective_from", required=True)
        effective_to, to_ok = f.date("effective_to")
        dates_ok = from_ok and to_ok and effective_from is not None
        if effective_from and effective_to and effective_to <= effective_from:
            f.problem("effective_to", f"effective_to ({effective_to}) must be after "
                      f"effective_from ({effective_from}); effective_to is exclusive")
            dates_ok = False
        rates.append(Rate(row.row, rate_id, item_id, f.text("customer_id"), currency, model,
                          unit_price, package_size, free_units, effective_from, effective_to,
                          dates_ok))

    tiers = []
    for row in catalog.rate_tiers:
        key = f"{row['rate_id'] or '?'} tier {row['tier'] or '?'}"
        f = _Fields(catalog, "rate_tiers", row, key, problems)
        rate_id = f.text("rate_id", required=True)
        tier_text = f.text("tier", required=True)
        tier = None
        if tier_text is not None:
            if TIER_RE.fullmatch(tier_text) and int(tier_text) >= 1:
                tier = int(tier_text)
            else:
                f.problem("tier", f"tier {tier_text!r} is not a whole number >= 1")
        up_to, up_to_ok = f.decimal("up_to", positive=True)
        unit_price, _ = f.decimal("unit_price", required=True)
        flat_fee, _ = f.decimal("flat_fee")
        tiers.append(RateTier(row.row, rate_id, tier, up_to, unit_price, flat_fee, up_to_ok))

    commitments = []
    for row in catalog.commitments:
        f = _Fields(catalog, "commitments", row, row["customer_id"], problems)
        customer_id = f.text("customer_id", required=True)
        minimum, _ = f.decimal("minimum_amount", required=True)
        currency = f.currency(currencies)
        if minimum is not None and currency is not None \
                and _decimal_places(minimum) > currencies[currency]:
            f.problem("minimum_amount", f"minimum_amount ({row['minimum_amount']}) has more "
                      f"decimal places than {currency}'s minor unit ({currencies[currency]})")
        effective_from, from_ok = f.date("effective_from", required=True)
        effective_to, to_ok = f.date("effective_to")
        dates_ok = from_ok and to_ok and effective_from is not None
        if effective_from and effective_to and effective_to <= effective_from:
            f.problem("effective_to", f"effective_to ({effective_to}) must be after "
                      f"effective_from ({effective_from}); effective_to is exclusive")
            dates_ok = False
        commitments.append(Commitment(row.row, customer_id, minimum, currency, effective_from,
                                      effective_to, dates_ok))

    return Parsed(customers, meters, items, rates, tiers, commitments, problems)


# --------------------------------------------------------------------------- validation
def validate(catalog: Catalog, currencies: Mapping[str, int] | None = None) -> list[Problem]:
    """Every problem of the catalog (CONTRACT.md section 3), period-independent ones only,
    sorted by file (in catalog order) and row."""
    parsed = parse(catalog, currencies)
    problems = parsed.problems
    _check_duplicates(parsed, problems)
    _check_references(parsed, problems)
    _check_item_filters(parsed, problems)
    _check_rate_overlaps(parsed, problems)
    _check_tiers(parsed, problems)
    _check_commitment_overlaps(parsed, problems)
    return _sorted(problems)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (FILE_ORDER.get(p.file, 99),
                                           p.row if p.row is not None else 0))


def _check_duplicates(parsed: Parsed, problems: list[Problem]) -> None:
    def dupes(records, key_of, file, column, label=None):
        first: dict = {}
        for rec in records:
            key = key_of(rec)
            if key is None or (isinstance(key, tuple) and None in key):
                continue
            if key in first:
                shown = label(rec) if label else key
                problems.append(Problem(file, rec.row, column,
                                        f"duplicate {column} {shown} (also on row {first[key]})",
                                        shown))
            else:
                first[key] = rec.row

    dupes(parsed.customers, lambda r: r.customer_id, "customers.csv", "customer_id")
    dupes(parsed.meters, lambda r: r.meter_id, "meters.csv", "meter_id")
    dupes(parsed.product_items, lambda r: r.product_item_id, "product_items.csv",
          "product_item_id")
    dupes(parsed.rates, lambda r: r.rate_id, "rates.csv", "rate_id")
    dupes(parsed.rate_tiers, lambda r: (r.rate_id, r.tier), "rate_tiers.csv", "tier",
          lambda r: f"{r.rate_id} tier {r.tier}")


def _check_references(parsed: Parsed, problems: list[Problem]) -> None:
    meters = {m.meter_id for m in parsed.meters if m.meter_id}
    items = {i.product_item_id for i in parsed.product_items if i.product_item_id}
    customers: dict[str, Customer] = {}
    for c in parsed.customers:
        if c.customer_id:
            customers.setdefault(c.customer_id, c)
    rates: dict[str, Rate] = {}
    for r in parsed.rates:
        if r.rate_id:
            rates.setdefault(r.rate_id, r)

    for item in parsed.product_items:
        if item.meter_id and item.meter_id not in meters:
            problems.append(Problem("product_items.csv", item.row, "meter_id",
                                    f"unknown meter {item.meter_id} (not in meters.csv)",
                                    item.product_item_id))
    for rate in parsed.rates:
        if rate.product_item_id and rate.product_item_id not in items:
            problems.append(Problem("rates.csv", rate.row, "product_item_id",
                                    f"unknown product item {rate.product_item_id} "
                                    "(not in product_items.csv)", rate.rate_id))
        if rate.customer_id:
            customer = customers.get(rate.customer_id)
            if customer is None:
                problems.append(Problem("rates.csv", rate.row, "customer_id",
                                        f"unknown customer {rate.customer_id} "
                                        "(not in customers.csv)", rate.rate_id))
            elif customer.currency and rate.currency and customer.currency != rate.currency:
                problems.append(Problem(
                    "rates.csv", rate.row, "currency",
                    f"a rate in {rate.currency} for a {customer.currency} customer "
                    f"({rate.customer_id}); a customer is always priced in its own currency",
                    rate.rate_id))
    tiers_by_rate: dict[str, int] = Counter(t.rate_id for t in parsed.rate_tiers if t.rate_id)
    for tier in parsed.rate_tiers:
        if not tier.rate_id:
            continue
        rate = rates.get(tier.rate_id)
        key = f"{tier.rate_id} tier {tier.tier if tier.tier is not None else '?'}"
        if rate is None:
            problems.append(Problem("rate_tiers.csv", tier.row, "rate_id",
                                    f"unknown rate {tier.rate_id} (not in rates.csv)", key))
        elif rate.pricing_model in ("per_unit", "package"):
            problems.append(Problem("rate_tiers.csv", tier.row, "rate_id",
                                    f"{tier.rate_id} is a {rate.pricing_model} rate; only "
                                    "graduated and volume rates have tiers", key))
    for rate in parsed.rates:
        if rate.pricing_model in TIERED_MODELS and rate.rate_id \
                and not tiers_by_rate.get(rate.rate_id):
            problems.append(Problem("rates.csv", rate.row, "pricing_model",
                                    f"a {rate.pricing_model} rate needs tiers: no row of "
                                    f"rate_tiers.csv has rate_id {rate.rate_id}", rate.rate_id))
    for commitment in parsed.commitments:
        if not commitment.customer_id:
            continue
        customer = customers.get(commitment.customer_id)
        if customer is None:
            problems.append(Problem("commitments.csv", commitment.row, "customer_id",
                                    f"unknown customer {commitment.customer_id} "
                                    "(not in customers.csv)", commitment.customer_id))
        elif customer.currency and commitment.currency \
                and customer.currency != commitment.currency:
            problems.append(Problem("commitments.csv", commitment.row, "currency",
                                    f"a commitment in {commitment.currency} for a "
                                    f"{customer.currency} customer", commitment.customer_id))


def _describe_filter(item: ProductItem) -> str:
    return f"{item.product_item_id} ({item.dimension_filter or 'no filter'})"


def _check_item_filters(parsed: Parsed, problems: list[Problem]) -> None:
    """Items of one meter must never match the same event: one item without a filter, or
    items filtering the same key on different values. Reported on the later row of each pair."""
    by_meter: dict[str, list[ProductItem]] = defaultdict(list)
    for item in parsed.product_items:
        if item.meter_id and item.product_item_id and item.filter_ok:
            by_meter[item.meter_id].append(item)
    for meter_id, items in by_meter.items():
        for j, later in enumerate(items):
            for earlier in items[:j]:
                if earlier.product_item_id == later.product_item_id:
                    continue  # a duplicate id, reported as such
                if earlier.filter_key is None or later.filter_key is None:
                    why = ""
                elif earlier.filter_key != later.filter_key:
                    why = (f" (an event with both {earlier.filter_key} and {later.filter_key} "
                           "matches both; filter every item of a meter on the same key)")
                elif earlier.filter_value == later.filter_value:
                    why = ""
                else:
                    continue
                problems.append(Problem(
                    "product_items.csv", later.row, "dimension_filter",
                    f"{_describe_filter(earlier)} and {_describe_filter(later)} are items of "
                    f"meter {meter_id} that can match the same event{why}",
                    later.product_item_id))


def _overlap_start(a_from: date, a_to: date | None, b_from: date, b_to: date | None
                   ) -> date | None:
    start = max(a_from, b_from)
    ends = [d for d in (a_to, b_to) if d is not None]
    if ends and start >= min(ends):
        return None
    return start


def _check_rate_overlaps(parsed: Parsed, problems: list[Problem]) -> None:
    groups: dict[tuple, list[Rate]] = defaultdict(list)
    for rate in parsed.rates:
        if rate.dates_ok and rate.product_item_id and rate.currency and rate.rate_id:
            groups[(rate.product_item_id, rate.customer_id, rate.currency)].append(rate)
    for (item_id, customer_id, currency), rates in groups.items():
        rates.sort(key=lambda r: r.row)
        for j, b in enumerate(rates):
            for a in rates[:j]:
                assert a.effective_from and b.effective_from
                start = _overlap_start(a.effective_from, a.effective_to,
                                       b.effective_from, b.effective_to)
                if start is None:
                    continue
                who = (f"two list rates for item {item_id} in {currency}" if customer_id is None
                       else f"two rates of customer {customer_id} for item {item_id} in "
                            f"{currency}")
                first, second = sorted((a, b), key=lambda r: (r.effective_from, r.row))
                hint = (f"close {first.rate_id} with effective_to {second.effective_from}"
                        if first.effective_from < second.effective_from
                        else "keep one of them")
                problems.append(Problem(
                    "rates.csv", a.row, "effective_from/effective_to",
                    f"{who} both in effect from {start}; {hint}",
                    f"{a.rate_id}, {b.rate_id}", other_rows=(b.row,)))


def _check_commitment_overlaps(parsed: Parsed, problems: list[Problem]) -> None:
    groups: dict[str, list[Commitment]] = defaultdict(list)
    for c in parsed.commitments:
        if c.dates_ok and c.customer_id:
            groups[c.customer_id].append(c)
    for customer_id, commitments in groups.items():
        for j, b in enumerate(commitments):
            for a in commitments[:j]:
                assert a.effective_from and b.effective_from
                start = _overlap_start(a.effective_from, a.effective_to,
                                       b.effective_from, b.effective_to)
                if start is not None:
                    problems.append(Problem(
                        "commitments.csv", a.row, "effective_from/effective_to",
                        f"two commitments of customer {customer_id} both in effect from "
                        f"{start}; a customer has at most one commitment at a time",
                        customer_id, other_rows=(b.row,)))


def _check_tiers(parsed: Parsed, problems: list[Problem]) -> None:
    models: dict[str, str | None] = {}
    for r in parsed.rates:
        if r.rate_id:
            models.setdefault(r.rate_id, r.pricing_model)
    by_rate: dict[str, list[RateTier]] = defaultdict(list)
    for tier in parsed.rate_tiers:
        if tier.rate_id and models.get(tier.rate_id) in TIERED_MODELS:
            by_rate[tier.rate_id].append(tier)
    for rate_id, tiers in by_rate.items():
        if any(t.tier is None for t in tiers):
            continue  # an invalid tier number is already reported
        numbers = sorted(t.tier for t in tiers if t.tier is not None)
        n = len(tiers)
        if numbers != list(range(1, n + 1)):
            if len(set(numbers)) == len(numbers):  # duplicates are reported as such
                missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
                first = min(tiers, key=lambda t: t.row)
                detail = (f"tier {', '.join(map(str, missing))} missing" if missing
                          else "they do not start at 1")
                problems.append(Problem(
                    "rate_tiers.csv", first.row, "tier",
                    f"the tiers of {rate_id} are numbered {', '.join(map(str, numbers))} "
                    f"({detail}); number them 1..{n} without gaps",
                    f"{rate_id} tier {first.tier}"))
            continue
        ordered = sorted(tiers, key=lambda t: t.tier or 0)
        if any(not t.up_to_ok for t in ordered):
            continue  # a bad up_to is already reported
        previous: RateTier | None = None
        for t in ordered:
            key = f"{rate_id} tier {t.tier}"
            last = t.tier == n
            if t.up_to is None and not last:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"up_to is empty but tier {t.tier} is not the last of {rate_id}'s {n} "
                    "tiers; only the last tier is open-ended", key))
            if t.up_to is not None and last:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"the last tier of {rate_id} has up_to {_fmt(t.up_to)}; the last tier "
                    f"must be open-ended (empty up_to), or quantities above {_fmt(t.up_to)} "
                    "have no price", key))
            if previous is not None and previous.up_to is not None and t.up_to is not None \
                    and t.up_to <= previous.up_to:
                problems.append(Problem(
                    "rate_tiers.csv", t.row, "up_to",
                    f"up_to ({_fmt(t.up_to)}) is not above tier {previous.tier}'s up_to "
                    f"({_fmt(previous.up_to)}): the tiers overlap; up_to must strictly "
                    "increase", key))
            if t.up_to is not None:
                previous = t


# --------------------------------------------------------------------------- ingest
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


# --------------------------------------------------------------------------- period checks
PERIOD_SQL = """
with events as (
    select customer_id, meter_id, dimensions, event_id
    from raw.usage_events
    where event_at >= ?::timestamptz and event_at < ?::timestamptz
),
item_usage as (
    select e.customer_id, i.product_item_id,
           count(*) as event_count, min(e.event_id) as first_event_id
    from events as e
    join _meterline_check_items as i
      on e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
    group by all
)
select u.customer_id, c.currency, u.product_item_id, u.event_count, u.first_event_id
from item_usage as u
join _meterline_check_customers as c using (customer_id)
where not exists (
        select 1 from _meterline_check_rates as r
        where r.product_item_id = u.product_item_id
          and r.currency = c.currency
          and (r.customer_id is null or r.customer_id = u.customer_id))
order by u.customer_id, u.product_item_id
"""

# Landed events of any month whose customer or meter is no longer in the catalog: every month's
# meter usage keeps them, so billing any month needs the rows back.
REMOVED_SQL = """
with pairs as materialized (  -- one pass over the landed events
    select customer_id, meter_id, count(*) as n, min(event_id) as first_event_id,
           min(event_at) as first_at, max(event_at) as last_at
    from raw.usage_events
    group by customer_id, meter_id
),
removed as (
    select 'customers.csv' as file, 'customer_id' as field, customer_id as id, pairs.*
    from pairs
    where not exists (select 1 from _meterline_check_customers as c
                      where c.customer_id = pairs.customer_id)
    union all
    select 'meters.csv', 'meter_id', meter_id, pairs.*
    from pairs
    where not exists (select 1 from _meterline_check_meters as m
                      where m.meter_id = pairs.meter_id)
)
select file, field, id, sum(n), min(first_event_id), strftime(min(first_at), '%Y-%m'),
       strftime(max(last_at), '%Y-%m')
from removed
group by file, field, id
order by file, id
"""


def period_problems(con: duckdb.DuckDBPyConnection, catalog: Catalog, period_start: date,
                    currencies: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems of the period being billed: a customer with landed usage of an item in
    [period_start, next month) (UTC) and no rate in effect on period_start in its currency
    (neither its own nor a list price); also landed events (of any month) whose customer is no
    longer in customers.csv or whose meter is no longer in meters.csv; and arithmetic that
    would overflow DECIMAL(38,12) in the build (``_overflow_problems``: a `sum` meter's total
    in any month, the package count of the periods this bill prices), named by customer and
    meter or item.

    Set-based over raw.usage_events; the catalog goes in as temp tables, so ``catalog.*``
    need not be loaded (and a read-only connection works)."""
    if period_start.day != 1:
        raise ValueError(f"period_start {period_start} is not the first day of a month")
    if not table_exists(con, "raw", "usage_events"):
        return []
    parsed = parse(catalog, currencies)
    items = [(i.product_item_id, i.meter_id, i.filter_key, i.filter_value)
             for i in parsed.product_items
             if i.product_item_id and i.meter_id and i.filter_ok]
    customers = [(c.customer_id, c.currency) for c in parsed.customers if c.customer_id]
    meters = [(m.meter_id,) for m in parsed.meters if m.meter_id]
    rates = [(r.product_item_id, r.customer_id, r.currency) for r in parsed.rates
             if r.product_item_id and r.currency and r.in_effect(period_start)]
    con.execute("create or replace temp table _meterline_check_items (product_item_id varchar,"
                " meter_id varchar, filter_key varchar, filter_value varchar)")
    con.execute("create or replace temp table _meterline_check_customers ("
                "customer_id varchar, currency varchar)")
    con.execute("create or replace temp table _meterline_check_rates (product_item_id varchar,"
                " customer_id varchar, currency varchar)")
    con.execute("create or replace temp table _meterline_check_meters (meter_id varchar)")
    try:
        for table, rows, width in (("_meterline_check_items", items, 4),
                                   ("_meterline_check_customers", customers, 2),
                                   ("_meterline_check_rates", rates, 3),
                                   ("_meterline_check_meters", meters, 1)):
            if rows:
                placeholders = ", ".join("?" * width)
                con.executemany(f"insert into temp.{table} values ({placeholders})", rows)
        end = next_period(period_start)
        found = con.execute(PERIOD_SQL, [f"{period_start.isoformat()} 00:00:00+00",
                                         f"{end.isoformat()} 00:00:00+00"]).fetchall()
        removed = con.execute(REMOVED_SQL).fetchall()
        overflows = _overflow_problems(con, parsed, period_start)
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
    for customer_id, currency, item_id, count, first_event in found:
        events = f"{count} event{'s' if count != 1 else ''}, e.g. {first_event}"
        problems.append(Problem(
            "rates.csv", None, "product_item_id",
            f"{customer_id} ({currency or 'no valid currency'}) has {period} usage of "
            f"item {item_id} ({events}) "
            f"and no rate in effect on {period_start} in {currency} (no list price and no "
            f"rate of {customer_id}); add one", f"{item_id}, {customer_id}"))
    return problems


# --------------------------------------------------------------------------- overflow checks
# CONTRACT.md section 4: arithmetic that would overflow stops billing naming the customer and
# item (or meter), never an engine error naming nobody. DECIMAL(38,12) holds |x| < 10^26, i.e.
# 10^38 units of 10^-12. Two places in the build can overflow with valid events and catalog:
# 1. The usage aggregates (int_meter_usage_aggregated, int_item_usage_aggregated,
#    int_unbilled_usage_aggregated) sum a `sum` meter's values per (customer, meter or item,
#    month) for EVERY month, so an overflowing month stops the bill of every month. DuckDB
#    raises when the total is 10^26 or more ("Overflow in SUM of DECIMAL") and also when a
#    running total does, in its 128-bit accumulator of 10^-12 units, at (2^127 - 1) x 10^-12 =
#    1.7e26 ("Overflow in HUGEINT addition"), in an order it chooses: so the positive values
#    (and the negative ones) of a (customer, meter, month) must add up to less than that.
# 2. macro ceil_divide_exact (package pricing) checks its estimate n exactly with
#    (n - 1) * package_size and n * package_size, which overflow DECIMAL(38,12) when
#    quantity + package_size is near 10^26. (exact_line_amount, the quantity x unit_price
#    product, never overflows: its guards name the line first.)
# Both checks are exact: a DOUBLE estimate picks the candidates (same-sign sums, so its relative
# error stays below n x 2^-53, far below the 10^-6 margin for any realistic number of events),
# then integer and fractional parts summed apart (no overflow) decide; the package check
# evaluates the macro's own expressions under try().
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

# Exact sums for the candidates, per month, item (NULL: unbilled) and sign, in integer parts
# and 10^-12 units of the fractional parts: neither can overflow.
SUM_EXACT_SQL = """
with events as (
    select e.customer_id, e.meter_id, e.event_id, e.value, e.dimensions,
           cast(date_trunc('month', e.event_at at time zone 'UTC') as date) as period_start
    from raw.usage_events as e
    join _meterline_check_overflow_groups as g
      on e.customer_id = g.customer_id and e.meter_id = g.meter_id
)
select ev.customer_id, ev.meter_id, ev.period_start, i.product_item_id, count(*),
       coalesce(sum(case when ev.value > 0 then trunc(ev.value) end), 0),
       coalesce(sum(case when ev.value > 0
                         then cast((ev.value - trunc(ev.value)) * 1000000000000 as bigint) end), 0),
       coalesce(sum(case when ev.value < 0 then trunc(ev.value) end), 0),
       coalesce(sum(case when ev.value < 0
                         then cast((ev.value - trunc(ev.value)) * 1000000000000 as bigint) end), 0),
       arg_max(ev.event_id, abs(ev.value)), max(abs(ev.value))
from events as ev
left join _meterline_check_items as i
  on ev.meter_id = i.meter_id
 and (i.filter_key is null
      or json_extract_string(ev.dimensions,
             '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
group by all
order by all
"""

# The package count check of int_usage_rated (macro duckdb__ceil_divide_exact), with the same
# types and expressions, for each (customer, package-priced item, usage period) the bill prices:
# the billed period, and the published periods it may restate ({restated}: events landed after
# their period was published re-price every item of that customer and period).
PACKAGE_SQL = """
with {restated}
package_items as (
    select distinct i.* from _meterline_check_items as i
    join _meterline_check_price_rates as r
      on r.product_item_id = i.product_item_id and r.pricing_model = 'package'
),
matched as (
    select e.customer_id, i.product_item_id, e.event_id, e.event_at, e.value, m.aggregation,
           cast(date_trunc('month', e.event_at at time zone 'UTC') as date) as usage_period_start,
           case when m.unique_dimension is not null
                then json_extract_string(e.dimensions, '$."' || replace(replace(
                         m.unique_dimension, '\\', '\\\\'), '"', '\\"') || '"') end as unique_value
    from raw.usage_events as e
    join package_items as i
      on e.meter_id = i.meter_id
     and (i.filter_key is null
          or json_extract_string(e.dimensions,
                 '/' || replace(replace(i.filter_key, '~', '~0'), '/', '~1')) = i.filter_value)
    join _meterline_check_meter_aggs as m on m.meter_id = e.meter_id
    where (e.event_at >= ?::timestamptz and e.event_at < ?::timestamptz)
          {or_restated}
),
ranked as (
    select *, row_number() over (partition by customer_id, product_item_id, usage_period_start
                                 order by event_at desc, event_id desc) as latest_rank
    from matched
),
aggregated as (
    select customer_id, product_item_id, usage_period_start, any_value(aggregation) as aggregation,
           count(*) as event_count,
           sum(case when aggregation = 'sum' then trunc(value) end) as int_sum,
           sum(case when aggregation = 'sum'
                    then cast((value - trunc(value)) * 1000000000000 as bigint) end) as frac_sum,
           count(distinct unique_value) as distinct_count,
           max(value) as max_value,
           max(case when latest_rank = 1 then value end) as latest_value
    from ranked
    group by customer_id, product_item_id, usage_period_start
),
quantities as (
    select *,
           cast(case aggregation
               when 'sum' then try(cast(int_sum as decimal(38, 12))
                                   + cast(frac_sum as decimal(38, 0))
                                     * cast(0.000000000001 as decimal(38, 12)))
               when 'count' then event_count
               when 'unique_count' then distinct_count
               when 'max' then max_value
               when 'latest' then latest_value
           end as decimal(38, 12)) as quantity
    from aggregated
),
rated as (
    select q.*, r.rate_id, r.rate_row, r.pricing_model, r.package_size,
           r.free_units
    from quantities as q
    join _meterline_check_customers as c on c.customer_id = q.customer_id
    join _meterline_check_price_rates as r
      on r.product_item_id = q.product_item_id and r.currency = c.currency
     and (r.customer_id is null or r.customer_id = q.customer_id)
     and r.effective_from <= q.usage_period_start
     and (r.effective_to is null or q.usage_period_start < r.effective_to)
    qualify row_number() over (
        partition by q.customer_id, q.product_item_id, q.usage_period_start
        order by case when r.customer_id is not null then 0 else 1 end, r.rate_id) = 1
),
counted as (
    select *,
           case when chargeable_quantity / package_size < 1000000000000000
                then try(cast(ceil(chargeable_quantity / package_size) as decimal(38, 0)))
           end as estimate
    from (
        select *,
               case when billable_quantity > free_units then billable_quantity - free_units
                    else cast(0 as decimal(38, 12)) end as chargeable_quantity
        from (select *, case when quantity > 0 then quantity else 0 end as billable_quantity
              from rated
              where pricing_model = 'package' and package_size > 0 and quantity is not null)
    )
)
select customer_id, product_item_id, usage_period_start, rate_id, rate_row, quantity,
       package_size, chargeable_quantity
from counted
where estimate is not null
  and (try((estimate - 1) * (package_size)) is null
       or ((estimate - 1) * (package_size) < chargeable_quantity
           and try(estimate * (package_size)) is null))
order by customer_id, product_item_id, usage_period_start
"""

RESTATED_SQL = """restated as (
    select distinct e.customer_id, p.billing_period_start as usage_period_start
    from raw.usage_events as e
    join billing.published_periods as p
      on cast(date_trunc('month', e.event_at at time zone 'UTC') as date) = p.billing_period_start
    where p.billing_period_start < ?::date and e.landed_at > p.published_at
),"""
OR_RESTATED_SQL = """or (e.event_at < ?::timestamptz and exists (
              select 1 from restated as r
              where r.customer_id = e.customer_id and r.usage_period_start
                  = cast(date_trunc('month', e.event_at at time zone 'UTC') as date)))"""


def _plain_units(units: int) -> str:
    """10^-12 units as a plain decimal (``180000000000000000000000000``, ``-0.5``)."""
    text = format((Decimal(units) / _UNITS).normalize(), "f") if units else "0"
    return text


def _overflow_problems(con: duckdb.DuckDBPyConnection, parsed: Parsed,
                       period_start: date) -> list[Problem]:
    """The overflow problems of billing ``period_start`` (see the comment above); called by
    period_problems while its temp tables (items, customers) exist."""
    meters = [(m.meter_id, m.aggregation, m.unique_dimension) for m in parsed.meters
              if m.meter_id and m.aggregation]
    rates = [(r.rate_id, r.row, r.product_item_id, r.customer_id, r.currency, r.pricing_model,
              _plain(r.package_size), _plain(r.free_units if r.free_units is not None
                                             else Decimal(0)),
              _iso(r.effective_from), _iso(r.effective_to))
             for r in parsed.rates
             if r.rate_id and r.product_item_id and r.currency and r.pricing_model
             and r.dates_ok and r.effective_from is not None]
    tables = ("_meterline_check_meter_aggs", "_meterline_check_price_rates",
              "_meterline_check_overflow_groups")
    con.execute("create or replace temp table _meterline_check_meter_aggs (meter_id varchar,"
                " aggregation varchar, unique_dimension varchar)")
    con.execute("create or replace temp table _meterline_check_price_rates (rate_id varchar,"
                " rate_row integer, product_item_id varchar, customer_id varchar,"
                " currency varchar, pricing_model varchar, package_size decimal(38, 12),"
                " free_units decimal(38, 12), effective_from date, effective_to date)")
    con.execute("create or replace temp table _meterline_check_overflow_groups ("
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
            sums = con.execute(SUM_EXACT_SQL).fetchall()
        restated = table_exists(con, "billing", "published_periods") and con.execute(
            "select count(*) from billing.published_periods where billing_period_start < ?",
            [period_start]).fetchone()[0] > 0
        start, end = (f"{day.isoformat()} 00:00:00+00"
                      for day in (period_start, next_period(period_start)))
        sql = PACKAGE_SQL.format(restated=RESTATED_SQL if restated else "",
                                 or_restated=OR_RESTATED_SQL if restated else "")
        params = ([period_start.isoformat()] if restated else []) + [start, end] \
            + ([start] if restated else [])
        packages = con.execute(sql, params).fetchall()
    finally:
        for table in tables:
            con.execute(f"drop table if exists temp.{table}")
    return _sum_overflow_problems(sums) + _package_overflow_problems(packages)


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
                f"{format(largest_value.normalize(), 'f')})")
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


def _package_overflow_problems(rows: list[tuple]) -> list[Problem]:
    problems = []
    for customer_id, item_id, month, rate_id, rate_row, quantity, size, chargeable in rows:
        bound = (Decimal(10) ** 26 - Decimal(chargeable)) / 2
        problems.append(Problem(
            "rates.csv", rate_row, "package_size",
            f"customer {customer_id}, item {item_id}, period {month:%Y-%m}: rate {rate_id} "
            f"prices {format(Decimal(quantity).normalize(), 'f')} units in packages of "
            f"{format(Decimal(size).normalize(), 'f')}, and the exact package count "
            f"(packages x package_size compared with the units) would overflow DECIMAL(38,12) "
            f"(10^26 or more); give the rate a package_size below "
            f"{format(bound.quantize(Decimal(1)), 'f')} (a smaller package, priced per package "
            f"accordingly, from a new rate row: close this one with effective_to)",
            f"{rate_id}, {customer_id}"))
    return problems


# --------------------------------------------------------------------------- loading
CATALOG_DDL = {
    "customers": """create or replace table catalog.customers (
        customer_id varchar not null primary key, customer_name varchar,
        currency varchar not null, active_from date, active_to date)""",
    "meters": """create or replace table catalog.meters (
        meter_id varchar not null primary key, display_name varchar, unit varchar,
        aggregation varchar not null, unique_dimension varchar)""",
    "product_items": """create or replace table catalog.product_items (
        product_item_id varchar not null primary key, display_name varchar,
        meter_id varchar not null, dimension_filter varchar)""",
    "rates": """create or replace table catalog.rates (
        rate_id varchar not null primary key, product_item_id varchar not null,
        customer_id varchar, currency varchar not null, pricing_model varchar not null,
        unit_price decimal(38, 12), package_size decimal(38, 12),
        free_units decimal(38, 12) not null, effective_from date not null, effective_to date)""",
    "rate_tiers": """create or replace table catalog.rate_tiers (
        rate_id varchar not null, tier integer not null, up_to decimal(38, 12),
        unit_price decimal(38, 12) not null, flat_fee decimal(38, 12) not null,
        primary key (rate_id, tier))""",
    "commitments": """create or replace table catalog.commitments (
        customer_id varchar not null, minimum_amount decimal(38, 12) not null,
        currency varchar not null, effective_from date not null, effective_to date)""",
}

CATALOG_INSERT = {
    "customers": "?, ?, ?, ?::date, ?::date",
    "meters": "?, ?, ?, ?, ?",
    "product_items": "?, ?, ?, ?",
    "rates": "?, ?, ?, ?, ?, ?::decimal(38, 12), ?::decimal(38, 12), ?::decimal(38, 12), "
             "?::date, ?::date",
    "rate_tiers": "?, ?::integer, ?::decimal(38, 12), ?::decimal(38, 12), ?::decimal(38, 12)",
    "commitments": "?, ?::decimal(38, 12), ?, ?::date, ?::date",
}


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def write_catalog(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                  currencies: Mapping[str, int] | None = None) -> None:
    """Replace the six ``catalog.*`` tables with the catalog, in one transaction.

    Refuses (``CatalogInvalid``) a catalog that does not validate. Decimals go in as plain
    text and are cast in SQL; empty ``free_units``/``flat_fee`` become 0."""
    problems = validate(catalog, currencies)
    if problems:
        raise CatalogInvalid(problems)
    parsed = parse(catalog, currencies)
    zero = Decimal(0)
    data: dict[str, list[tuple]] = {
        "customers": [(c.customer_id, c.customer_name, c.currency, _iso(c.active_from),
                       _iso(c.active_to)) for c in parsed.customers],
        "meters": [(m.meter_id, m.display_name, m.unit, m.aggregation, m.unique_dimension)
                   for m in parsed.meters],
        "product_items": [(i.product_item_id, i.display_name, i.meter_id, i.dimension_filter)
                          for i in parsed.product_items],
        "rates": [(r.rate_id, r.product_item_id, r.customer_id, r.currency, r.pricing_model,
                   _plain(r.unit_price), _plain(r.package_size),
                   _plain(r.free_units if r.free_units is not None else zero),
                   _iso(r.effective_from), _iso(r.effective_to)) for r in parsed.rates],
        "rate_tiers": [(t.rate_id, t.tier, _plain(t.up_to), _plain(t.unit_price),
                        _plain(t.flat_fee if t.flat_fee is not None else zero))
                       for t in parsed.rate_tiers],
        "commitments": [(c.customer_id, _plain(c.minimum_amount), c.currency,
                         _iso(c.effective_from), _iso(c.effective_to))
                        for c in parsed.commitments],
    }
    con.execute("begin transaction")
    try:
        con.execute("create schema if not exists catalog")
        for table, ddl in CATALOG_DDL.items():
            con.execute(ddl)
            if data[table]:
                con.executemany(f"insert into catalog.{table} select {CATALOG_INSERT[table]}",
                                data[table])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


# --------------------------------------------------------------------------- summary
def summary(catalog: Catalog, on: date, currencies: Mapping[str, int] | None = None) -> str:
    """A plain-text overview for ``meterline catalog``: customers by currency, meters by
    aggregation, items, the rates in effect on ``on`` per item and currency, commitments."""
    p = parse(catalog, currencies)
    lines: list[str] = []
    by_currency = Counter(c.currency for c in p.customers if c.currency)
    active = [c for c in p.customers
              if (c.active_from is None or c.active_from <= on)
              and (c.active_to is None or on < c.active_to)]
    lines.append(f"{len(p.customers)} customers ("
                 + ", ".join(f"{cur} {n}" for cur, n in sorted(by_currency.items()))
                 + f"); {len(active)} active on {on}")
    not_active = sorted(c.customer_id or "?" for c in p.customers if c not in active)
    if not_active:
        lines.append(f"  not active on {on}: {', '.join(not_active)}")

    by_aggregation: dict[str, list[str]] = defaultdict(list)
    for m in p.meters:
        by_aggregation[m.aggregation or "?"].append(m.meter_id or "?")
    lines.append(f"{len(p.meters)} meters: " + "; ".join(
        f"{agg} {len(ids)} ({', '.join(ids)})" for agg, ids in sorted(by_aggregation.items())))
    priced_meters = {i.meter_id for i in p.product_items}
    unbilled = [m.meter_id for m in p.meters if m.meter_id not in priced_meters]
    if unbilled:
        lines.append(f"  without a product item (unbilled usage): {', '.join(map(str, unbilled))}")

    tiers: dict[str, list[RateTier]] = defaultdict(list)
    for t in p.rate_tiers:
        if t.rate_id:
            tiers[t.rate_id].append(t)
    lines.append(f"{len(p.product_items)} product items; rates in effect on {on}:")
    in_effect = [r for r in p.rates if r.in_effect(on)]
    units = {m.meter_id: m.unit for m in p.meters if m.meter_id}
    width = max([len(i.product_item_id or "") for i in p.product_items] + [4])
    for item in sorted(p.product_items, key=lambda i: i.product_item_id or ""):
        filt = item.dimension_filter or "all events"
        lines.append(f"  {item.product_item_id:<{width}}  meter {item.meter_id} ({filt})")
        item_rates = sorted((r for r in in_effect if r.product_item_id == item.product_item_id),
                            key=lambda r: (r.currency or "", r.customer_id or ""))
        if not item_rates:
            lines.append(f"  {'':<{width}}    no rate in effect")
        unit = units.get(item.meter_id or "") or "unit"
        for r in item_rates:
            who = f"for {r.customer_id}" if r.customer_id else "list price"
            lines.append(f"  {'':<{width}}    {r.currency} {_describe_rate(r, tiers, unit)}  "
                         f"[{r.rate_id}, {who}, since {r.effective_from}"
                         + (f", until {r.effective_to}" if r.effective_to else "") + "]")

    current = [c for c in p.commitments if c.in_effect(on)]
    lines.append(f"{len(current)} commitment(s) in effect on {on}"
                 + (": " + ", ".join(f"{c.customer_id} minimum {_fmt(c.minimum_amount)} "
                                     f"{c.currency}" for c in current) if current else ""))
    return "\n".join(lines)


def _describe_rate(rate: Rate, tiers: Mapping[str, list[RateTier]], unit: str = "unit") -> str:
    model = rate.pricing_model
    free = (f", first {_fmt(rate.free_units)} free" if rate.free_units else "")
    if model == "per_unit":
        return f"per_unit {_fmt(rate.unit_price)} per {unit}{free}"
    if model == "package":
        return f"package {_fmt(rate.unit_price)} per {_fmt(rate.package_size)} {unit}s{free}"
    rate_tiers = sorted(tiers.get(rate.rate_id or "", []), key=lambda t: t.tier or 0)
    parts = []
    previous: Decimal | None = None
    for t in rate_tiers:
        bound = (f"<= {_fmt(t.up_to)}" if t.up_to is not None
                 else f"above {_fmt(previous)}" if previous is not None else "all")
        fee = f" + {_fmt(t.flat_fee)} flat" if t.flat_fee else ""
        parts.append(f"{bound}: {_fmt(t.unit_price)}{fee}")
        previous = t.up_to
    return f"{model} ({len(rate_tiers)} tiers: {'; '.join(parts)})"
