"""Readers never open the warehouse while a `meterline` command holds the writer's turn: between
two steps of a run the file is free for a moment, and a reader holding it then would fail the
run's next step. They read the snapshot meanwhile (orchestration/lib/readers.py)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import duckdb

from orchestration.lib import readers
from orchestration.lib.settings import load


def _database(path: Path, label: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create table main.which as select ? as label", [label])
    con.close()


def test_reader_reads_the_snapshot_while_the_writers_turn_is_held(tmp_path):
    cfg = load({"METERLINE_HOME": str(tmp_path / "home"), "METERLINE_CATALOG_DIR": str(tmp_path)})
    _database(cfg.warehouse_path, "warehouse")
    _database(cfg.snapshot_path, "snapshot")
    cfg.dagster_home.mkdir(parents=True)
    notes: list[str] = []

    def which() -> str:
        with readers.reader(cfg, notice=notes.append) as con:
            return con.execute("select label from main.which").fetchone()[0]

    assert not readers.writer_turn_held(cfg)  # no lock file yet
    assert which() == "warehouse"
    with (cfg.dagster_home / "writer.lock").open("a") as lock:
        assert which() == "warehouse"  # the file exists, nobody holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert readers.writer_turn_held(cfg)
        assert which() == "snapshot"
        assert notes and "reading the snapshot" in notes[-1]
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert not readers.writer_turn_held(cfg)
    assert which() == "warehouse"
