"""`meterline docs` through the real CLI: the dbt documentation site of a home, built read-only
(never the writer's turn, never a write to the warehouse), also while a writer holds the file.

The home is the hand-made October (tests/handmade.py), ingested and billed once per module."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_meterline
from tests.handmade import make_home

pytestmark = pytest.mark.e2e

SITE_FILES = ("index.html", "manifest.json", "catalog.json", "static_index.html", "about.json")


@pytest.fixture(scope="module")
def billed(tmp_path_factory) -> tuple[Path, Path, Path]:
    home, cat, cwd = make_home(tmp_path_factory.mktemp("docs"))
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, cat, cwd


def _fingerprint(path: Path) -> tuple:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _site(home: Path) -> tuple[dict, dict, dict]:
    docs = home / "docs"
    return tuple(json.loads((docs / name).read_text())
                 for name in ("manifest.json", "catalog.json", "about.json"))


def _documented() -> dict[str, tuple[str, dict[str, str]]]:
    """model -> (its description, {column: description}) from every models/**/_*.yml."""
    found = {}
    for path in (REPO / "dbt_project" / "models").rglob("_*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            found[model["name"]] = (model.get("description", ""), {
                c["name"]: c.get("description", "") for c in model.get("columns", [])})
    return found


class _Writer:
    """Another process holding what a `bill` in progress holds, until stopped: the writer's
    turn (its lock file) and, unless ``between_steps``, the warehouse read-write."""

    def __init__(self, home: Path, *, between_steps: bool = False):
        code = ("import duckdb, fcntl, sys\n"
                f"lock = open({str(home / 'dagster' / 'writer.lock')!r}, 'a')\n"
                "fcntl.flock(lock, fcntl.LOCK_EX)\n"
                + ("" if between_steps else
                   f"con = duckdb.connect({str(home / 'warehouse.duckdb')!r})\n")
                + "print('held', flush=True)\n"
                "sys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        assert self.proc.stdout.readline().strip() == "held"
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_docs_of_a_billed_home_reads_only(billed):
    home, cat, cwd = billed
    warehouse, lock = home / "warehouse.duckdb", home / "dagster" / "writer.lock"
    before = _fingerprint(warehouse), lock.stat().st_mtime_ns, _tree(home / "dagster")

    done = run_meterline(["docs"], home=home, catalog=cat, cwd=cwd, timeout=300)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"{home / 'docs'}/" in done.stdout and "/operator/docs/" in done.stdout
    assert "http.server --bind 127.0.0.1" in done.stdout
    assert "read from the warehouse" in done.stdout
    assert all((home / "docs" / name).stat().st_size > 0 for name in SITE_FILES)
    # read only: the warehouse, the writer's lock and the home's dbt folder are as they were
    assert (_fingerprint(warehouse), lock.stat().st_mtime_ns, _tree(home / "dagster")) == before
    assert not Path(f"{warehouse}.wal").exists()

    manifest, catalog, about = _site(home)
    assert about["source"] == "warehouse" and about["without_column_types"] == []
    assert catalog["errors"] is None
    lines = manifest["nodes"]["model.meterline.fct_invoice_lines"]
    assert lines["database"] == "warehouse" and lines["schema"] == "marts"
    assert lines["columns"]["amount"]["description"].startswith("The line amount, rounded once")
    invoices = catalog["nodes"]["model.meterline.fct_invoices"]["columns"]
    assert invoices["total"]["type"] == "DECIMAL(38,4)"
    assert invoices["invoice_id"]["type"] == "VARCHAR"
    assert "source.meterline.raw.usage_events" in catalog["sources"]
    # every description written in the models' YAML reaches the site
    for name, (description, columns) in _documented().items():
        node = manifest["nodes"][f"model.meterline.{name}"]
        assert node["description"] == description, name
        for column, text in columns.items():
            assert node["columns"][column]["description"] == text, f"{name}.{column}"
    # and every column of the public tables has one
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] == "model" and node["schema"] == "marts":
            built = catalog["nodes"][uid]["columns"]
            assert node["description"], uid
            undocumented = [c for c in built if not node["columns"].get(c, {}).get("description")]
            assert undocumented == [], uid
    # the page with both files inlined opens without a server
    static = (home / "docs" / "static_index.html").read_text()
    assert "MANIFEST.JSON INLINE DATA" not in static and "fct_invoice_lines" in static


def test_docs_while_a_writer_holds_the_warehouse_reads_the_snapshot(billed):
    home, cat, cwd = billed
    assert (home / "snapshot" / "warehouse.duckdb").exists()
    with _Writer(home):
        # the writer's lock file is held too: a command waiting for its turn would time out
        done = run_meterline(["docs"], home=home, catalog=cat, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "read from the readers' snapshot of" in done.stdout
    assert "without column types:" in done.stdout and "staging (" in done.stdout
    manifest, catalog, about = _site(home)
    assert about["source"] == "snapshot"
    assert catalog["errors"] is None
    assert "marts.fct_billed_events" in about["without_column_types"]
    assert "staging.stg_raw__usage_events" in about["without_column_types"]
    assert catalog["nodes"]["model.meterline.fct_invoices"]["columns"]["total"]["type"] \
        == "DECIMAL(38,4)"
    # descriptions and lineage do not depend on the database read
    stg = manifest["nodes"]["model.meterline.stg_raw__usage_events"]
    assert stg["description"]
    assert stg["depends_on"]["nodes"] == ["source.meterline.raw.usage_events"]


def test_docs_between_two_steps_of_a_run_reads_the_snapshot(billed):
    """A run holds the writer's turn but, between two steps, not the file: reading the
    warehouse then would fail the run's next step, so the snapshot is read."""
    home, cat, cwd = billed
    with _Writer(home, between_steps=True):
        done = run_meterline(["docs"], home=home, catalog=cat, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "read from the readers' snapshot of" in done.stdout
    assert _site(home)[2]["source"] == "snapshot"


def test_docs_of_a_busy_warehouse_without_snapshot_is_exit_1(billed, tmp_path):
    home = tmp_path / "copy"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(billed[0] / "warehouse.duckdb", home / "warehouse.duckdb")
    with _Writer(home):
        done = run_meterline(["docs"], home=home, catalog=billed[1], cwd=billed[2], timeout=120)
    assert done.returncode == 1
    assert "busy" in done.stderr and "no snapshot" in done.stderr
    assert not (home / "docs").exists()


def test_docs_of_a_home_without_warehouse_names_what_to_run(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    done = run_meterline(["docs"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 2
    assert "meterline ingest" in done.stderr and "meterline bill --period" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # nothing made: no site, no warehouse, no instance (so no writer's lock file)
    assert sorted(p.name for p in home.iterdir()) == ["landing"]
