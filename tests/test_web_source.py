"""The web server's reads (orchestration/web/source.py): one open database per snapshot file.

Real DuckDB files replaced by an atomic rename, as orchestration/lib/snapshot.py does: a request
reads the file that was at the path when it began, never an older one; a request still reading a
replaced file keeps it until it ends; that file's database is closed (its disk space freed) once
the next request has opened the newer file; every cursor reads in UTC with external access off."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from orchestration.lib import settings
from orchestration.web import source
from tests.conftest import replaced_files_still_open

BASE = datetime(2026, 12, 1, tzinfo=UTC)


def _cfg(home: Path):
    return settings.load({"METERLINE_HOME": str(home), "METERLINE_THREADS": "1",
                          "METERLINE_MEMORY_LIMIT": "256MB"})


def _publish(cfg, version: int) -> None:
    """Write a snapshot whose built_at says ``version`` and rename it over the readers' path."""
    cfg.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.snapshot_path.with_name(f"next-{version}.duckdb")
    con = duckdb.connect(str(tmp))
    con.execute("set TimeZone = 'UTC'")
    con.execute("create table main.snapshot_about (built_at timestamptz)")
    con.execute("insert into main.snapshot_about values (?)", [BASE + timedelta(seconds=version)])
    con.execute("create table main.v as select ?::integer as version", [version])
    con.close()
    os.replace(tmp, cfg.snapshot_path)


def _version(con) -> int:
    return con.execute("select version from main.v").fetchone()[0]


def test_a_request_reads_the_file_it_began_with_and_the_next_one_reads_the_new_file(tmp_path):
    cfg = _cfg(tmp_path)
    _publish(cfg, 1)
    with source.reading(cfg) as (old, freshness):
        assert (_version(old), freshness.as_of, freshness.source) == (
            1, BASE + timedelta(seconds=1), "snapshot")
        _publish(cfg, 2)
        with source.reading(cfg) as (new, fresh2):
            assert (_version(new), fresh2.as_of) == (2, BASE + timedelta(seconds=2))
        assert _version(old) == 1  # still its own file while it runs
        assert len(replaced_files_still_open(str(cfg.snapshot_path.parent))) == 1
    # the replaced file's database closed with its last request: nothing keeps its disk
    assert replaced_files_still_open(str(cfg.snapshot_path.parent)) == []
    with source.reading(cfg) as (con, _):
        assert _version(con) == 2


def test_a_file_replaced_with_no_request_on_it_is_closed_when_the_next_one_opens(tmp_path):
    cfg = _cfg(tmp_path)
    for version in range(1, 6):
        _publish(cfg, version)
        with source.reading(cfg) as (con, _):
            assert _version(con) == version
    assert replaced_files_still_open(str(cfg.snapshot_path.parent)) == []


def test_every_cursor_reads_in_utc_and_nothing_but_the_snapshot(tmp_path):
    cfg = _cfg(tmp_path)
    _publish(cfg, 1)
    for _ in range(2):  # the first request opens the file, the second reuses it
        with source.reading(cfg) as (con, _):
            assert con.execute("select current_setting('TimeZone')").fetchone()[0] == "UTC"
            assert con.execute("select current_database()").fetchone()[0] == "data"
            with pytest.raises(duckdb.PermissionException):
                con.execute("select * from read_csv('/etc/hostname')").fetchall()
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"attach '{tmp_path / 'other.duckdb'}' as other")
            with pytest.raises(duckdb.Error):
                con.execute("set enable_external_access = true")


def test_concurrent_requests_never_read_a_file_older_than_the_one_published_before_them(tmp_path):
    cfg = _cfg(tmp_path)
    _publish(cfg, 0)
    published = [0]
    stale, errors, reads = [], [], [0]
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            floor = published[0]
            try:
                with source.reading(cfg) as (con, freshness):
                    seen = _version(con)
                    if seen < floor or freshness.as_of != BASE + timedelta(seconds=seen):
                        stale.append((floor, seen, freshness.as_of))
                    reads[0] += 1
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        for version in range(1, 41):
            _publish(cfg, version)
            published[0] = version
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert (stale, errors) == ([], [])
    assert reads[0] > 40
    # the open database may still be a file replaced after the last read: the next request
    # opens the newest and lets every replaced one go
    with source.reading(cfg) as (con, _):
        assert _version(con) == 40
    assert replaced_files_still_open(str(cfg.snapshot_path.parent)) == []
