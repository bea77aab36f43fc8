"""The landing sensor and `ingest` share one rule for what an event file is
(orchestration/ingestion/landing/files.py: ACCEPTED_SUFFIXES matched by format_of, behind
landable_files): suffixes in any case, regular files only, symlinks and special files never
followed, empty files not counted."""

from __future__ import annotations

import os

from orchestration.ingestion import sensors
from orchestration.ingestion.landing.files import list_files


def test_the_sensor_lists_what_ingest_would_read(tmp_path, monkeypatch):
    landing = tmp_path / "home" / "landing"
    (landing / "sub").mkdir(parents=True)
    (landing / "EVENTS.JSONL").write_text('{"event_id": "e1"}\n')
    (landing / "sub" / "more.Csv").write_text("event_id\ne2\n")
    (landing / "empty.csv").write_text("")
    (landing / "notes.txt").write_text("not events\n")
    os.symlink("/etc/passwd", landing / "passwd.jsonl")
    os.mkfifo(landing / "pipe.jsonl")
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "home"))
    names = [entry.split("|")[0] for entry in sensors.landing_listing()]
    assert names == ["EVENTS.JSONL", "sub/more.Csv"]


def test_suffixes_in_any_case_are_event_files_for_the_sensor_and_ingest(tmp_path, monkeypatch):
    landing = tmp_path / "home" / "landing"
    landing.mkdir(parents=True)
    for name in ("EVENTS.JSONL", "b.Csv", "c.JSONL.GZ", "d.PARQUET", "notes.txt"):
        (landing / name).write_bytes(b"x\n")
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path / "home"))
    seen = ["EVENTS.JSONL", "b.Csv", "c.JSONL.GZ", "d.PARQUET"]
    assert [entry.split("|")[0] for entry in sensors.landing_listing()] == seen
    listed = list_files(landing, None)  # what `ingest` reads when no paths are given
    assert [(f.source_file, f.fmt, f.skip) for f in listed] == [
        ("EVENTS.JSONL", "jsonl", None), ("b.Csv", "csv", None),
        ("c.JSONL.GZ", "jsonl.gz", None), ("d.PARQUET", "parquet", None)]
