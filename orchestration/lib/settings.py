"""Where Meterline keeps things (CONTRACT.md section 1). Read when a command or run starts,
never at import time, so one install serves any number of homes and catalogs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class UsageError(Exception):
    """Bad usage: exit code 2 (a missing home or catalog, a malformed period, ...)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    catalog_dir: Path
    grace_hours: int

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

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


def load(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("METERLINE_HOME") or "data").expanduser().resolve()
    catalog_dir = Path(env.get("METERLINE_CATALOG_DIR") or "seeds").expanduser().resolve()
    raw_grace = env.get("METERLINE_GRACE_HOURS") or "24"
    try:
        grace_hours = int(raw_grace)
        if grace_hours < 0:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"METERLINE_GRACE_HOURS={raw_grace!r} is not a whole number of hours >= 0"
        ) from None
    return Settings(home=home, catalog_dir=catalog_dir, grace_hours=grace_hours)
