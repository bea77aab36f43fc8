"""The ingest report as a person reads it (the JSON document is `IngestReport.to_dict()`).

File names (and error texts) are printed through ``escape_name``: a control character in a name
(a newline, a tab, an escape sequence) is shown as ``\\n``, ``\\t``, ``\\x1b``..., so every file is
one row and nothing is sent to the terminal as a command. The JSON document keeps the real names.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from orchestration.lib.periods import PARTITION_START

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# bidirectional overrides and isolates: they reorder what a terminal shows
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8 (os.fsdecode)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_name(name: str) -> str:
    """``name`` with control characters, line/paragraph separators, bidi controls and
    undecodable bytes escaped (``a\\nb.jsonl``): safe to print as one table cell."""
    if name.isprintable():
        return name
    return "".join(
        _escape_char(ch)
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") else ch
        for ch in name)


def skipped_lines(skipped: list[dict[str, Any]]) -> list[str]:
    """Entries that were not read (symlinks, special files, empty files...), with why."""
    return [f"skipped {escape_name(s['source_file'])}: {escape_name(s['reason'])}"
            for s in skipped]


def out_of_range_lines(months: dict[str, int]) -> list[str]:
    """Landed events dated in months no bill can reach (before PARTITION_START, or after the
    current month)."""
    if not months:
        return []
    lines = [f"events landed in months no bill can reach yet (they are kept in "
             f"raw.usage_events; bills cover {PARTITION_START} up to the current month):"]
    for month, n in sorted(months.items()):
        if month < PARTITION_START:
            lines.append(f"    {month}: {n} event(s), before {PARTITION_START}, the first "
                         f"billable month: no bill can reach them")
        else:
            lines.append(f"    {month}: {n} event(s), after the current month: no bill can "
                         f"reach them until that month starts")
    return lines


def format_report(doc: dict[str, Any] | None) -> str:
    if not doc:
        return "nothing to report"
    lines: list[str] = []
    files = doc.get("files", [])
    if files:
        rows = [("file", "format", "read", "landed", "duplicates", "quarantined")]
        for f in files:
            rows.append((escape_name(f["source_file"]), f["format"], str(f["read"]),
                         str(f["landed"]), str(f["duplicates"]), str(f["quarantined"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        for f in files:
            reasons = f.get("quarantined_by_reason") or {}
            if reasons:
                text = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                lines.append(f"  quarantined in {escape_name(f['source_file'])}: {text}")
            for note in f.get("notes") or []:
                lines.append(f"  note on {escape_name(f['source_file'])}: {note}")
    else:
        lines.append("no new files")
    relanded = doc.get("relanded") or {}
    if relanded.get("checked"):
        lines.append(
            f"re-checked {relanded['checked']} quarantined row(s) against the current catalog: "
            f"{relanded.get('landed', 0)} landed, {relanded.get('duplicates', 0)} duplicate(s), "
            f"{relanded.get('still_quarantined', 0)} still quarantined"
        )
    for item in doc.get("already_landed", []):
        first = item.get("first_landed_as")
        as_ = "" if first == item["source_file"] else f" as {escape_name(first or 'another file')}"
        lines.append(f"skipped {escape_name(item['source_file'])}: its content was landed "
                     f"before{as_}")
    lines += skipped_lines(doc.get("skipped", []))
    for bad in doc.get("unreadable", []):
        lines.append(f"UNREADABLE {escape_name(bad['source_file'])}: {escape_name(bad['error'])} "
                     f"(nothing landed from it)")
    lines += out_of_range_lines(doc.get("out_of_range_months") or {})
    totals = doc.get("totals")
    if totals:
        lines.append(f"total: read {totals['read']}, landed {totals['landed']}, duplicates "
                     f"{totals['duplicates']}, quarantined {totals['quarantined']}")
    return "\n".join(lines)
