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

-- Every row of the batch, narrow (write.py): its position in the run's landing order (the
-- re-checked rows first, then the files in order, then rows: landing_seq is the run's base plus
-- it), its event_id, the first rule it breaks (NULL: none) and, when it is valid and dated where
-- no bill reaches it, its UTC month. Typed Parquet rows are written here as they are read
-- (stage_parquet.TypedSource.keys_insert); the rows of text files and the re-checked rows once classified.
create or replace temp table {{ keys }} (
    pos             bigint not null,
    phase           integer not null,  -- 0: a re-checked quarantine row, 1: a row of a file
    file_idx        integer,
    event_id        varchar,
    reason          varchar,
    month           varchar
)
