"""DuckDB's memory limit, threads and spill directory: one place resolves them
(settings.load), every warehouse connection and every dbt run applies them."""

from __future__ import annotations

import os
import subprocess

import pytest

from orchestration.lib import settings as settings_lib
from orchestration.lib import warehouse
from orchestration.lib.settings import UsageError


def _env(tmp_path, **values):
    return {"METERLINE_HOME": str(tmp_path), **values}


def test_defaults_limit_memory_to_4gb_use_every_core_and_spill_beside_the_database(tmp_path):
    config = settings_lib.duckdb_config(tmp_path / "w.duckdb", _env(tmp_path))
    assert config == {"threads": str(len(os.sched_getaffinity(0))),
                      "temp_directory": f"{tmp_path / 'w.duckdb'}.tmp", "memory_limit": "4GB"}
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connection(path) as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "3.7 GiB"


def test_the_variables_set_every_connection(tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    monkeypatch.setenv("METERLINE_MEMORY_LIMIT", "1536MiB")
    monkeypatch.setenv("METERLINE_THREADS", "1")
    monkeypatch.setenv("METERLINE_TEMP_DIR", str(spill))
    path = tmp_path / "warehouse.duckdb"
    warehouse.connect(path).close()
    for read_only in (False, True):
        with warehouse.connection(path, read_only=read_only) as con:
            got = con.execute("select current_setting('memory_limit'), "
                              "current_setting('threads'), "
                              "current_setting('temp_directory')").fetchone()
        assert got == ("1.5 GiB", 1, str(spill)), read_only


@pytest.mark.parametrize(("name", "value", "words"), [
    ("METERLINE_MEMORY_LIMIT", "lots", "is not a size"),
    ("METERLINE_MEMORY_LIMIT", "4", "is not a size"),
    ("METERLINE_THREADS", "-1", "is not a whole number"),
    ("METERLINE_THREADS", "two", "is not a whole number"),
])
def test_a_bad_value_is_a_usage_error_naming_the_variable(tmp_path, name, value, words):
    with pytest.raises(UsageError, match=f"{name}={value!r} {words}"):
        settings_lib.load(_env(tmp_path, **{name: value}))


@pytest.mark.e2e
def test_dbt_runs_apply_the_resolved_settings(tmp_path):
    """The on-run-start hook hands METERLINE_DUCKDB_* to the engine: a value DuckDB refuses
    stops the run naming the setting, a good one builds."""
    from orchestration.billing.project import DBT_PROJECT_DIR, dbt_executable

    def seed(**engine):
        env = dict(os.environ, METERLINE_WAREHOUSE=str(tmp_path / "w.duckdb"), **engine)
        return subprocess.run(
            [dbt_executable(), "seed", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "t"),
             "--log-path", str(tmp_path / "logs")],
            env=env, capture_output=True, text=True, check=False, cwd=tmp_path)

    refused = seed(METERLINE_DUCKDB_MEMORY_LIMIT="lots")
    assert refused.returncode != 0
    assert "memory" in refused.stdout.lower(), refused.stdout[-2000:]
    built = seed(METERLINE_DUCKDB_MEMORY_LIMIT="1GB", METERLINE_DUCKDB_THREADS="1",
                 METERLINE_DUCKDB_TEMP_DIRECTORY=str(tmp_path / "spill"))
    assert built.returncode == 0, built.stdout[-2000:]


def test_a_file_that_does_not_fit_the_memory_limit_fails_the_run_naming_it(tmp_path,
                                                                          monkeypatch):
    """Not "unreadable" (the file is fine, and would be retried forever): the run stops before
    writing anything and says which variable to raise."""
    from datetime import UTC, datetime

    from orchestration.ingestion.landing import IngestError, Lookup, ingest

    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    monkeypatch.setenv("METERLINE_MEMORY_LIMIT", "32MB")
    monkeypatch.setenv("METERLINE_THREADS", "1")
    landing = tmp_path / "landing"
    landing.mkdir()
    line = '{"event_id": "e%d", "customer_id": "acme", "meter": "calls", ' \
           '"timestamp": "2026-10-01T00:00:00Z", "dimensions": {"pad": "%s"}}\n'
    with (landing / "big.jsonl").open("w") as fh:
        fh.writelines(line % (i, "x" * 200) for i in range(300_000))
    con = warehouse.connect(tmp_path / "warehouse.duckdb")
    try:
        with pytest.raises(IngestError, match=r"big.jsonl: ran out of memory while reading it "
                                              r"\(DuckDB's memory limit is 30\.5 MiB.*raise "
                                              r"METERLINE_MEMORY_LIMIT"):
            ingest(con, landing_dir=landing, paths=None,
                   lookup=Lookup(customers={"acme"}, meters={"calls": "count"}),
                   run_id="r1", now=datetime(2026, 11, 3, tzinfo=UTC))
        assert con.execute("select count(*) from raw.usage_events").fetchone()[0] == 0
        assert con.execute("select count(*) from raw.landed_files").fetchone()[0] == 0
    finally:
        con.close()
