"""Crash points for the kill tests: ``METERLINE_FAULT=<point>`` makes the process kill itself
with SIGKILL when it reaches that point, exactly as `kill -9` would, so a test can stop a run
at each step of publishing and prove the next command completes it. Unset, nothing happens."""

from __future__ import annotations

import os
import signal

ENV = "METERLINE_FAULT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
