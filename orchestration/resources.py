"""Run-time configuration for assets: read when a run starts, never at import time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.lib import settings as settings_lib
from orchestration.lib import snapshot, warehouse


class MeterlineResource(dg.ConfigurableResource):
    """Where the home and catalog are. Empty fields fall back to the METERLINE_* variables as
    they are when the run starts (CONTRACT.md section 1)."""

    home: str = ""
    catalog_dir: str = ""

    def settings(self) -> settings_lib.Settings:
        env = dict(os.environ)
        if self.home:
            env["METERLINE_HOME"] = self.home
        if self.catalog_dir:
            env["METERLINE_CATALOG_DIR"] = self.catalog_dir
        return settings_lib.load(env)

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one read-write connection of a step. Steps that touch DuckDB run in the
        `duckdb` pool (limit 1 in the home's dagster.yaml), so writers never overlap."""
        cfg = self.settings()
        cfg.require_home()
        with warehouse.connection(cfg.warehouse_path) as con:
            yield con

    def refresh_snapshot(self) -> Path:
        """Publish the readers' snapshot (`invoices`, `explain`, the notebook: the tables they
        read, no per-event table; orchestration/lib/snapshot.py) by an atomic rename. Called at
        the end of every writing step, while it still holds the `duckdb` pool slot and after its
        connection is closed.

        Skipped when the warehouse has not changed since the last snapshot; checks the free
        space first (`diskspace.DiskFull`, nothing written); on any error the old snapshot stays
        and no temporary file is left (snapshot.publish)."""
        cfg = self.settings()
        snapshot.publish(cfg.warehouse_path, cfg.snapshot_path)
        return cfg.snapshot_path
