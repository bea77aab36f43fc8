"""Loading a clean price book into the ``catalog.*`` tables of docs/architecture.md, passing
decimals as text and casting them in SQL, so no value ever goes through a binary float."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import duckdb

from orchestration.catalog.model import iso, parse, plain
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import Catalog
from orchestration.catalog.rules import validate

CATALOG_DDL = {
    "customers": """create or replace table catalog.customers (
        customer_id varchar not null primary key, customer_name varchar,
        currency varchar not null, active_from date, active_to date)""",
    "meters": """create or replace table catalog.meters (
        meter_id varchar not null primary key, display_name varchar, unit varchar,
        aggregation varchar not null, unique_dimension varchar, time_unit varchar)""",
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
    "meters": "?, ?, ?, ?, ?, ?",
    "product_items": "?, ?, ?, ?",
    "rates": "?, ?, ?, ?, ?, ?::decimal(38, 12), ?::decimal(38, 12), ?::decimal(38, 12), "
             "?::date, ?::date",
    "rate_tiers": "?, ?::integer, ?::decimal(38, 12), ?::decimal(38, 12), ?::decimal(38, 12)",
    "commitments": "?, ?::decimal(38, 12), ?, ?::date, ?::date",
}


class CatalogInvalid(ValueError):
    """Raised by ``write_catalog`` for a catalog that does not validate."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"the catalog has {len(self.problems)} problem(s):\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


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
        "customers": [(c.customer_id, c.customer_name, c.currency, iso(c.active_from),
                       iso(c.active_to)) for c in parsed.customers],
        "meters": [(m.meter_id, m.display_name, m.unit, m.aggregation, m.unique_dimension,
                    m.time_unit) for m in parsed.meters],
        "product_items": [(i.product_item_id, i.display_name, i.meter_id, i.dimension_filter)
                          for i in parsed.product_items],
        "rates": [(r.rate_id, r.product_item_id, r.customer_id, r.currency, r.pricing_model,
                   plain(r.unit_price), plain(r.package_size),
                   plain(r.free_units if r.free_units is not None else zero),
                   iso(r.effective_from), iso(r.effective_to)) for r in parsed.rates],
        "rate_tiers": [(t.rate_id, t.tier, plain(t.up_to), plain(t.unit_price),
                        plain(t.flat_fee if t.flat_fee is not None else zero))
                       for t in parsed.rate_tiers],
        "commitments": [(c.customer_id, plain(c.minimum_amount), c.currency,
                         iso(c.effective_from), iso(c.effective_to))
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
