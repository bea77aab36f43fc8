"""Landing hardening: what landing/ may hold besides good event files (symlinks, FIFOs, sockets,
empty files, invalid UTF-8, control characters in names) and events no bill can reach.

Real DuckDB warehouses in tmp_path (the `Home` helper of tests/test_landing.py) and, twice, the
real `meterline ingest`.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.ingestion.landing import Lookup
from orchestration.ingestion.landing import text as landing_text
from orchestration.ingestion.report import escape_name, format_report
from tests.conftest import run_meterline
from tests.handmade import make_home
from tests.test_landing import LK, NOW1, NOW2, TS, Home, counts, jl

EMPTY = "empty file (0 bytes): nothing to land"
SYMLINK = "symlink (not followed)"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    yield h
    h.con.close()


def ev(eid: str, ts: str = TS, customer: str = "c1") -> str:
    return jl(event_id=eid, customer_id=customer, meter="s", value=1, timestamp=ts) + "\n"


def skipped(report) -> dict[str, str]:
    return {s["source_file"]: s["reason"] for s in report.to_dict()["skipped"]}


def ingest_within(h: Home, seconds: float = 60, **kw):
    """Ingest in a thread: a FIFO opened by mistake would block forever, and fail here instead."""
    out: dict = {}

    def run() -> None:
        try:
            out["report"] = h.ingest(LK, **kw)
        except BaseException as e:  # pragma: no cover - surfaced below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "ingest blocked (a FIFO was opened?)"
    if "error" in out:
        raise out["error"]
    return out["report"]


# ------------------------------------------------------------------------- 1. symlinks, specials

def test_symlinks_in_landing_are_skipped_and_never_read(home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text(ev("leak1"))
    (outside / "sub").mkdir()
    (outside / "sub" / "deep.jsonl").write_text(ev("leak2"))
    home.put("real.jsonl", ev("r1"))
    (home.landing / "passwd.jsonl").symlink_to("/etc/passwd")
    (home.landing / "secret.jsonl").symlink_to(outside / "secret.jsonl")
    (home.landing / "inside.jsonl").symlink_to(home.landing / "real.jsonl")
    (home.landing / "dangling.csv").symlink_to(tmp_path / "nope.csv")
    (home.landing / "linked_dir").symlink_to(outside / "sub")
    r = home.ingest(LK)
    d = r.to_dict()
    assert [f["source_file"] for f in d["files"]] == ["real.jsonl"]
    assert skipped(r) == {n: SYMLINK for n in ("dangling.csv", "inside.jsonl", "linked_dir",
                                                "passwd.jsonl", "secret.jsonl")}
    assert d["unreadable"] == [] and d["already_landed"] == []
    assert home.rows("select * from raw.quarantined_events") == []
    assert home.rows("select event_id from raw.usage_events") == [("r1",)]
    assert home.rows("select source_file from raw.landed_files") == [("real.jsonl",)]
    assert "skipped" in format_report(d) and "passwd.jsonl" in format_report(d)


def test_fifo_socket_and_directory_named_like_event_files(home: Home) -> None:
    os.mkfifo(home.landing / "pipe.jsonl")
    (home.landing / "dir.jsonl").mkdir()
    (home.landing / "dir.jsonl" / "inner.jsonl").write_text(ev("in1"))
    sock_path = home.landing / "s.csv"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(sock_path))
    except OSError:  # a path too long for AF_UNIX: test the rest
        sock_path = None
    try:
        r = ingest_within(home)
    finally:
        sock.close()
    expected = {"pipe.jsonl": "not a regular file (a FIFO)"}
    if sock_path is not None:
        expected["s.csv"] = "not a regular file (a socket)"
    assert skipped(r) == expected
    # a directory is a folder whatever its name: its files are listed like any others
    assert [f["source_file"] for f in r.to_dict()["files"]] == ["dir.jsonl/inner.jsonl"]
    assert not r.unreadable


def test_given_paths_are_read_as_given_but_must_be_regular(home: Home, tmp_path: Path) -> None:
    outside = tmp_path / "o.jsonl"
    outside.write_text(ev("given1"))
    link = tmp_path / "link.jsonl"
    link.symlink_to(outside)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    r = ingest_within(home, paths=[link, fifo])
    d = r.to_dict()
    assert [f["source_file"] for f in d["files"]] == [str(link)]
    assert home.event("given1")["source_file"] == str(link)
    assert {u["source_file"]: u["error"] for u in d["unreadable"]} == {
        str(fifo): "not a regular file (a FIFO): give a regular file"}


def test_symlinks_inside_a_given_directory_are_not_followed(home: Home, tmp_path: Path) -> None:
    given = tmp_path / "batch"
    given.mkdir()
    (given / "a.jsonl").write_text(ev("b1"))
    (given / "p.jsonl").symlink_to("/etc/passwd")
    r = home.ingest(LK, paths=[given])
    assert [f["source_file"] for f in r.to_dict()["files"]] == [str(given / "a.jsonl")]
    assert skipped(r) == {str(given / "p.jsonl"): SYMLINK}
    assert home.rows("select count(*) from raw.quarantined_events") == [(0,)]


# ---------------------------------------------------------------------------------- 2. UTF-8

def test_invalid_utf8_names_line_and_byte_offset(home: Home) -> None:
    good = ev("u1") + ev("u2")
    bad_line = b'{"event_id": "caf' + b"\xe9" + b'", "customer_id": "c1"}\n'
    body = good.encode() + bad_line + ev("u3").encode()
    home.put("latin1.jsonl", body)
    home.put("latin1.csv", b"event_id,customer_id,meter,value,timestamp\n"
                           b"x\xc3\xa9,c1,s,1," + TS.encode() + b"\nx2,c1,s,1,\xff\n")
    home.put("z.jsonl.gz", gzip.compress(body))
    r = home.ingest(LK)
    errors = {u["source_file"]: u["error"] for u in r.to_dict()["unreadable"]}
    offset = len(good.encode()) + len('{"event_id": "caf')
    for name in ("latin1.jsonl", "z.jsonl.gz"):
        e = errors[name]
        assert name in e
        assert f"line 3, byte offset {offset} " in e, e
        assert "0xe9" in e and "re-encode the file as UTF-8" in e and "run ingest again" in e
    assert "decompressed" in errors["z.jsonl.gz"]
    csv_offset = len(b"event_id,customer_id,meter,value,timestamp\nx\xc3\xa9,c1,s,1,"
                     + TS.encode() + b"\nx2,c1,s,1,")
    assert f"line 3, byte offset {csv_offset} " in errors["latin1.csv"]
    assert home.rows("select count(*) from raw.usage_events") == [(0,)]
    assert home.rows("select count(*) from raw.landed_files") == [(0,)]
    # the file stays unreadable as a whole, and lands once re-encoded
    home.put("latin1.jsonl", body.replace(b"\xe9", "é".encode()))
    (home.landing / "latin1.csv").unlink()
    (home.landing / "z.jsonl.gz").unlink()
    r2 = home.ingest(LK, now=NOW2)
    assert not r2.unreadable and counts(r2)["latin1.jsonl"]["read"] == 4


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_utf8_scan_across_chunk_boundaries(tmp_path: Path, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(landing_text, "UTF8_SCAN_CHUNK", chunk)
    samples = [
        "a€b\n😀\nxé\n".encode() * 3,  # valid: multi-byte characters cut anywhere
        "ab\n€€\n".encode() + b"\xe2\x82" ,               # truncated at the end of the file
        "l1\nl2 😀\n".encode() + b"\xf0\x9f\x98x\n",     # broken 4-byte sequence
        b"\n\n\n" + b"\xed\xa0\x80\n",           # an encoded surrogate
        b"\xff",
    ]
    for i, data in enumerate(samples):
        p = tmp_path / f"s{i}"
        p.write_bytes(data)
        got = landing_text.first_invalid_utf8(p)
        try:
            data.decode("utf-8")
            assert got is None, (chunk, data)
        except UnicodeDecodeError as e:
            assert got == (data.count(b"\n", 0, e.start) + 1, e.start, data[e.start]), (chunk, data)


# ------------------------------------------------------------------------------ 3. empty files

def test_empty_files_are_reported_empty_on_every_run(home: Home) -> None:
    for name in ("empty.csv", "empty.jsonl", "empty.parquet", "sub/other.jsonl"):
        home.put(name, b"")
    home.put("nothing.jsonl.gz", gzip.compress(b""))
    home.put("a.jsonl", ev("e1"))
    gz_reason = "empty file (the gzip stream decompresses to 0 bytes): nothing to land"
    expected = {"empty.csv": EMPTY, "empty.jsonl": EMPTY, "empty.parquet": EMPTY,
                "sub/other.jsonl": EMPTY, "nothing.jsonl.gz": gz_reason}
    for now in (NOW1, NOW2):
        r = home.ingest(LK, now=now)
        d = r.to_dict()
        assert skipped(r) == expected
        assert d["unreadable"] == []
        # only the real file is "landed before" on the second run: no empty file shadows another
        assert [a["source_file"] for a in d["already_landed"]] == (
            [] if now is NOW1 else ["a.jsonl"])
    assert home.rows("select source_file from raw.landed_files") == [("a.jsonl",)]
    # an empty file given explicitly is empty too, not unreadable
    r = home.ingest(LK, paths=[home.landing / "empty.csv"], now=NOW2)
    assert skipped(r) == {"empty.csv": EMPTY} and not r.unreadable


# ---------------------------------------------------------------------- 4. control characters

def test_control_characters_in_names_are_escaped_in_reports(home: Home) -> None:
    name = "a\nb\tc\x1b[31m\r\u2028.jsonl"
    home.put(name, ev("n1") + ev("n1") + ev("n2", customer="ghost"))
    home.put("new\nline.csv", b"")
    r = home.ingest(LK)
    d = r.to_dict()
    assert d["files"][0]["source_file"] == name  # the document keeps the real name
    shown = "a\\nb\\tc\\x1b[31m\\r\\u2028.jsonl"
    assert escape_name(name) == shown
    text = format_report(json.loads(json.dumps(d)))
    assert "\x1b" not in text and "\t" not in text and "\r" not in text
    rows = [ln for ln in text.splitlines() if shown in ln]
    assert rows and rows[0].split()[:2] == [shown, "jsonl"], text
    assert any("new\\nline.csv" in ln and EMPTY in ln for ln in text.splitlines()), text
    assert not any(ln.startswith(("b", "line.csv")) for ln in text.splitlines())


def test_escape_name_keeps_printable_text_and_shows_undecodable_bytes() -> None:
    assert escape_name("café 😀 report.jsonl") == "café 😀 report.jsonl"
    assert escape_name("x\x00\x7f\x85y") == "x\\x00\\x7f\\x85y"
    assert escape_name(os.fsdecode(b"bad\xff.jsonl")) == "bad\\xff.jsonl"
    doc = {"files": [], "already_landed": [{"source_file": "a\nb", "first_landed_as": "c\nd"}],
           "unreadable": [{"source_file": "e\nf", "error": "bad\nthing"}],
           "skipped": [{"source_file": "g\nh", "reason": EMPTY}]}
    assert len(format_report(doc).splitlines()) == 4


def test_a_name_that_is_not_utf8_is_skipped_not_a_crash(home: Home) -> None:
    raw = os.fsencode(home.landing) + b"/bad\xff.jsonl"
    with open(raw, "wb") as fh:
        fh.write(ev("bn1").encode())
    home.put("ok.jsonl", ev("ok1"))
    r = home.ingest(LK)
    assert [f["source_file"] for f in r.to_dict()["files"]] == ["ok.jsonl"]
    assert skipped(r) == {"bad\\xff.jsonl": "the file name is not valid UTF-8: rename it"}
    json.dumps(r.to_dict(), ensure_ascii=False).encode("utf-8")  # the document stays UTF-8


# ------------------------------------------------------------------- 5. months no bill reaches

def test_out_of_range_months_are_landed_and_reported(home: Home) -> None:
    lk = Lookup(customers={"c1"}, meters={"s": "sum"})
    home.put("a.jsonl", "".join([
        ev("o1", "1969-12-31T23:59:59Z"),
        ev("o1", "1969-12-31T23:59:59Z"),                  # a duplicate: not counted twice
        ev("o2", "2019-12-31T23:59:59.999999Z"),
        ev("o3", "2020-01-01T00:30:00+01:00"),              # 2019-12-31T23:30Z
        ev("i1", "2020-01-01T00:00:00Z"),                   # first billable instant
        ev("i2", "2026-06-30T23:59:59Z"),                   # current month (now is 2026-06-01)
        ev("o4", "2026-07-01T00:00:00Z"),
        ev("o5", "9999-01-05T00:00:00Z"),
        ev("q1", "1969-01-01T00:00:00Z", customer="later"),  # quarantined: not counted
    ]))
    r = home.ingest(lk, now=NOW1)
    d = r.to_dict()
    assert d["out_of_range_months"] == {"1969-12": 1, "2019-12": 2, "2026-07": 1, "9999-01": 1}
    assert home.one("select count(*) from raw.usage_events") == (7,)  # kept, all of them
    text = format_report(d)
    assert "kept in raw.usage_events" in text
    assert "1969-12: 1 event(s), before 2020-01, the first billable month" in text
    assert "9999-01: 1 event(s), after the current month: no bill can reach them until " \
           "that month starts" in text
    # re-landed rows count in the run that lands them; a run with nothing out of range says so
    r2 = home.ingest(Lookup(customers={"c1", "later"}, meters={"s": "sum"}), now=NOW2)
    assert r2.relanded.landed == 1
    assert r2.to_dict()["out_of_range_months"] == {"1969-01": 1}
    home.put("b.jsonl", ev("i3"))
    r3 = home.ingest(lk, now=NOW2)
    assert r3.to_dict()["out_of_range_months"] == {}
    assert "billable" not in format_report(r3.to_dict())


def test_the_current_month_follows_now(home: Home) -> None:
    home.put("a.jsonl", ev("f1", "2026-07-15T00:00:00Z"))
    r = home.ingest(LK, now=datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
    assert r.to_dict()["out_of_range_months"] == {}


# ------------------------------------------------------------------------------ the real CLI

def test_cli_ingest_reports_skips_escapes_and_months(tmp_path: Path) -> None:
    home, cat, cwd = make_home(tmp_path)
    landing_dir = home / "landing"
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"event_id": "leak", "customer_id": "hm_usd",
                                   "meter": "calls", "timestamp": "2026-10-02T00:00:00Z"}) + "\n")
    (landing_dir / "leak.jsonl").symlink_to(outside)
    (landing_dir / "empty.csv").write_bytes(b"")
    os.mkfifo(landing_dir / "pipe.jsonl")
    (landing_dir / "odd\nname.jsonl").write_text("".join(
        json.dumps({"event_id": eid, "customer_id": "hm_usd", "meter": "calls",
                    "timestamp": ts}) + "\n"
        for eid, ts in (("old", "1969-07-20T20:17:00Z"), ("far", "9999-01-01T00:00:00Z"))))
    done = run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(ln.startswith("odd\\nname.jsonl ") and ln.split()[1] == "jsonl" for ln in lines)
    assert f"skipped empty.csv: {EMPTY}" in lines
    assert f"skipped leak.jsonl: {SYMLINK}" in lines
    assert "skipped pipe.jsonl: not a regular file (a FIFO)" in lines
    assert any("1969-07: 1 event(s)" in ln for ln in lines)
    assert any("9999-01: 1 event(s)" in ln for ln in lines)

    (landing_dir / "tab\there.jsonl").write_text(json.dumps(
        {"event_id": "t1", "customer_id": "hm_usd", "meter": "calls",
         "timestamp": "2026-10-03T00:00:00Z"}) + "\n")
    done = run_meterline(["ingest", "--format", "json"], home=home, catalog=cat, cwd=cwd,
                         timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert [f["source_file"] for f in doc["files"]] == ["tab\there.jsonl"]
    assert {s["source_file"]: s["reason"] for s in doc["skipped"]} == {
        "empty.csv": EMPTY, "leak.jsonl": SYMLINK, "pipe.jsonl": "not a regular file (a FIFO)"}
    assert doc["out_of_range_months"] == {}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        ids = {r[0] for r in con.execute("select event_id from raw.usage_events").fetchall()}
        assert {"old", "far", "t1"} <= ids and "leak" not in ids
        assert con.execute("select count(*) from raw.landed_files where size_bytes = 0"
                           ).fetchone() == (0,)
    finally:
        con.close()
