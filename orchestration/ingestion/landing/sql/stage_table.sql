-- Every file's rows in one uniform shape: per field, what kind of value it held, and its text.
create or replace temp table {{ stage }} (
    file_idx        integer not null,
    row_number      bigint not null,
    raw_row         varchar,
    malformed       boolean not null,
    eid_t           varchar,   -- missing | string | other
    eid             varchar,
    cust_t          varchar,   -- missing | string | other
    cust            varchar,
    meter_t         varchar,   -- missing | string | other
    meter           varchar,
    val_t           varchar,   -- default (missing/null/empty: 1) | text | invalid
    val_text        varchar,
    val_check       decimal(38, 12),  -- JSON numbers: DuckDB's own exact parse, to cross-check
    val_needs_check boolean,
    ts_t            varchar,   -- missing | text | epoch | instant | invalid
    ts_text         varchar,
    ts_instant      timestamptz,
    dims_t          varchar,   -- none | json | invalid
    dims_json       varchar
);

-- Rows of typed Parquet files (stage_parquet.typed_select): already typed and checked, in the
-- shape classify.sql gives the candidates, so they skip the text round trip.
create or replace temp table {{ typed }} (
    phase           integer not null,
    file_idx        integer not null,
    row_number      bigint not null,
    q_seq           bigint,
    raw_row         varchar,
    event_id        varchar,
    customer_id     varchar,
    meter_id        varchar,
    value           decimal(38, 12),
    event_at        timestamptz,
    dimensions      varchar,
    f_malformed     boolean not null,
    f_missing       boolean not null,
    f_event_id      boolean not null,
    f_value         boolean not null,
    f_timestamp     boolean not null,
    f_dimensions    boolean not null
)
