"""The one way the app's secret stores are written (the operator token, portal tokens, API keys,
all under ``$METERLINE_HOME/access/``): only hashes in them, file mode 0600, written to a
temporary file in the same folder, fsynced, renamed over the old one and the folder fsynced, so
a reader sees the old file or the new one, never half of either, also after a crash."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def write(path: Path, body: str) -> None:
    """Replace ``path`` by ``body`` atomically and durably, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive flock on ``lock_path`` (never on the data file, which a rename replaces)
    around a read-modify-write; closing the file releases it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
