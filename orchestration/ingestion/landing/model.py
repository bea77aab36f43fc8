"""What an ingest is given (the catalog's `Lookup`) and what it reports (`IngestReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REASONS = (
    "malformed_row",
    "missing_field",
    "invalid_event_id",
    "invalid_value",
    "negative_value",
    "invalid_timestamp",
    "invalid_dimensions",
    "unknown_customer",
    "unknown_meter",
    "conflicting_duplicate",
)
AGGREGATIONS = ("sum", "count", "unique_count", "max", "latest", "time_weighted_sum",
                "running_total")
#: the aggregations whose events must not be negative (``negative_value``): ``sum`` meters take
#: negative corrections and level meters (time_weighted_sum, running_total) signed changes
NON_NEGATIVE_AGGREGATIONS = ("count", "unique_count", "max", "latest")
#: epoch milliseconds below this (2001-09-09T01:46:40Z) are almost surely epoch seconds:
#: ``invalid_timestamp`` (CONTRACT.md v1.2 section 2)
MIN_EPOCH_MS = 10**12
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


class IngestError(Exception):
    """The run could not be written (nothing was changed)."""


@dataclass
class Lookup:
    """The catalog as ingest needs it."""

    customers: set[str]
    #: meter_id -> aggregation (one of AGGREGATIONS: 'sum', 'count', 'unique_count', 'max',
    #: 'latest', 'time_weighted_sum', 'running_total')
    meters: dict[str, str]


@dataclass
class FileResult:
    source_file: str
    sha256: str
    format: str
    read: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    #: what the operator should know about the file's quarantined rows, one sentence each
    #: (``epoch_seconds_note``); the JSON document has the key only when there is one
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "source_file": self.source_file,
            "sha256": self.sha256,
            "format": self.format,
            "read": self.read,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason),
        }
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc


@dataclass
class AlreadyLanded:
    source_file: str
    sha256: str
    first_landed_as: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "sha256": self.sha256,
            "first_landed_as": self.first_landed_as,
        }


@dataclass
class Unreadable:
    source_file: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"source_file": self.source_file, "error": self.error}


@dataclass
class Skipped:
    """An entry that was not read at all (a symlink, a special file, an empty file...)."""

    source_file: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"source_file": self.source_file, "reason": self.reason}


@dataclass
class Relanded:
    checked: int = 0
    landed: int = 0
    duplicates: int = 0
    still_quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "still_quarantined": self.still_quarantined,
            "by_reason": dict(self.by_reason),
        }


@dataclass
class IngestReport:
    ingest_run_id: str
    files: list[FileResult] = field(default_factory=list)
    already_landed: list[AlreadyLanded] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    relanded: Relanded = field(default_factory=Relanded)
    skipped: list[Skipped] = field(default_factory=list)
    # landed events (this run) dated before PARTITION_START or after the current month: YYYY-MM
    out_of_range_months: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {
            "read": sum(f.read for f in self.files),
            "landed": sum(f.landed for f in self.files),
            "duplicates": sum(f.duplicates for f in self.files),
            "quarantined": sum(f.quarantined for f in self.files),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingest_run_id": self.ingest_run_id,
            "files": [f.to_dict() for f in self.files],
            "already_landed": [a.to_dict() for a in self.already_landed],
            "unreadable": [u.to_dict() for u in self.unreadable],
            "relanded": self.relanded.to_dict(),
            "totals": self.totals(),
            "skipped": [s.to_dict() for s in self.skipped],
            "out_of_range_months": dict(self.out_of_range_months),
        }


def ordered_reasons(d: dict[str, int]) -> dict[str, int]:
    """The non-zero counts of ``d`` in contract order (REASONS)."""
    return {k: d[k] for k in REASONS if d.get(k)}


def epoch_seconds_note(rows: int, row_number: int, epoch: int) -> str:
    """The note on a file whose quarantined rows hold ``rows`` epoch integers below 10^12 as
    timestamps, the first at ``row_number`` (``epoch``): they look like epoch seconds."""
    as_ms = epoch * 1000
    send = f"epoch milliseconds ({as_ms})" if as_ms <= MAX_EPOCH_MS else "epoch milliseconds"
    return (f"{rows} timestamp(s) look like epoch seconds (below 10^12 ms, e.g. row "
            f"{row_number}: {epoch}): send {send} or an ISO 8601 timestamp with an offset")


def memory_exhausted(con: Any, exc: Exception, doing: str, lost: str, split: str) -> IngestError:
    """Out of memory while landing, as one sentence: what was being done, DuckDB's limit and
    its message, what was not landed, and what to do."""
    limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    return IngestError(
        f"{doing} (DuckDB's memory limit is {limit}: {str(exc).splitlines()[0]}). {lost}: raise "
        f"METERLINE_MEMORY_LIMIT, or split {split} into smaller ones, then run ingest again.")
