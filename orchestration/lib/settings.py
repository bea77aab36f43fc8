"""Where Meterline keeps things (CONTRACT.md section 1). Read when a command or run starts,
never at import time, so one install serves any number of homes and catalogs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class UsageError(Exception):
    """Bad usage: exit code 2 (a missing home or catalog, a malformed period, ...)."""


#: METERLINE_MEMORY_LIMIT when unset.
DEFAULT_MEMORY_LIMIT = "4GB"


@dataclass(frozen=True)
class Settings:
    home: Path
    catalog_dir: Path
    grace_hours: int
    # It bounds every connection, Meterline's and dbt's, and DuckDB spills to temp_directory
    # instead of growing (docs/operations.md section 1a). 4GB keeps every process under 8 GiB
    # (DuckDB's own default, 80% of the machine, let a 10M-event ingest take 18 GiB); JSON Lines
    # are read in pieces, so no file size needs more. A CSV file is still read whole.
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    threads: int = 0  # 0: every core this process may use
    temp_dir: Path | None = None  # None: DuckDB's default, <database>.tmp beside the file
    # After landing new events, `ingest` (and the landing sensor) rebuilds the open months'
    # drafts so the explorers show month-to-date usage and estimates without a `bill`
    # (METERLINE_INGEST_REFRESH=off: landing only; docs/operations.md).
    ingest_refresh: bool = True
    # METERLINE_ENGINE: where the dbt models run. "duckdb" (the default): the home's warehouse
    # file. "spark": Apache Spark through dbt-spark (docs/spark.md); landing, the ledger, the
    # checks and every reader stay on the DuckDB file, which receives Spark's results.
    engine: str = "duckdb"

    def duckdb_config(self, database: Path | str) -> dict[str, str]:
        """The DuckDB settings of every connection to ``database``, Meterline's and dbt's."""
        temp = self.temp_dir or f"{database}.tmp"
        return {"threads": str(self.cores), "temp_directory": str(temp),
                "memory_limit": self.memory_limit}

    @property
    def cores(self) -> int:
        """METERLINE_THREADS, else every core this process may use: DuckDB's threads and the
        processes that print a period's PDFs."""
        return self.threads or len(os.sched_getaffinity(0))

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def spark_home(self) -> Path:
        """Spark's files for this home (METERLINE_ENGINE=spark): its warehouse of Parquet
        tables, its metastore, the exchanged Parquet files and its log."""
        return self.home / "spark"

    @property
    def snapshot_path(self) -> Path:
        """Read-only copy for readers while a writer holds the warehouse."""
        return self.home / "snapshot" / "warehouse.duckdb"

    @property
    def invoices_dir(self) -> Path:
        return self.home / "invoices"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_target_dir(self) -> Path:
        """dbt's working folder for this home's runs (partial-parse state, run results,
        dbt.log): per home, so homes billed at once from one checkout do not share it."""
        return self.dagster_home / "dbt"

    def require_home(self) -> None:
        if not self.home.is_dir():
            raise UsageError(
                f"Meterline home {self.home} does not exist: create it with "
                f"`mkdir -p {self.home}/landing` (or run `meterline demo`), or set METERLINE_HOME."
            )

    def require_catalog(self) -> None:
        if not self.catalog_dir.is_dir():
            raise UsageError(
                f"catalog directory {self.catalog_dir} does not exist: put the price book CSVs "
                f"(customers.csv, meters.csv, product_items.csv, rates.csv, rate_tiers.csv, "
                f"commitments.csv) there, or set METERLINE_CATALOG_DIR."
            )


#: The values of METERLINE_ENGINE (docs/spark.md).
ENGINES = ("duckdb", "spark")

_SWITCH = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False}


def _whole_number(env, name: str, default: str, what: str) -> int:
    raw = env.get(name) or default
    try:
        number = int(raw)
        if number < 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a whole number {what}") from None
    return number


def load(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("METERLINE_HOME") or "data").expanduser().resolve()
    catalog_dir = Path(env.get("METERLINE_CATALOG_DIR") or "seeds").expanduser().resolve()
    grace_hours = _whole_number(env, "METERLINE_GRACE_HOURS", "24", "of hours >= 0")
    memory_limit = env.get("METERLINE_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    if not _SIZE.match(memory_limit):
        raise UsageError(
            f"METERLINE_MEMORY_LIMIT={memory_limit!r} is not a size: give a number and a unit, "
            f"e.g. 4GB, 6GiB or 512MB"
        )
    threads = _whole_number(env, "METERLINE_THREADS", "0", ">= 1 (or 0 for every core)")
    temp_dir = env.get("METERLINE_TEMP_DIR")
    refresh = (env.get("METERLINE_INGEST_REFRESH") or "on").strip().lower()
    if refresh not in _SWITCH:
        raise UsageError(f"METERLINE_INGEST_REFRESH={refresh!r} is not on or off")
    engine = (env.get("METERLINE_ENGINE") or "duckdb").strip().lower()
    if engine not in ENGINES:
        raise UsageError(f"METERLINE_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
    return Settings(home=home, catalog_dir=catalog_dir, grace_hours=grace_hours,
                    memory_limit=memory_limit.strip(), threads=threads,
                    temp_dir=Path(temp_dir).expanduser().resolve() if temp_dir else None,
                    ingest_refresh=_SWITCH[refresh], engine=engine)


def duckdb_config(database: Path | str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The DuckDB settings of ``database`` for the METERLINE_* variables of ``environ``
    (default: the process's, as they are now)."""
    return load(environ).duckdb_config(database)
