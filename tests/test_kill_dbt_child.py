"""`kill -9` of `meterline bill` while dbt runs (issue 12, item 4): the dbt child dies with its
parent, so the next `bill` succeeds at once; and a lock held by a process outside Meterline's
runs is named in the CLI's own message (which process, what to do)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import meterline_bin, pinned_now, run_meterline
from tests.handmade import make_home


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _env(home: Path, cat: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env.update(METERLINE_HOME=str(home), METERLINE_CATALOG_DIR=str(cat),
               METERLINE_NOW=pinned_now())
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_dbt_dies_with_a_killed_bill_and_the_next_bill_succeeds(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    bill = subprocess.Popen([meterline_bin(), "bill", "--period", "2026-10"], env=_env(home, cat),
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dbt = None
    deadline = time.monotonic() + 180
    try:
        while dbt is None:
            assert bill.poll() is None, "bill ended before dbt started"
            assert time.monotonic() < deadline, "dbt never started"
            builds = [(pid, cmd) for pid, cmd in _children(bill.pid)
                      if " build " in f"{cmd} " and "dbt" in cmd]
            dbt = builds[0][0] if builds else None
            time.sleep(0.05)
        os.kill(bill.pid, signal.SIGKILL)
        bill.wait(timeout=30)
        gone_by = time.monotonic() + 10
        while _alive(dbt):
            assert time.monotonic() < gone_by, f"dbt {dbt} outlived the killed bill"
            time.sleep(0.05)
    finally:
        if bill.poll() is None:
            bill.kill()
        if dbt and _alive(dbt):
            os.kill(dbt, signal.SIGKILL)
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_lock_held_outside_meterline_is_named(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(120)", str(home / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat, cwd=cwd)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"process {holder.pid}" in done.stderr and f"kill {holder.pid}" in done.stderr
    assert "Traceback" not in done.stderr
