"""The ingest report as a person reads it (the JSON document is `IngestReport.to_dict()`)."""

from __future__ import annotations

from typing import Any


def format_report(doc: dict[str, Any] | None) -> str:
    if not doc:
        return "nothing to report"
    lines: list[str] = []
    files = doc.get("files", [])
    if files:
        rows = [("file", "format", "read", "landed", "duplicates", "quarantined")]
        for f in files:
            rows.append((f["source_file"], f["format"], str(f["read"]), str(f["landed"]),
                         str(f["duplicates"]), str(f["quarantined"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        for f in files:
            reasons = f.get("quarantined_by_reason") or {}
            if reasons:
                text = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                lines.append(f"  quarantined in {f['source_file']}: {text}")
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
        as_ = "" if first == item["source_file"] else f" as {first or 'another file'}"
        lines.append(f"skipped {item['source_file']}: its content was landed before{as_}")
    for bad in doc.get("unreadable", []):
        lines.append(f"UNREADABLE {bad['source_file']}: {bad['error']} (nothing landed from it)")
    totals = doc.get("totals")
    if totals:
        lines.append(f"total: read {totals['read']}, landed {totals['landed']}, duplicates "
                     f"{totals['duplicates']}, quarantined {totals['quarantined']}")
    return "\n".join(lines)
