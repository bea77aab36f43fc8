"""METERLINE_ENGINE and the DuckDB side of the Spark engine (orchestration/lib/spark.py), without
a JVM: the fast tier."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.lib import settings as settings_lib
from orchestration.lib import spark


def test_the_engine_is_duckdb_unless_spark_is_asked_for(tmp_path) -> None:
    assert settings_lib.load({"METERLINE_HOME": str(tmp_path)}).engine == "duckdb"
    cfg = settings_lib.load({"METERLINE_HOME": str(tmp_path), "METERLINE_ENGINE": " Spark "})
    assert cfg.engine == "spark"
    assert cfg.spark_home == tmp_path.resolve() / "spark"
    with pytest.raises(settings_lib.UsageError, match="METERLINE_ENGINE='postgres' is not one"):
        settings_lib.load({"METERLINE_HOME": str(tmp_path), "METERLINE_ENGINE": "postgres"})


def test_spark_listens_on_the_loopback_interface_and_logs_to_the_home(tmp_path) -> None:
    cfg = settings_lib.load({"METERLINE_HOME": str(tmp_path), "METERLINE_ENGINE": "spark"})
    env = spark.spark_environment(cfg)
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["METERLINE_SPARK_HOME"] == str(cfg.spark_home)
    assert (Path(env["METERLINE_SPARK_LOG4J"])).is_file()


def _exported(cfg, schema: str, table: str, query: str, kind: str = "tables") -> None:
    folder = spark.marts_dir(cfg) / kind / schema / table
    folder.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"copy ({query}) to '{folder / 'part-00000.parquet'}' (format parquet)")
    con.close()


@pytest.fixture
def home(tmp_path):
    """A Spark home's settings and a connection to its warehouse file."""
    cfg = settings_lib.load({"METERLINE_HOME": str(tmp_path), "METERLINE_ENGINE": "spark"})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield cfg, con
    con.close()


def test_sources_go_out_and_built_tables_come_back_exactly(home) -> None:
    cfg, con = home
    con.execute("create schema raw; create table raw.events as "
                "select 'e1' as id, 0.000000000001::decimal(38, 12) as value")
    spark.export_sources(con, cfg, [("raw", "events")])
    spark.export_sources(con, cfg, [("raw", "events")])  # replaced, not added to
    files = list((spark.sources_dir(cfg) / "raw" / "events").iterdir())
    assert [f.name for f in files] == ["part-0.parquet"]
    _exported(cfg, "marts", "m", "select 1.25::decimal(38, 4) as amount, 'x' as id")
    con.execute("create schema marts; create view marts.m as select 0 as stale")
    assert spark.import_marts(con, cfg) == ["marts.m"]
    assert con.execute("select amount, id from marts.m").fetchall() == [(Decimal("1.25"), "x")]


def test_a_period_scoped_model_replaces_only_the_billed_periods_rows(home) -> None:
    """A home billed on DuckDB, then on Spark: the months billed before stay in DuckDB."""
    cfg, con = home
    con.execute("create schema intermediate; create table intermediate.lines as "
                "select * from (values (date '2026-09-01', 'sep', 1.00::decimal(38, 4)), "
                "(date '2026-10-01', 'old oct', 2.00::decimal(38, 4))) "
                "as t(billing_period_start, line, amount)")
    _exported(cfg, "intermediate", "lines", "select 3.00::decimal(38, 4) as amount, "
              "'new oct' as line, date '2026-10-01' as billing_period_start", kind="periods")
    assert spark.import_marts(con, cfg) == ["intermediate.lines"]
    assert con.execute("select billing_period_start::varchar, line, amount "
                       "from intermediate.lines order by 1").fetchall() == [
        ("2026-09-01", "sep", Decimal("1.00")), ("2026-10-01", "new oct", Decimal("3.00"))]


def test_a_failed_import_changes_nothing(home) -> None:
    cfg, con = home
    con.execute("create schema marts; create table marts.a as select 1 as kept; "
                "create table marts.b as select 1 as kept")
    _exported(cfg, "marts", "a", "select 2 as replaced")
    broken = spark.marts_dir(cfg) / "tables" / "marts" / "b"
    broken.mkdir(parents=True)
    (broken / "part-00000.parquet").write_text("not parquet")
    with pytest.raises(duckdb.Error):
        spark.import_marts(con, cfg)
    assert con.execute("select * from marts.a").fetchall() == [(1,)]


def test_the_profiles_ansi_mode_survives_dbt_spark() -> None:
    pytest.importorskip("dbt.adapters.spark")
    from dbt.adapters.spark.connections import SparkCredentials

    def credentials():
        return SparkCredentials(method="session", host="localhost", schema="s", database=None,
                                server_side_parameters={"spark.sql.ansi.enabled": "true"})

    spark.keep_profile_ansi_mode()
    assert credentials().server_side_parameters["spark.sql.ansi.enabled"] == "true"
