"""`meterline docs`: the dbt documentation site (lineage, every model's and column's
description, column types) of a home, written to ``$METERLINE_HOME/docs/``.

It reads only, and never waits for the writer's turn:

- dbt runs with the profile target ``docs`` (dbt_project/profiles.yml): an in-memory database
  that attaches the warehouse **read-only** under the name the models are built in
  (``warehouse``). ``dbt docs generate --no-compile`` builds ``catalog.json`` from that
  database's information schema; no model is compiled, so no ``billing_period`` var is needed.
  ``manifest.json`` (descriptions, lineage) comes from a ``dbt parse`` just before, in the same
  scratch target path, so the home's own dbt folder (``dagster/dbt/``, partial-parse state) and
  the checkout's ``dbt_project/target/`` are not touched.
- DuckDB lets no other process open the file while a writer holds it, not even read-only. Then,
  and while a `meterline` command holds the writer's turn (between two steps of its run the file
  is free for a moment, and a reader then would fail the next step), the site is built from the
  readers' snapshot (orchestration/lib/snapshot.py): the same descriptions and lineage, but
  column types only for the relations the snapshot serves (the output names the others).
- The files are replaced one by one by an atomic rename, so the web app (``/operator/docs/``)
  never serves a half-written file."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from orchestration.cli.output import EXIT_FAILED, EXIT_OK, say
from orchestration.lib import readers
from orchestration.lib.settings import Settings, UsageError

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DOCS_TARGET = "docs"
#: What the site folder holds: dbt's page (it reads the two JSON files beside it), the same page
#: with both inlined (opens from disk, no server), and what this command read.
SITE_FILES = ("catalog.json", "manifest.json", "index.html", "static_index.html")
ABOUT_FILE = "about.json"
DBT_TIMEOUT_S = 600
_LOCKED = "Could not set lock on file"


@dataclass(frozen=True)
class Source:
    kind: str  # "warehouse" or "snapshot"
    path: Path

    def describe(self) -> str:
        if self.kind == "warehouse":
            return f"the warehouse {self.path} (read-only)"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.path.stat().st_mtime))
        return (f"the readers' snapshot of {stamp} ({self.path}): a run is writing the "
                f"warehouse")


class DbtFailed(Exception):
    """dbt exited with an error; the message holds its output."""


def _is_free(path: Path) -> bool:
    """No writer holds ``path`` now (a moment's read-only open; a writer may still start
    before dbt attaches it, which `cmd_docs` handles by trying the snapshot next)."""
    import duckdb

    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.IOException as exc:
        if _LOCKED in str(exc):
            return False
        raise
    return True


def _dbt_program() -> str:
    """`meterline-dbt` (dbt, dying with this process: an orphan would keep the warehouse's
    read lock and stop the next writer), else the dbt beside this Python."""
    for name in ("meterline-dbt", "dbt"):
        candidate = Path(sys.executable).with_name(name)
        if candidate.exists():
            return str(candidate)
    return "dbt"


def _dbt(args: list[str], *, database: Path, scratch: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update({"METERLINE_WAREHOUSE": str(database), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
                "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    command = [_dbt_program(), *args, "--target", DOCS_TARGET,
               "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
               "--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs")]
    try:
        done = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True,
                              timeout=DBT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DbtFailed(f"`dbt {args[0]}` did not finish in {DBT_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise DbtFailed(f"`dbt {' '.join(args)}` failed:\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def _catalog(source: Source, scratch: Path) -> dict:
    """``dbt docs generate --no-compile`` of ``source`` into ``scratch/target``; its catalog.
    A catalog that could not read the database (dbt still exits 0) raises DbtFailed."""
    _dbt(["docs", "generate", "--no-compile"], database=source.path, scratch=scratch)
    catalog = json.loads((scratch / "target" / "catalog.json").read_text())
    if catalog.get("errors"):
        raise DbtFailed("dbt could not read the database's catalog:\n  "
                        + "\n  ".join(catalog["errors"]))
    return catalog


def _static_page(target: Path) -> None:
    """dbt's page with both files inlined, as `docs generate --static` writes it (which needs
    a compiled manifest)."""
    page = (target / "index.html").read_text()
    page = page.replace('"MANIFEST.JSON INLINE DATA"', (target / "manifest.json").read_text())
    page = page.replace('"CATALOG.JSON INLINE DATA"', (target / "catalog.json").read_text())
    (target / "static_index.html").write_text(page)


def _relations(manifest: dict) -> dict[str, str]:
    """unique_id -> schema.name of every relation the site could show column types for."""
    nodes = {uid: f"{n['schema']}.{n.get('alias') or n['name']}"
             for uid, n in manifest["nodes"].items()
             if n["resource_type"] in ("model", "seed", "snapshot")
             and n.get("config", {}).get("materialized") != "ephemeral"}
    nodes.update({uid: f"{s['schema']}.{s.get('identifier') or s['name']}"
                  for uid, s in manifest["sources"].items()})
    return nodes


def _without_types_text(names: list[str]) -> str:
    """``staging (13), intermediate (20), raw.usage_events``: whole schemas counted."""
    by_schema: dict[str, list[str]] = {}
    for name in names:
        by_schema.setdefault(name.split(".", 1)[0], []).append(name)
    return ", ".join(f"{schema} ({len(items)})" if len(items) > 2 else ", ".join(items)
                     for schema, items in sorted(by_schema.items()))


def _publish(scratch: Path, site: Path, about: dict) -> None:
    """Copy the site into ``site``, each file by an atomic rename (the catalog first)."""
    site.mkdir(parents=True, exist_ok=True)
    (scratch / "target" / ABOUT_FILE).write_text(json.dumps(about, indent=2) + "\n")
    for name in (*SITE_FILES, ABOUT_FILE):
        partial = site / f".{name}.tmp"
        shutil.copyfile(scratch / "target" / name, partial)
        os.replace(partial, site / name)


def _busy() -> readers.WarehouseBusy:
    return readers.WarehouseBusy(
        "the warehouse is busy (a writer holds it) and no snapshot exists yet: run "
        "`meterline docs` again when the run ends")


def cmd_docs(args: argparse.Namespace, cfg: Settings) -> int:
    cfg.require_home()
    if not cfg.warehouse_path.exists() and not cfg.snapshot_path.exists():
        raise UsageError(
            f"no warehouse at {cfg.warehouse_path} to document: run `meterline ingest` and "
            f"`meterline bill --period YYYY-MM` first (or `meterline demo` for a sample home)")
    live = (cfg.warehouse_path.exists()
            and not readers.writer_turn_held(cfg)
            and _is_free(cfg.warehouse_path))
    sources = [Source("warehouse", cfg.warehouse_path)] if live else []
    if cfg.snapshot_path.exists():
        sources.append(Source("snapshot", cfg.snapshot_path))
    if not sources:
        raise _busy()
    site = cfg.home / "docs"
    with tempfile.TemporaryDirectory(prefix="meterline-docs-") as tmp:
        scratch = Path(tmp)
        catalog = used = None
        try:
            # descriptions and lineage: no database is opened
            _dbt(["parse", "--quiet"], database=sources[0].path, scratch=scratch)
            for source in sources:
                try:
                    catalog, used = _catalog(source, scratch), source
                    break
                except DbtFailed as exc:
                    if _LOCKED not in str(exc):
                        raise
        except DbtFailed as exc:
            say(f"meterline docs: {exc}")
            return EXIT_FAILED
        if used is None:
            raise _busy()
        manifest = json.loads((scratch / "target" / "manifest.json").read_text())
        relations = _relations(manifest)
        typed = set(catalog["nodes"]) | set(catalog["sources"])
        missing = sorted(name for uid, name in relations.items() if uid not in typed)
        _static_page(scratch / "target")
        _publish(scratch, site, {
            "generated_at": catalog["metadata"]["generated_at"], "source": used.kind,
            "database": str(used.path), "relations": len(relations),
            "relations_with_column_types": len(relations) - len(missing),
            "without_column_types": missing})
    print(f"dbt documentation of {cfg.home} written to {site}/")
    print(f"  read from {used.describe()}")
    print(f"  column types for {len(relations) - len(missing)} of {len(relations)} relations")
    if missing:
        why = ("the snapshot does not serve them" if used.kind == "snapshot"
               else "not built yet: `meterline bill --period YYYY-MM` builds them")
        print(f"  without column types: {_without_types_text(missing)} ({why})")
        if used.kind == "snapshot":
            print("  run `meterline docs` again when the run ends for every column type")
    print("open it:")
    print("  meterline serve, then http://127.0.0.1:8080/operator/docs/ (the operator's token)")
    print(f"  or python -m http.server --bind 127.0.0.1 --directory {site} 8000, "
          f"then http://127.0.0.1:8000/")
    print(f"  or the single file {site / 'static_index.html'} in a browser (no server)")
    return EXIT_OK
