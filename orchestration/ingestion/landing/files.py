"""Which files a run reads: the accepted suffixes, the listing of ``landing/`` (or of the paths
given), and hashing without following or blocking."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from orchestration.ingestion.report import escape_name

# The one list of event-file suffixes (matched in any case by `format_of`): the landing sensor
# and `ingest` both go through it. No name ends in two of them.
ACCEPTED_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".parquet")

EMPTY_FILE = "empty file (0 bytes): nothing to land"
SYMLINK = "symlink (not followed)"
BAD_NAME = "the file name is not valid UTF-8: rename it"
NOT_ACCEPTED = ("not an accepted event file: the name must end in "
                + ", ".join(ACCEPTED_SUFFIXES[:-1]) + " or " + ACCEPTED_SUFFIXES[-1])
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a directory"))


@dataclass
class ListedFile:
    path: Path
    source_file: str
    fmt: str | None
    error: str | None = None
    skip: str | None = None  # a reason not to read it at all (reported in ``skipped``)
    follow: bool = False  # a path given explicitly may be a symlink (read as given)
    sha256: str = ""
    size: int = 0


class NotRegular(Exception):
    pass


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def format_of(path: Path) -> str | None:
    """The format of an event file named ``path`` (its accepted suffix, in any case, without the
    dot: ``jsonl.gz``), or None when the name is not an event file's."""
    name = path.name.lower()
    for suffix in ACCEPTED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix[1:]
    return None


def _byte_key(p: Path) -> bytes:
    return os.fsencode(p.as_posix())


def _files_under(directory: Path) -> list[tuple[Path, str | None]]:
    """The event files under ``directory`` (by byte order of the relative path), each with a
    reason to skip it or None. Nothing is followed or opened: entries are judged by ``lstat``.
    Symlinks (to files or directories, inside or outside) are skipped; so are FIFOs, sockets and
    devices named like event files. Real subdirectories are walked whatever their name."""
    root = os.path.realpath(directory)
    found: list[tuple[Path, str | None]] = []
    pending = [directory]
    while pending:
        d = pending.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            found.append((d, f"cannot list the directory ({e.strerror or e})"))
            continue
        for entry in entries:
            p = Path(entry.path)
            try:
                st = os.lstat(p)
            except OSError:
                continue  # gone since the listing
            if stat.S_ISLNK(st.st_mode):
                if format_of(p) or os.path.isdir(p):
                    found.append((p, SYMLINK))
            elif stat.S_ISDIR(st.st_mode):
                pending.append(p)
            elif format_of(p):
                found.append((p, _regular_file_problem(p, st, root)))
    return sorted(found, key=lambda e: _byte_key(e[0].relative_to(directory)))


def landable_files(directory: Path) -> list[Path]:
    """The files under ``directory`` that an ingest would read: regular event files of an
    accepted suffix (any case), really inside it, not empty. The landing sensor lists these, so
    it and `ingest` never disagree on what is an event file."""
    if not directory.is_dir():
        return []
    return [path for path, reason in _files_under(directory) if reason is None]


def _regular_file_problem(p: Path, st: os.stat_result, root: str) -> str | None:
    """Why a landing entry (judged by its ``lstat``) is not read, or None."""
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)})"
    real = os.path.realpath(p)
    if os.path.commonpath([real, root]) != root:
        return "outside the landing directory once resolved (not followed)"
    if st.st_size == 0:
        return EMPTY_FILE
    return None


def _source_name(path: Path, landing_dir: Path) -> str:
    try:
        return path.resolve().relative_to(landing_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _utf8_name(source: str) -> bool:
    try:
        source.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode keeps undecodable bytes as lone surrogates
        return False


def _listed(p: Path, source: str, skip: str | None) -> ListedFile:
    f = ListedFile(p, source, format_of(p), skip=skip)
    if not _utf8_name(source):
        # a name that is not UTF-8 cannot be stored or sent as text: skipped, shown escaped
        f.source_file = escape_name(source)
        f.skip = skip or BAD_NAME
    return f


def list_files(landing_dir: Path, paths: list[Path] | None) -> list[ListedFile]:
    files: list[ListedFile] = []
    if paths is None:
        if landing_dir.is_dir():
            for p, skip in _files_under(landing_dir):
                files.append(_listed(p, p.relative_to(landing_dir).as_posix(), skip))
        return files
    for given in paths:
        given = Path(given)
        try:
            st: os.stat_result | None = os.stat(given)  # a given path is read as given
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            for p, skip in _files_under(given):
                files.append(_listed(p, _source_name(p, landing_dir), skip))
            continue
        f = ListedFile(given, _source_name(given, landing_dir), format_of(given), follow=True)
        if not _utf8_name(f.source_file):
            f.source_file = escape_name(f.source_file)
            f.error = BAD_NAME
        elif st is None:
            f.error = "no such file; check the path"
        elif not stat.S_ISREG(st.st_mode):
            f.error = f"not a regular file ({_kind(st.st_mode)}): give a regular file"
        elif f.fmt is None:
            f.error = NOT_ACCEPTED
        elif st.st_size == 0:
            f.skip = EMPTY_FILE
        files.append(f)
    return files


def hash_file(path: Path, *, follow: bool) -> tuple[str, int]:
    """SHA-256 and size. Opened without blocking (a FIFO swapped in since the listing does not
    hang the run) and, for landing entries, without following a symlink; then checked to be a
    regular file before a byte is read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise NotRegular(SYMLINK) from None
        raise
    h = hashlib.sha256()
    size = 0
    with open(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(f"not a regular file ({_kind(mode)})")
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
