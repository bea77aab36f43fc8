"""The warehouse file: connections and the DDL of every table Python writes.

dbt owns the staging/intermediate/marts schemas; this module owns ``raw``, ``catalog`` and
``billing``. Every connection is opened in UTC (see docs/architecture.md): DuckDB otherwise
buckets months in the machine's zone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from orchestration.lib import settings as settings_lib

DDL = """
create schema if not exists raw;
create schema if not exists catalog;
create schema if not exists billing;

-- event_id is unique across the home: landing decides duplicates set-based (one copy lands), and
-- the dbt test `unique` on stg_raw__usage_events proves it in every bill before anything is
-- published. No primary key: its index cost 2.5x the insert time and 2.7x the table's disk
-- (benchmarks/RESULTS.md) and must be held in memory to insert. A home created before keeps its
-- key, which only slows it down.
create table if not exists raw.usage_events (
    event_id        varchar not null,
    customer_id     varchar not null,
    meter_id        varchar not null,
    value           decimal(38, 12) not null,
    event_at        timestamptz not null,
    dimensions      varchar not null,
    source_file     varchar not null,
    row_number      bigint not null,
    file_sha256     varchar,
    ingest_run_id   varchar not null,
    landed_at       timestamptz not null,
    landing_seq     bigint not null,
    is_relanded     boolean not null default false
);

create table if not exists raw.quarantined_events (
    source_file     varchar not null,
    row_number      bigint not null,
    raw_row         varchar,
    reason          varchar not null,
    landed_at       timestamptz not null,
    resolved_at     timestamptz,
    file_sha256     varchar,
    ingest_run_id   varchar not null,
    landing_seq     bigint not null,
    event_id        varchar,
    customer_id     varchar,
    meter_id        varchar,
    value           decimal(38, 12),
    event_at        timestamptz,
    dimensions      varchar
);

create table if not exists raw.duplicate_events (
    source_file     varchar not null,
    row_number      bigint not null,
    event_id        varchar not null,
    file_sha256     varchar,
    ingest_run_id   varchar not null,
    landed_at       timestamptz not null,
    is_relanded     boolean not null default false
);

create table if not exists raw.landed_files (
    file_sha256       varchar not null primary key,
    source_file       varchar not null,
    file_format       varchar not null,
    size_bytes        bigint not null,
    ingest_run_id     varchar not null,
    landed_at         timestamptz not null,
    rows_read         bigint not null,
    rows_landed       bigint not null,
    rows_duplicate    bigint not null,
    rows_quarantined  bigint not null
);

create table if not exists raw.ingest_runs (
    ingest_run_id     varchar not null primary key,
    started_at        timestamptz not null,
    finished_at       timestamptz,
    files_landed      integer,
    files_skipped     integer,
    files_unreadable  integer,
    rows_relanded     bigint
);

create table if not exists billing.published_invoices (
    invoice_id            varchar not null primary key,
    customer_id           varchar not null,
    billing_period_start  date not null,
    billing_period_end    date not null,
    currency              varchar not null,
    subtotal              decimal(38, 4) not null,
    total                 decimal(38, 4) not null,
    line_count            integer not null,
    status                varchar not null,
    invoice_number        varchar not null unique,
    issued_at             timestamptz not null
);

create table if not exists billing.published_invoice_lines (
    invoice_id            varchar not null,
    line_number           integer not null,
    customer_id           varchar not null,
    billing_period_start  date not null,
    billing_period_end    date not null,
    usage_period_start    date not null,
    usage_period_end      date not null,
    line_type             varchar not null,
    product_item_id       varchar,
    meter_id              varchar,
    description           varchar not null,
    quantity              decimal(38, 12),
    unit_price            decimal(38, 12),
    tier                  integer,
    amount                decimal(38, 4) not null,
    currency              varchar not null,
    rate_id               varchar,
    primary key (invoice_id, line_number)
);

-- The catalog rows that priced each published period (keys and canonical values), so that a
-- refusal to re-price the period can name the rows that changed.
create table if not exists billing.published_catalog_rows (
    billing_period_start  date not null,
    row_key               varchar not null,
    row_values            varchar not null,
    primary key (billing_period_start, row_key)
);

-- Every reconciliation check evaluated, per Dagster run and period: the proof publishing reads
-- (it publishes only if every blocking check passed in its own run), kept as an audit trail.
create table if not exists billing.reconciliation_results (
    run_id                varchar not null,
    billing_period_start  date not null,
    check_name            varchar not null,
    passed                boolean not null,
    blocking              boolean not null,
    summary               varchar not null,
    figures               json not null,
    checked_at            timestamptz not null,
    primary key (run_id, billing_period_start, check_name)
);

create table if not exists billing.published_periods (
    billing_period_start  date not null primary key,
    published_at          timestamptz not null,
    invoice_count         integer not null,
    catalog_fingerprint   varchar not null
);

-- The reconciliation's own sums of the level meters' events, per customer, meter, item (NULL:
-- the events no item matches), month and landing instant (reconciliation/levels.py). A check
-- run adds the events landed since the last (landing_seq) and takes a period's carried level
-- from the months before it, so it never rescans every level event. Kept by the checks alone,
-- never by dbt; rows of another level catalog (level_fingerprint) are deleted and rebuilt.
create table if not exists billing.reconciliation_level_months (
    level_fingerprint     varchar not null,
    customer_id           varchar not null,
    meter_id              varchar not null,
    product_item_id       varchar,
    month_start           date not null,
    landed_at             timestamptz not null,
    change_sum            decimal(38, 12) not null,
    event_count           bigint not null,
    through_landing_seq   bigint not null
);
"""


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse in UTC, with the memory limit, threads and temp directory of the
    METERLINE_* variables (settings.duckdb_config). Writers also make sure every Python-owned
    table exists."""
    con = duckdb.connect(str(path), read_only=read_only, config=settings_lib.duckdb_config(path))
    con.execute("set TimeZone = 'UTC'")
    if not read_only:
        con.execute(DDL)
    return con


@contextlib.contextmanager
def connection(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()
