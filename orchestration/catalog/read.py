"""Reading the price book's CSV files (CONTRACT.md section 3) as text.

Reading never infers a type: every cell is text (stripped, empty -> None) and keeps its 1-based
data row number (the header is not counted) for messages.

Decisions where CONTRACT.md is silent:
- Files: customers.csv, meters.csv, product_items.csv and rates.csv are required;
  rate_tiers.csv, commitments.csv and seller.csv (E21) may be absent (read as empty). A file
  needs a header row with every column of section 3; only ``active_from``/``active_to`` of
  customers.csv may be left out. Extra columns are ignored (the optional columns of E21 are
  read by catalog.parties). A row with more or fewer fields than the header is a problem; a row
  of empty cells is skipped (it still counts in the row numbers, as in a spreadsheet).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.catalog.problems import Problem

REPO_ROOT = Path(__file__).resolve().parents[2]
CURRENCIES_SEED = REPO_ROOT / "dbt_project" / "seeds" / "iso_4217_currencies.csv"


@dataclass(frozen=True)
class FileSpec:
    name: str
    columns: tuple[str, ...]
    required_file: bool = True


FILES: dict[str, FileSpec] = {
    "customers": FileSpec("customers.csv", ("customer_id", "customer_name", "currency")),
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
    # docs/contract.md E21: who sends the invoices (one row); read by catalog.parties
    "seller": FileSpec("seller.csv", ("seller_name",), required_file=False),
}
FILE_ORDER = {spec.name: i for i, spec in enumerate(FILES.values())}


@dataclass(frozen=True)
class Row:
    """One data row of a catalog file: its 1-based row number and its cells as stripped text
    (empty -> None). Columns absent from the file read as None."""

    row: int
    values: Mapping[str, str | None]

    def __getitem__(self, column: str) -> str | None:
        return self.values.get(column)


@dataclass(frozen=True)
class Catalog:
    """The price book as read: rows of text per file, plus the problems met while reading
    (missing file or column, rows of the wrong width), which ``validate`` reports first."""

    customers: tuple[Row, ...] = ()
    meters: tuple[Row, ...] = ()
    product_items: tuple[Row, ...] = ()
    rates: tuple[Row, ...] = ()
    rate_tiers: tuple[Row, ...] = ()
    commitments: tuple[Row, ...] = ()
    seller: tuple[Row, ...] = ()
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    read_problems: tuple[Problem, ...] = ()
    #: sha256 over the six files' bytes as read: equal fingerprints, equal catalogs
    fingerprint: str = ""

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, ())


def load_catalog(catalog_dir: Path) -> Catalog:
    """Read the six CSV files of ``catalog_dir`` as text; never raises for bad content.

    Read once per process and content: the files' bytes are hashed on every call (cheap), and
    a catalog with the same bytes as one already read is that same object, so a `bill` and the
    Dagster steps of its run share one read and, through ``model.parse``, one typed model."""
    catalog_dir = Path(catalog_dir)
    contents = {table: _read_bytes(catalog_dir / spec.name) for table, spec in FILES.items()}
    digest = hashlib.sha256()
    for table, data in contents.items():
        digest.update(f"{table}:{-1 if data is None else len(data)}:".encode())
        digest.update(data or b"")
    fingerprint = digest.hexdigest()
    cached = _LOADED.get((str(catalog_dir.resolve()), fingerprint))
    if cached is not None:
        return cached
    tables: dict[str, tuple[Row, ...]] = {}
    columns: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for table, spec in FILES.items():
        rows, header, file_problems = _read_file(catalog_dir / spec.name, spec, contents[table])
        tables[table] = rows
        columns[table] = header
        problems.extend(file_problems)
    catalog = Catalog(columns=columns, read_problems=tuple(problems), fingerprint=fingerprint,
                      **tables)
    if len(_LOADED) >= 8:  # a long-lived process (the UI's) keeps the latest few
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[(str(catalog_dir.resolve()), fingerprint)] = catalog
    return catalog


_LOADED: dict[tuple[str, str], Catalog] = {}


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None where there is no regular file (reported by _read_file)."""
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _read_file(path: Path, spec: FileSpec, data: bytes | None
               ) -> tuple[tuple[Row, ...], tuple[str, ...], list[Problem]]:
    if data is None:
        if not spec.required_file:
            return (), spec.columns, []
        return (), (), [Problem(spec.name, None, None,
                                f"missing file {path}; it needs the header "
                                f"{','.join(spec.columns)}")]
    try:
        records = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
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


@functools.cache
def _currencies() -> tuple[tuple[str, int], ...]:
    with CURRENCIES_SEED.open(newline="", encoding="utf-8") as handle:
        return tuple((row["currency"].strip(), int(row["minor_unit"]))
                     for row in csv.DictReader(handle))


def read_currencies() -> dict[str, int]:
    """ISO 4217 currency -> minor unit, from the dbt seed (the one source of truth); read once
    per process, a fresh dict each call."""
    return dict(_currencies())
