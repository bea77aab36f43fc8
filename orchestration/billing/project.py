"""The dbt project, as Dagster sees it. Kept in a module of its own so that
`dagster-dbt project prepare-and-package --file orchestration/billing/project.py` can build the
manifest before the definitions are imported (CI and install time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import cached_property
from importlib import metadata
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

# dbt renders profiles.yml while parsing: give the warehouse variable a harmless default.
os.environ.setdefault("METERLINE_WAREHOUSE", str(DBT_PROJECT_DIR / "target" / "parse.duckdb"))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """The dbt installed beside this Python (a venv need not be on PATH)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_run_executable() -> str:
    """What the Dagster dbt resource starts: `meterline-dbt`, the same dbt, but dying with the
    process that started it (a `kill -9` of `meterline bill` never leaves dbt holding the
    warehouse's lock). Falls back to dbt itself where the wrapper is not installed."""
    candidate = Path(sys.executable).with_name("meterline-dbt")
    return str(candidate) if candidate.exists() else dbt_executable()


class MeterlineDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, told the dbt version instead of asking: before every command it
    otherwise starts `dbt --version`, a process that imports dbt (about 3 s of every `bill`). The
    dbt it starts is the dbt-core installed beside this Python (`dbt_run_executable`)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(metadata.version("dbt-core"))


def _newest_source_mtime() -> float:
    newest = 0.0
    for folder in ("models", "macros", "tests", "seeds"):
        for path in (DBT_PROJECT_DIR / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    for name in ("dbt_project.yml", "profiles.yml"):
        newest = max(newest, (DBT_PROJECT_DIR / name).stat().st_mtime)
    return newest


def ensure_manifest() -> Path:
    """Build the dbt manifest when it is missing or older than the project's files.

    `meterline` calls this before it loads the Dagster definitions, so a fresh clone works without
    a separate preparation step. It runs `dbt parse` (no database work)."""
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime():
        return manifest
    env = dict(os.environ)
    env.setdefault("METERLINE_WAREHOUSE", str(DBT_PROJECT_DIR / "target" / "parse.duckdb"))
    # Parse into a private folder and move the manifest into place atomically: another process
    # (a second CLI call, the UI) may be reading the manifest at this moment.
    scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
    try:
        command = [dbt_executable(), "parse", "--quiet",
                   "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
                   "--target-path", str(scratch), "--log-path", str(scratch)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        built = scratch / "manifest.json"
        if done.returncode != 0 or not built.exists():
            raise RuntimeError(f"dbt parse failed:\n{done.stdout}\n{done.stderr}")
        os.replace(built, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


# `dagster dev` (also through `meterline ui`) builds a missing or stale manifest when the code
# location loads, with the dbt beside this Python; everything else builds it explicitly.
if os.environ.get("DAGSTER_IS_DEV_CLI"):
    ensure_manifest()
