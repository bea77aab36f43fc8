"""``landed_file_counts``: every landed file's stored counts against its rows in the raw
tables (an independent count of what landing wrote)."""

from __future__ import annotations

from collections import Counter

from orchestration.billing.reconciliation.result import Findings
from orchestration.billing.reconciliation.run import Run
from orchestration.lib.sql import read_sql


def landed_file_counts(run: Run) -> Findings:
    rows = run.con.execute(read_sql(__file__, "landed_file_counts.sql")).fetchall()
    differences = []
    totals = Counter()
    for (sha, source, recorded, read, s_landed, s_dup, s_quar, c_landed, c_dup, c_quar,
         resolved, relanded) in rows:
        totals["files"] += int(recorded)
        totals["rows_read"] += read or 0
        totals["rows_landed"] += s_landed or 0
        totals["rows_duplicate"] += s_dup or 0
        totals["rows_quarantined"] += s_quar or 0
        totals["rows_relanded"] += relanded
        problems = []
        if not recorded:
            problems.append("rows of a file that raw.landed_files does not record")
        else:
            if read != s_landed + s_dup + s_quar:
                problems.append(f"rows_read {read} != landed {s_landed} + duplicate {s_dup} + "
                                f"quarantined {s_quar} = {s_landed + s_dup + s_quar}")
            for what, stored, counted, table in (
                    ("rows_landed", s_landed, c_landed, "raw.usage_events"),
                    ("rows_duplicate", s_dup, c_dup, "raw.duplicate_events"),
                    ("rows_quarantined", s_quar, c_quar, "raw.quarantined_events")):
                if stored != counted:
                    problems.append(f"{what} {stored} but {counted} rows in {table}")
        if relanded != resolved:
            problems.append(f"{relanded} re-landed rows (usage + duplicates) but {resolved} "
                            "resolved quarantine rows")
        if problems:
            differences.append({
                "file_sha256": sha, "source_file": source,
                "stored": None if not recorded else {
                    "rows_read": read, "rows_landed": s_landed, "rows_duplicate": s_dup,
                    "rows_quarantined": s_quar},
                "counted": {"rows_landed": c_landed, "rows_duplicate": c_dup,
                            "rows_quarantined": c_quar, "quarantine_resolved": resolved,
                            "rows_relanded": relanded},
                "problems": problems})
    n = totals["files"]
    return Findings(
        differences,
        f"{n} file(s): every rows_read = landed + duplicate + quarantined, and every count "
        "matches the rows in raw",
        f"{len(differences)} file(s) whose counts disagree, first: "
        + (f"{differences[0]['source_file']}: {'; '.join(differences[0]['problems'])}"
           if differences else ""),
        dict(totals))
