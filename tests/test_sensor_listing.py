"""The landing sensor and `ingest` share one rule for what an event file is
(orchestration/ingestion/landing.py landable_files): suffixes in any case, regular files only,
symlinks and special files never followed, empty files not counted."""

from __future__ import annotations

import os

from orchestration.ingestion import sensors


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
