"""Staging a Parquet file: ``read_parquet(..., file_row_number = true)`` with one expression per
column type (its schema decides them)."""

from __future__ import annotations

import duckdb

from orchestration.ingestion.landing.sqltext import STAGE, ident, lit

INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}


def stage_parquet(con: duckdb.DuckDBPyConnection, file_idx: int, path: str) -> None:
    src = f"read_parquet({lit(path)}, file_row_number = true)"
    cols = con.execute(f"describe select * from {src}").fetchall()
    types = {c[0]: c[1].upper() for c in cols if c[0] != "file_row_number"}

    def col(name: str) -> str:
        return ident(name)

    def str_field(name: str) -> tuple[str, str]:
        """(kind, text) of a required string field."""
        if name not in types:
            return "'missing'", "null::varchar"
        c = col(name)
        if types[name] == "VARCHAR":
            return (f"case when coalesce({c}, '') = '' then 'missing' else 'string' end",
                    f"{c}")
        return (f"case when {c} is null then 'missing' else 'other' end", "null::varchar")

    eid_k, eid_v = str_field("event_id")
    cust_k, cust_v = str_field("customer_id")
    meter_k, meter_v = str_field("meter")

    vtype = types.get("value")
    if vtype is None:
        val_k, val_v = "'default'", "null::varchar"
    else:
        c = col("value")
        if vtype == "VARCHAR":
            val_k = f"case when coalesce({c}, '') = '' then 'default' else 'text' end"
            val_v = c
        elif vtype in INTEGER_TYPES or vtype in FLOAT_TYPES or vtype.startswith("DECIMAL"):
            # integers and decimals are exact; floats at their shortest decimal text
            val_k = f"case when {c} is null then 'default' else 'text' end"
            val_v = f"{c}::varchar"
        else:
            val_k = f"case when {c} is null then 'default' else 'invalid' end"
            val_v = "null::varchar"

    ttype = types.get("timestamp")
    ts_inst = "null::timestamptz"
    if ttype is None:
        ts_k, ts_v = "'missing'", "null::varchar"
    else:
        c = col("timestamp")
        if ttype == "VARCHAR":
            ts_k = f"case when coalesce({c}, '') = '' then 'missing' else 'text' end"
            ts_v = c
        elif ttype == "TIMESTAMP WITH TIME ZONE":
            ts_k = f"case when {c} is null then 'missing' else 'instant' end"
            ts_v, ts_inst = "null::varchar", c
        elif ttype in INTEGER_TYPES:
            ts_k = f"case when {c} is null then 'missing' else 'epoch' end"
            ts_v = f"{c}::varchar"
        else:  # TIMESTAMP without zone (ambiguous), DATE, floats, ...
            ts_k = f"case when {c} is null then 'missing' else 'invalid' end"
            ts_v = "null::varchar"

    dtype = types.get("dimensions")
    if dtype is None:
        dims_k, dims_v = "'none'", "null::varchar"
    else:
        c = col("dimensions")
        if dtype == "VARCHAR":
            dims_k = f"case when coalesce({c}, '') = '' then 'none' else 'json' end"
            dims_v = c
        else:  # MAP / STRUCT / JSON / anything: its JSON rendering, validated as an object
            dims_k = f"case when {c} is null then 'none' else 'json' end"
            dims_v = f"to_json({c})::varchar"

    def raw_expr(name: str, typ: str) -> str:
        if typ == "TIMESTAMP WITH TIME ZONE":  # render the instant in UTC, whatever the session
            return f"strftime(timezone('UTC', {col(name)}), '%Y-%m-%dT%H:%M:%S.%fZ')"
        return col(name)

    if types:
        raw = "to_json(struct_pack(" + ", ".join(
            f"{ident(n)} := {raw_expr(n, t)}" for n, t in types.items()) + "))::varchar"
    else:
        raw = "'{}'"
    con.execute(f"""
        insert into {STAGE}
        select {file_idx}, file_row_number + 1, {raw}, false,
               {eid_k}, {eid_v}, {cust_k}, {cust_v}, {meter_k}, {meter_v},
               {val_k}, {val_v}, null, false,
               {ts_k}, {ts_v}, {ts_inst},
               {dims_k}, {dims_v}
        from {src}
    """)
