"""Shared fixtures: real homes in temp dirs, the real `meterline` command, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
CONFORMANCE_V12 = SHARED / "conformance-v1.2"  # the cases v1.2 added (level meters)
# One pinned clock for the whole suite (orchestration/lib/clock.py): no test depends on today's
# date or the machine's time zone. The default is the hardest day, the 1st of a month inside the
# grace period; `METERLINE_TEST_NOW=2026-11-17T12:00:00Z pytest` runs the suite on another day
# (.ci/run does both). Each `meterline` command started by a test gets the pinned clock's current
# reading, so instants recorded by successive commands keep their order.
PINNED_NOW = os.environ.get("METERLINE_TEST_NOW") or "2026-12-01T05:00:00Z"
os.environ["METERLINE_NOW"] = PINNED_NOW
MISSING_SHARED = (
    f"{SHARED} is absent: the conformance cases live in the workspace's shared/ folder next to "
    "the repository (a clone outside that workspace cannot run them)"
)


def meterline_bin() -> str:
    candidate = Path(sys.executable).with_name("meterline")
    return str(candidate) if candidate.exists() else "meterline"


def pinned_now() -> str:
    """The pinned clock's reading now, as METERLINE_NOW text."""
    from orchestration.lib import clock

    os.environ["METERLINE_NOW"] = PINNED_NOW
    return clock.now().isoformat()


def run_meterline(args: list[str], *, home: Path, catalog: Path, cwd: Path,
                  env: dict[str, str] | None = None, timeout: int = 600
                  ) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("METERLINE_", "DAGSTER_"))}
    full_env.update({"METERLINE_HOME": str(home), "METERLINE_CATALOG_DIR": str(catalog),
                     "METERLINE_NOW": pinned_now(),
                     # landing only, unless a test asks for the explorers' refresh: the tests
                     # that bill do so themselves (tests/test_month_to_date.py covers it)
                     "METERLINE_INGEST_REFRESH": "off"})
    full_env.update(env or {})
    return subprocess.run([meterline_bin(), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def replaced_files_still_open(marker: str) -> list[str]:
    """Files this process still holds open after they were replaced or removed (unlinked),
    whose path holds ``marker``: a replaced readers' snapshot must not keep its disk."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if marker in target and target.endswith("(deleted)"):
            held.append(target)
    return held


@pytest.fixture
def shared_conformance() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip(MISSING_SHARED)
    return CONFORMANCE.parent


@pytest.fixture
def home_env(monkeypatch):
    """Point this process's run-time settings and Dagster instance at a home (as `meterline ui`
    does for the runs its daemon launches); undone after the test. Returns the instance."""
    def use(home: Path, catalog: Path):
        import dagster as dg

        from orchestration import instance as meterline_instance
        from orchestration.lib.settings import load

        for key in [k for k in os.environ if k.startswith(("METERLINE_", "DAGSTER_"))]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("METERLINE_HOME", str(home))
        monkeypatch.setenv("METERLINE_CATALOG_DIR", str(catalog))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        monkeypatch.setenv("METERLINE_NOW", PINNED_NOW)
        meterline_instance.prepare_instance(load())  # writes the home's dagster.yaml
        return dg.DagsterInstance.get()
    return use


# The two tiers (README, Makefile): files that run the real CLI, Dagster runs or dbt builds are
# `e2e`, the Chromium ones `browser` too; everything else is the fast tier (`make test`).
E2E_FILES = frozenset({
    "test_audit.py", "test_benchmark.py", "test_billing_e2e.py", "test_browser.py",
    "test_conformance.py",
    "test_hardening_resources.py", "test_kill_dbt_child.py", "test_landing_hardening.py",
    "test_orchestration.py", "test_publish_kill_and_ledger.py", "test_publishing.py",
    "test_reconcile.py", "test_ui_hardening.py", "test_browser_explorers.py",
    "test_docs_command.py", "test_month_to_date.py",
    "test_spark_demo.py", "test_spark_guard.py", "test_spark_conformance.py",
})
BROWSER_FILES = frozenset({"test_browser.py", "test_browser_explorers.py"})


# The longest files (the Spark tier: about 10 and 3 minutes on 2 cores) start first, so that the
# other worker works through the rest meanwhile instead of leaving one worker idle at the end.
LONGEST_FIRST = ("test_spark_demo.py", "test_spark_conformance.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: (LONGEST_FIRST.index(item.path.name)
                                 if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)))
    for item in items:
        if item.path.name in E2E_FILES:
            item.add_marker(pytest.mark.e2e)
        if item.path.name in BROWSER_FILES:
            item.add_marker(pytest.mark.browser)
