"""A demo home and `meterline serve` on it, for the tests that drive the web app in Chromium
(tests/test_browser_explorers.py, tests/test_browser_portal.py): one way to build the home, the
server's environment, and to start and stop the server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, meterline_bin, pinned_now, run_meterline

SERVE_START_SECONDS = 60


@dataclass(frozen=True)
class Demo:
    home: Path
    catalog: Path
    cwd: Path


def make_demo(root: Path) -> Demo:
    """`meterline demo` in a new home under ``root`` (about 3-4 minutes)."""
    home, cwd = root / "home", root / "cwd"
    cwd.mkdir()
    done = run_meterline(["demo"], home=home, catalog=REPO / "seeds", cwd=cwd, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (home / "snapshot" / "warehouse.duckdb").exists()
    return Demo(home, REPO / "seeds", cwd)


def serve_env(demo: Demo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERLINE_", "DAGSTER_"))}
    env.update({"METERLINE_HOME": str(demo.home), "METERLINE_CATALOG_DIR": str(demo.catalog),
                "METERLINE_NOW": pinned_now()})
    return env


@contextlib.contextmanager
def serving(demo: Demo, port: int) -> Iterator[tuple[str, Path]]:
    """`meterline serve` on ``port``: (its base URL, its log file) once /healthz answers.
    Stopped with SIGINT (then killed) whatever happens."""
    log_path = demo.home.parent / f"serve-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([meterline_bin(), "serve", "--port", str(port)],
                                env=serve_env(demo), cwd=demo.cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, "meterline serve exited:\n" + log_path.read_text()
                assert time.monotonic() < deadline, "serve did not come up:\n" + \
                    log_path.read_text()
                time.sleep(0.3)
        yield base, log_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
            proc.wait(timeout=10)
