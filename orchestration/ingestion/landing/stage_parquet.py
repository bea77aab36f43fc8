"""Staging a Parquet file: ``read_parquet(..., file_row_number = true)`` with one expression per
column type (its schema decides them).

A *typed* file (the schema most producers write: VARCHAR ids, a DECIMAL that fits
DECIMAL(38, 12) or an integer of at most 64 bits or no value column, TIMESTAMP WITH TIME ZONE,
MAP(VARCHAR, VARCHAR) dimensions or none) has nothing to parse: staging reads it once into the
batch's narrow KEYS table (position, id, first failed rule: ``TypedSource.keys_insert``), and the
batch reads it again to write its rows (``TypedSource.columns``), every rule applied on the
typed columns: no text round trip, and no copy of its rows in a temp table. Any other schema
takes the general path, column by column."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import duckdb

from orchestration.ingestion.landing.sqltext import (
    LK_CUST,
    LK_METER,
    STAGE,
    ident,
    keys_insert,
    lit,
    reason_case,
)

INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}
# integers that always fit DECIMAL(38, 12) (26 digits before the point)
TYPED_INTEGERS = INTEGER_TYPES - {"HUGEINT", "UHUGEINT"}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
INSTANT = "TIMESTAMP WITH TIME ZONE"
TEXT_MAP = "MAP(VARCHAR, VARCHAR)"


def is_typed(types: dict[str, str]) -> bool:
    """The schema needs no text parsing: every field's type holds only what the contract
    accepts, so the rules are checks on typed values."""
    if any(types.get(name) != "VARCHAR" for name in ("event_id", "customer_id", "meter")):
        return False
    if types.get("timestamp") != INSTANT:
        return False
    value = types.get("value")
    decimal = _DECIMAL.match(value or "")
    fits = decimal is not None and int(decimal[2]) <= 12 and \
        int(decimal[1]) - int(decimal[2]) <= 26
    if value is not None and value not in TYPED_INTEGERS and not fits:
        return False
    return types.get("dimensions") in (None, TEXT_MAP)


@dataclass(frozen=True)
class TypedSource:
    """A typed Parquet file of the batch: read again when its rows are written, not copied into
    a temp table. ``base`` + ``file_row_number`` + 1 is a row's position (KEYS.pos)."""

    file_idx: int
    src: str  # read_parquet(...)
    types: dict[str, str]
    base: int
    rows: int = 0  # its rows (staging counts them): positions base + 1 .. base + rows

    def pos(self, alias: str = "p") -> str:
        return f"({self.base} + {alias}.file_row_number + 1)"

    def columns(self, alias: str = "p", *, valid: bool = False) -> dict[str, str]:
        """The candidates' fields (classify.sql's shape) and failure flags, as expressions on
        the file's typed columns: the values and flags the general path gives the same rows.
        ``valid``: for rows known to pass every rule (the rows landed), whose dimensions need
        no check (1 s less per 10M rows)."""
        types = self.types

        def c(name: str) -> str:
            return f"{alias}.{ident(name)}"

        value = (f"coalesce({c('value')}::decimal(38, 12), 1::decimal(38, 12))"
                 if "value" in types else "1::decimal(38, 12)")
        if "dimensions" in types:
            d = c("dimensions")
            # a NULL map is no dimensions; a NULL value or a repeated key is invalid; keys in
            # byte order (sorted only when they are not already)
            invalid = (f"({d} is not null and (len(list_filter(map_values({d}), "
                       f"lambda x: x is null)) > 0 "
                       f"or len(list_distinct(map_keys({d}))) <> len(map_keys({d}))))")
            check = "" if valid else f"when {invalid} then null "
            dims = (f"case when {d} is null then '{{}}' {check}"
                    f"when map_keys({d}) = list_sort(map_keys({d})) then to_json({d})::varchar "
                    f"else to_json(map_from_entries(list_sort(list_transform(map_entries({d}), "
                    f"lambda x: {{'k': x.key, 'v': x.value}}))))::varchar end")
        else:
            dims, invalid = "'{}'", "false"
        eid, cust, meter, ts = (c(n) for n in ("event_id", "customer_id", "meter", "timestamp"))
        return {
            "event_id": f"nullif({eid}, '')",
            "customer_id": f"nullif({cust}, '')",
            "meter_id": f"nullif({meter}, '')",
            "value": value,
            "event_at": ts,
            "dimensions": dims,
            "raw_row": _raw_row(types, alias),
            "f_malformed": "false",
            "f_missing": (f"(coalesce({eid}, '') = '' or coalesce({cust}, '') = '' "
                          f"or coalesce({meter}, '') = '' or {ts} is null)"),
            "f_event_id": f"coalesce(length({eid}) not between 1 and 256, true)",
            "f_value": "false",
            "f_timestamp": f"({ts} is null)",
            "f_dimensions": invalid,
        }

    def keys_insert(self) -> str:
        """The file's rows into KEYS (one read of the file, every rule checked on the typed
        columns); parameters $lo and $hi: the billable range (write.billable_range)."""
        col = self.columns()
        reason = reason_case(malformed=col["f_malformed"], missing=col["f_missing"],
                             event_id=col["f_event_id"], value_flag=col["f_value"],
                             value=col["value"], timestamp=col["f_timestamp"],
                             dimensions=col["f_dimensions"])
        return keys_insert(f"""
            select {self.pos()} as pos, 1 as phase, {self.file_idx} as file_idx,
                   {col['event_id']} as event_id, {col['event_at']} as event_at,
                   {reason} as reason
            from {self.src} p
            left join {LK_METER} m on m.meter_id = {col['meter_id']}
            left join {LK_CUST} k on k.customer_id = {col['customer_id']}
        """)


def stage_parquet(con: duckdb.DuckDBPyConnection, file_idx: int, path: str,
                  base: int, lo: object, hi: object) -> TypedSource | None:
    """Stage the file: a typed file's rows into KEYS only (its source is returned, to be read
    again when the batch is written), any other file's rows into the stage table."""
    src = f"read_parquet({lit(path)}, file_row_number = true)"
    cols = con.execute(f"describe select * from {src}").fetchall()
    types = {c[0]: c[1].upper() for c in cols if c[0] != "file_row_number"}
    if is_typed(types):
        typed = TypedSource(file_idx, src, types, base)
        rows = con.execute(typed.keys_insert(), {"lo": lo, "hi": hi}).fetchone()[0]
        return dataclasses.replace(typed, rows=rows)

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
        elif ttype == INSTANT:
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

    raw = _raw_row(types, None)
    con.execute(f"""
        insert into {STAGE}
        select {file_idx}, file_row_number + 1, {raw}, false,
               {eid_k}, {eid_v}, {cust_k}, {cust_v}, {meter_k}, {meter_v},
               {val_k}, {val_v}, null, false,
               {ts_k}, {ts_v}, {ts_inst},
               {dims_k}, {dims_v}
        from {src}
    """)
    return None


def _raw_row(types: dict[str, str], alias: str | None) -> str:
    """The row as text for the quarantine: a JSON rendering of every column (instants in UTC,
    whatever the session's zone)."""
    def expr(name: str, typ: str) -> str:
        column = f"{alias}.{ident(name)}" if alias else ident(name)
        if typ == INSTANT:
            return f"strftime(timezone('UTC', {column}), '%Y-%m-%dT%H:%M:%S.%fZ')"
        return column

    if not types:
        return "'{}'"
    return "to_json(struct_pack(" + ", ".join(
        f"{ident(n)} := {expr(n, t)}" for n, t in types.items()) + "))::varchar"
