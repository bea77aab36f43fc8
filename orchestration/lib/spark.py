"""METERLINE_ENGINE=spark (docs/spark.md): the dbt models run on Apache Spark, the rest stays.

Landing, the catalog's load, the published ledger, the reconciliation checks, publishing and
every reader keep working on the home's DuckDB file. A bill on Spark:

1. `export_sources` writes each dbt source table (raw events, the catalog, the ledger) from
   DuckDB to Parquet under <home>/spark/sources/<schema>/<table>/ (replaced whole, by rename);
2. the dbt build runs on Spark (target `spark` of dbt_project/profiles.yml): its on-run-start
   hook registers those files as Spark tables (macros/spark_sources.sql), its models are
   Parquet tables partitioned by billing period, and its on-run-end hook exports every table it
   built to <home>/spark/marts/ (a period-scoped model: only the billed period's rows);
3. `import_marts` loads those files into the DuckDB tables of the same models, in one
   transaction (a kill before its commit leaves the DuckDB warehouse as it was), and the views
   are then built on DuckDB over them (orchestration/billing/assets.py).

DuckDB's tables stay the record of every month: a home billed on DuckDB can switch to Spark
(and back) without losing the months billed before, since Spark only ever replaces the billed
period's rows of a period-scoped model.

Every step is a derived copy rebuilt from what came before it, so a bill killed anywhere and
run again gives the same result.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb

from orchestration.lib.settings import Settings

_CONF = Path(__file__).resolve().parent / "conf"


def spark_environment(cfg: Settings) -> dict[str, str]:
    """The variables a dbt process on Spark needs (the profile reads the METERLINE_SPARK_*)."""
    env = {
        "METERLINE_SPARK_HOME": str(cfg.spark_home),
        "METERLINE_SPARK_LOG4J": str(_CONF / "spark-log4j2.properties"),
        "METERLINE_SPARK_EXPORT": str(marts_dir(cfg)),
        "METERLINE_SPARK_SOURCES": str(sources_dir(cfg)),
        # the driver listens on the loopback interface only (security by default)
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    if not os.environ.get("JAVA_HOME"):
        java = shutil.which("java")
        if java:
            env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    return env


def sources_dir(cfg: Settings) -> Path:
    return cfg.spark_home / "sources"


def marts_dir(cfg: Settings) -> Path:
    return cfg.spark_home / "marts"


def _replace_dir(built: Path, final: Path) -> None:
    """Put the folder `built` at `final`; the old one (if any) is removed after the swap."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
    if final.exists():
        os.replace(final, old)
    os.replace(built, final)
    shutil.rmtree(old, ignore_errors=True)


def export_sources(con: duckdb.DuckDBPyConnection, cfg: Settings,
                   tables: Iterable[tuple[str, str]]) -> None:
    """Write each (schema, table) of DuckDB to <home>/spark/sources/<schema>/<table>/ as one
    Parquet file, column for column (instants as UTC microseconds, decimals as decimals)."""
    root = sources_dir(cfg)
    for schema, table in tables:
        final = root / schema / table
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = final.with_name(f".{table}.new-{uuid.uuid4().hex}")
        scratch.mkdir()
        try:
            con.execute(
                f'copy (select * from "{schema}"."{table}") to '
                f"'{scratch / 'part-0.parquet'}' (format parquet)")
            _replace_dir(scratch, final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def import_marts(con: duckdb.DuckDBPyConnection, cfg: Settings) -> list[str]:
    """Load what the Spark build exported into the DuckDB warehouse, in one transaction, and
    return the relations loaded:
    - tables/<schema>/<table>/: rebuilt whole on Spark, so the DuckDB table is replaced;
    - periods/<schema>/<table>/: the billed period's rows of a period-scoped model, which
      replace that period's rows only: the months billed before, on either engine, stay."""
    root = marts_dir(cfg)
    imported = []
    con.execute("begin transaction")
    try:
        for kind in ("tables", "periods"):
            for folder in sorted(p for p in (root / kind).glob("*/*") if p.is_dir()):
                schema, table = folder.parent.name, folder.name
                files = [str(f) for f in sorted(folder.glob("*.parquet"))]
                if not files:
                    continue
                con.execute(f'create schema if not exists "{schema}"')
                found = con.execute(
                    "select table_type from information_schema.tables "
                    "where table_schema = ? and table_name = ?", [schema, table]).fetchall()
                name = f'"{schema}"."{table}"'
                if found and found[0][0] == "VIEW":  # an older build's view in its place
                    con.execute(f"drop view {name}")
                    found = []
                if kind == "periods" and found:
                    con.execute(f"delete from {name} where billing_period_start in "
                                f"(select distinct billing_period_start from read_parquet(?))",
                                [files])
                    con.execute(f"insert into {name} by name select * from read_parquet(?)",
                                [files])
                else:
                    con.execute(f"create or replace table {name} as "
                                f"select * from read_parquet(?)", [files])
                imported.append(f"{schema}.{table}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return imported


def quiet_pyspark_pandas_warning() -> None:
    """pyspark 4.3 warns at import that it does not fully support pandas 3. Meterline never hands
    pandas to Spark, and great-expectations imports pyspark wherever it is installed: keep the
    warning out of every command's output."""
    import warnings

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)


def keep_profile_ansi_mode() -> None:
    """dbt-spark 1.11 sets `spark.sql.ansi.enabled` to false in every session profile (for
    Spark 3 compatibility). Billing needs it true (an overflow must fail, not become NULL):
    keep the value the profile gives. Called in the dbt process before dbt starts
    (orchestration/billing/dbt_child.py); macros/exact_engine_settings.sql then checks it."""
    from dbt.adapters.spark.connections import SparkCredentials

    if getattr(SparkCredentials.__post_init__, "_meterline", False):
        return
    original = SparkCredentials.__post_init__

    def __post_init__(self) -> None:
        given = {str(k): str(v) for k, v in (self.server_side_parameters or {}).items()}
        original(self)
        if "spark.sql.ansi.enabled" in given:
            self.server_side_parameters["spark.sql.ansi.enabled"] = given["spark.sql.ansi.enabled"]

    __post_init__._meterline = True  # type: ignore[attr-defined]
    SparkCredentials.__post_init__ = __post_init__  # type: ignore[method-assign]
