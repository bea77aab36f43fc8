"""JSON Lines files are read in pieces of about 64 MiB (DuckDB reads a text file as one value):
a file cut into many small pieces must land, count, quarantine and number its rows exactly as
it does in one piece, for plain and gzip files, with a BOM, CRLF line ends, blank lines,
multi-byte characters at a cut, a line longer than a piece, malformed lines and duplicates; an
error in a later piece still names the right line of the whole file and lands nothing."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.ingestion.landing import Lookup, ingest
from orchestration.ingestion.landing import text as landing_text
from orchestration.lib import warehouse

LOOKUP = Lookup(customers={"acme", "globex"}, meters={"calls": "count", "gb": "sum"})
NOW = datetime(2026, 11, 3, tzinfo=UTC)


def _lines() -> list[str]:
    rows = []
    for i in range(60):
        rows.append(json.dumps({"event_id": f"e{i}", "customer_id": "acme" if i % 3 else "globex",
                                "meter": "gb" if i % 2 else "calls", "value": f"{i}.25",
                                "timestamp": f"2026-10-{1 + i % 28:02d}T00:00:00Z",
                                "dimensions": {"region": "é∑" * (i % 4)}},
                               ensure_ascii=False))
    rows[5] = "{not json"
    rows[9] = ""  # blank: skipped, but counted as a line
    rows[14] = rows[13]  # an exact duplicate
    rows[20] = json.dumps({"event_id": "long", "customer_id": "acme", "meter": "calls",
                           "timestamp": "2026-10-02T00:00:00Z",
                           "dimensions": {"note": "x" * 500}})
    rows[33] = rows[33].replace('"e33"', '"e1"')  # conflicting with e1
    rows[40] = json.dumps({"event_id": "e40", "customer_id": "nobody", "meter": "calls",
                           "timestamp": "2026-10-02T00:00:00Z"})
    return rows


def _write(path: Path, gz: bool) -> Path:
    data = ("\ufeff" + "\r\n".join(_lines()) + "\r\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _land(tmp_path: Path, name: str, source: Path) -> dict:
    home = tmp_path / name
    (home / "landing").mkdir(parents=True)
    (home / "landing" / source.name).write_bytes(source.read_bytes())
    con = warehouse.connect(home / "warehouse.duckdb")
    try:
        report = ingest(con, landing_dir=home / "landing", paths=None, lookup=LOOKUP,
                        run_id="run-1", now=NOW)
        return {
            "unreadable": [u.error.split(". Nothing")[0] for u in report.unreadable],
            "landed": con.execute(
                "select event_id, customer_id, meter_id, value, event_at, dimensions, "
                "row_number, landing_seq from raw.usage_events order by landing_seq").fetchall(),
            "duplicates": con.execute(
                "select row_number, event_id from raw.duplicate_events order by all").fetchall(),
            "quarantined": con.execute(
                "select row_number, raw_row, reason from raw.quarantined_events "
                "order by row_number").fetchall(),
            "files": con.execute(
                "select rows_read, rows_landed, rows_duplicate, rows_quarantined "
                "from raw.landed_files").fetchall(),
        }
    finally:
        con.close()


def _small_pieces(monkeypatch, size: int) -> list[int]:
    """Make every read use pieces of ``size`` bytes; returns the first lines of the pieces."""
    real, firsts = landing_text.pieces, []

    def small(path, tmp, idx, *, gz, piece_bytes=None):
        for piece, first_line in real(path, tmp, idx, gz=gz, piece_bytes=size):
            firsts.append(first_line)
            yield piece, first_line

    monkeypatch.setattr("orchestration.ingestion.landing.stage.pieces", small)
    return firsts


@pytest.mark.parametrize("gz", [False, True])
def test_a_file_in_many_pieces_lands_exactly_as_in_one(tmp_path, monkeypatch, gz):
    source = _write(tmp_path / ("events.jsonl.gz" if gz else "events.jsonl"), gz)
    whole = _land(tmp_path, "whole", source)
    firsts = _small_pieces(monkeypatch, 300)
    cut = _land(tmp_path, "cut", source)
    assert len(firsts) > 10 and firsts[0] == 1 and firsts == sorted(set(firsts))
    assert cut == whole
    # and the cases are there: the BOM is gone, line numbers are the file's own
    assert not whole["unreadable"]
    assert whole["files"] == [(59, 55, 1, 3)]
    assert [(r[0], r[2]) for r in whole["quarantined"]] == [
        (6, "malformed_row"), (34, "conflicting_duplicate"), (41, "unknown_customer")]
    assert whole["duplicates"] == [(15, "e13")]
    landed = {row[0]: row for row in whole["landed"]}
    assert landed["e0"][6] == 1 and landed["long"][6] == 21 and landed["e59"][6] == 60
    assert landed["e3"][5] == '{"region":"é∑é∑é∑"}'


@pytest.mark.parametrize("gz", [False, True])
def test_invalid_utf8_in_a_later_piece_names_the_line_and_lands_nothing(tmp_path, monkeypatch,
                                                                        gz):
    lines = [json.dumps({"event_id": f"e{i}", "customer_id": "acme", "meter": "calls",
                         "timestamp": "2026-10-02T00:00:00Z"}) for i in range(40)]
    data = "\n".join(lines).encode().replace(b'"e37"', b'"e\xe97"') + b"\n"
    name = "bad.jsonl.gz" if gz else "bad.jsonl"
    source = tmp_path / name
    source.write_bytes(gzip.compress(data) if gz else data)
    _small_pieces(monkeypatch, 200)
    got = _land(tmp_path, "bad", source)
    assert got["landed"] == [] and got["files"] == []
    assert len(got["unreadable"]) == 1
    offset = data.index(b"\xe9")
    assert f"is on line 38, byte offset {offset}" in got["unreadable"][0]
    assert ("of the decompressed content" in got["unreadable"][0]) == gz


def test_a_gzip_stream_that_breaks_in_a_later_piece_lands_nothing(tmp_path, monkeypatch):
    lines = [json.dumps({"event_id": f"e{i}", "customer_id": "acme", "meter": "calls",
                         "timestamp": "2026-10-02T00:00:00Z"}) for i in range(400)]
    whole = gzip.compress("\n".join(lines).encode())
    source = tmp_path / "cut.jsonl.gz"
    source.write_bytes(whole[: len(whole) * 2 // 3])
    _small_pieces(monkeypatch, 1000)
    got = _land(tmp_path, "cut", source)
    assert got["landed"] == [] and got["files"] == []
    assert got["unreadable"] and "truncated" in got["unreadable"][0]
