from orchestration.ingestion.report import format_report

DOC = {
    "ingest_run_id": "ing-1",
    "files": [{"source_file": "a.jsonl", "sha256": "x", "format": "jsonl", "read": 5,
               "landed": 3, "duplicates": 1, "quarantined": 1,
               "quarantined_by_reason": {"unknown_customer": 1}}],
    "already_landed": [
        {"source_file": "old.jsonl", "sha256": "y", "first_landed_as": "old.jsonl"},
        {"source_file": "copy.jsonl", "sha256": "z", "first_landed_as": "a0.jsonl"},
    ],
    "unreadable": [{"source_file": "bad.jsonl.gz", "error": "the gzip stream is truncated"}],
    "relanded": {"checked": 2, "landed": 1, "duplicates": 0, "still_quarantined": 1,
                 "by_reason": {}},
    "totals": {"read": 5, "landed": 3, "duplicates": 1, "quarantined": 1},
}


def test_report_names_files_reasons_skips_and_unreadable_files():
    text = format_report(DOC)
    assert "a.jsonl" in text and "unknown_customer 1" in text
    assert "skipped old.jsonl: its content was landed before\n" in text
    assert "skipped copy.jsonl: its content was landed before as a0.jsonl" in text
    assert "UNREADABLE bad.jsonl.gz: the gzip stream is truncated" in text
    assert "re-checked 2 quarantined row(s)" in text and "1 landed" in text
    assert text.splitlines()[-1] == "total: read 5, landed 3, duplicates 1, quarantined 1"
