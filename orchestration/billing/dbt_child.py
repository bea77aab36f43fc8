"""`meterline-dbt`: dbt, started so that it dies with the Meterline process that started it.

dagster-dbt runs dbt as a child process. Killed with SIGKILL, a parent cannot stop its children,
and an orphaned `dbt build` would go on holding the DuckDB file's lock, so that the next command
fails. This wrapper asks Linux to send the child SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``, kept across ``exec``), then becomes the dbt beside this Python. Where the
call is not available (not Linux), it just runs dbt.

With METERLINE_ENGINE=spark it runs dbt in this process instead, after keeping the profile's
ANSI mode (orchestration/lib/spark.py): Spark's JVM is this process's child, and dies with it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call took effect
        os._exit(1)


def _run_dbt_on_spark() -> None:
    from orchestration.lib import spark

    spark.quiet_pyspark_pandas_warning()
    spark.keep_profile_ansi_mode()
    from dbt.cli.main import cli

    sys.argv[0] = "dbt"
    try:
        cli()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        # the JVM's shutdown hooks and pyspark's atexit work add nothing to a finished build
        os._exit(code)


def main() -> None:
    _die_with_parent()
    if (os.environ.get("METERLINE_ENGINE") or "").strip().lower() == "spark":
        _run_dbt_on_spark()
        return
    dbt = Path(sys.executable).with_name("dbt")
    program = str(dbt) if dbt.exists() else "dbt"
    os.execvp(program, [program, *sys.argv[1:]])


if __name__ == "__main__":
    main()
