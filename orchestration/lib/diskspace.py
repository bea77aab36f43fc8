"""Free disk space: check it before writing a large file, and say so in one line when it runs out.

``DiskFull`` is what Meterline raises when it knows the space a write needs and sees it is not
there (the readers' snapshot: ``snapshot.publish``).
``disk_full_message`` recognises the errors other layers raise on a full disk (``OSError``
ENOSPC, SQLite's ``database or disk is full`` / ``disk I/O error`` from Dagster's run storage,
DuckDB's ``No space left on device``), so the CLI can print one line instead of a traceback.
MB here is 10^6 bytes; the space needed is rounded up and the space free rounded down.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
from pathlib import Path

# Room left after a write of known size for what the command still writes (Dagster's run
# storage records the end of the run, dbt its logs): a copy that took the last bytes would make
# the next write fail with a less helpful error.
HEADROOM_BYTES = 4 * 1024 * 1024

_MESSAGE_RE = re.compile(r"^disk full: (?P<path>.+) needs (?P<needed>\d+) MB free, "
                         r"(?P<free>\d+) MB are free; ")
# Texts of disk-full errors raised as something other than OSError ENOSPC. SQLite says "disk I/O
# error" for several failures, so that one counts only when the disk is indeed (nearly) full.
_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")
_AMBIGUOUS_TEXTS = ("disk i/o error",)


def _mb_up(n: int) -> int:
    return max(math.ceil(n / 1_000_000), 0)


def _mb_down(n: int) -> int:
    return max(n // 1_000_000, 0)


class DiskFull(OSError):
    """``path`` needs ``needed_bytes`` free and only ``free_bytes`` are. An OSError with errno
    ENOSPC, so code that handles a full disk handles this one too."""

    def __init__(self, path: Path | str, needed_bytes: int, free_bytes: int):
        self.path = Path(path)
        self.needed_bytes = int(needed_bytes)
        self.free_bytes = int(free_bytes)
        self.message = (
            f"disk full: {self.path} needs {_mb_up(self.needed_bytes)} MB free, "
            f"{_mb_down(self.free_bytes)} MB are free; free some space and run the command again"
        )
        super().__init__(errno.ENOSPC, self.message, str(self.path))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # copy/pickle with the constructor's own arguments
        return (type(self), (str(self.path), self.needed_bytes, self.free_bytes))

    @classmethod
    def from_message(cls, text: str) -> DiskFull | None:
        """The DiskFull whose message ``text`` is (or contains, e.g. a Dagster step failure's
        ``orchestration.lib.diskspace.DiskFull: disk full: ...``), else None."""
        for line in text.splitlines():
            start = line.find("disk full: ")
            match = _MESSAGE_RE.match(line[start:]) if start >= 0 else None
            if match:
                return cls(match["path"], int(match["needed"]) * 1_000_000,
                           int(match["free"]) * 1_000_000)
        return None


def free_bytes(path: Path | str) -> int:
    """Free bytes for an unprivileged writer on the filesystem holding ``path`` (or its nearest
    existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def require_free(path: Path | str, needed_bytes: int) -> None:
    """Raise DiskFull unless ``needed_bytes`` + HEADROOM_BYTES are free where ``path`` lives."""
    needed = int(needed_bytes) + HEADROOM_BYTES
    free = free_bytes(path)
    if free < needed:
        raise DiskFull(path, needed, free)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def disk_full_message(exc: BaseException, home: Path | str, needed_bytes: int = 0) -> str | None:
    """One line for an error caused by a full disk under ``home``, else None.

    A DiskFull (anywhere in the exception's cause chain) gives its own message. OSError ENOSPC,
    an error whose text says the disk is full, or SQLite's "disk I/O error" while less than
    HEADROOM_BYTES are free give ``disk full: <home> needs N MB free, M MB are free; ...`` with N
    = ``needed_bytes`` (e.g. the warehouse's size, which the next snapshot copies) plus the
    headroom."""
    for err in _chain(exc):
        if isinstance(err, DiskFull):
            return err.message
        found = DiskFull.from_message(str(err))
        if found is not None:
            return found.message
    free = free_bytes(home)
    for err in _chain(exc):
        text = str(err).lower()
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) \
            or any(t in text for t in _FULL_TEXTS) \
            or (any(t in text for t in _AMBIGUOUS_TEXTS) and free < HEADROOM_BYTES)
        if full:
            return DiskFull(home, int(needed_bytes) + HEADROOM_BYTES, free).message
    return None


def raise_if_disk_full(error_info) -> None:
    """Re-raise, in the process that ran a job, a full disk that failed one of its steps.

    ``error_info`` is a Dagster step failure's ``SerializableErrorInfo`` (``cls_name``,
    ``message``, ``cause``): a DiskFull anywhere in its cause chain is raised again as DiskFull,
    an error whose text says the disk is full as OSError ENOSPC, so the CLI prints one line."""
    info = error_info
    while info is not None:
        text = info.message or ""
        if info.cls_name == "DiskFull":
            raise DiskFull.from_message(text) or OSError(errno.ENOSPC, text.strip())
        if any(t in text.lower() for t in _FULL_TEXTS):
            raise OSError(errno.ENOSPC, text.strip())
        info = info.cause


def file_size(path: Path | str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
