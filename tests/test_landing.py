"""Landing event files: orchestration/ingestion/landing/ against a real DuckDB warehouse file.

The conformance cases (../shared/conformance, beside the repository) are replayed where they
exist; the other tests build their own small files in tmp_path.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.ingestion.landing import REASONS, IngestError, IngestReport, Lookup, ingest
from orchestration.ingestion.report import format_report
from orchestration.lib import warehouse

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance"
CASE01 = CONFORMANCE / "01-pricing-models"
CASE02 = CONFORMANCE / "02-events-and-quarantine"
CASE04 = CONFORMANCE / "04-catalog-changes"

NOW1 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOW2 = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
NOW3 = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
TS = "2026-03-01T00:00:00Z"


def needs(case: Path):
    return pytest.mark.skipif(
        not case.is_dir(),
        reason=f"conformance case {case.name} not found at {case} (the shared folder beside the "
               f"repository); these tests replay it",
    )


# ------------------------------------------------------------------------------------- helpers

def lookup_from(*catalog_dirs: Path) -> Lookup:
    """The catalog as ingest needs it; later directories override earlier files."""
    files: dict[str, Path] = {}
    for d in catalog_dirs:
        for name in ("customers.csv", "meters.csv"):
            if (d / name).exists():
                files[name] = d / name
    with open(files["customers.csv"], newline="") as fh:
        customers = {r["customer_id"] for r in csv.DictReader(fh)}
    with open(files["meters.csv"], newline="") as fh:
        meters = {r["meter_id"]: r["aggregation"] for r in csv.DictReader(fh)}
    return Lookup(customers=customers, meters=meters)


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.landing = root / "landing"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.con = warehouse.connect(root / "warehouse.duckdb")
        self.runs = 0

    def put(self, name: str, content: str | bytes) -> Path:
        p = self.landing / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content, encoding="utf-8")
        else:
            p.write_bytes(content)
        return p

    def ingest(self, lookup: Lookup, *, paths=None, now=NOW1, run_id=None) -> IngestReport:
        self.runs += 1
        return ingest(self.con, landing_dir=self.landing, paths=paths, lookup=lookup,
                      run_id=run_id or f"run-{self.runs}", now=now)

    def rows(self, sql: str, params=None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def one(self, sql: str, params=None):
        return self.con.execute(sql, params or []).fetchone()

    def quarantine(self) -> Counter:
        return Counter(self.rows("select source_file, row_number, reason, resolved_at is not null "
                                 "from raw.quarantined_events"))

    def event(self, event_id: str) -> dict | None:
        r = self.con.execute("""
            select value::varchar, epoch_us(event_at), dimensions, customer_id, meter_id,
                   source_file, row_number, is_relanded, epoch_us(landed_at)
            from raw.usage_events where event_id = ?""", [event_id]).fetchone()
        if r is None:
            return None
        keys = ("value", "event_us", "dimensions", "customer_id", "meter_id", "source_file",
                "row_number", "is_relanded", "landed_us")
        d = dict(zip(keys, r, strict=True))
        d["value"] = Decimal(d["value"])
        return d

    def snapshot(self) -> dict[str, list[tuple]]:
        out = {}
        for t in ("usage_events", "quarantined_events", "duplicate_events", "landed_files",
                  "ingest_runs"):
            out[t] = sorted(map(repr, self.rows(f"select * from raw.{t}")))
        return out


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    yield h
    h.con.close()


def us(iso: str) -> int:
    """Epoch microseconds of an ISO instant, computed by Python independently of DuckDB."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def counts(report: IngestReport) -> dict[str, dict[str, int]]:
    return {f["source_file"]: {k: f[k] for k in ("read", "landed", "duplicates", "quarantined")}
            for f in report.to_dict()["files"]}


def jl(**fields) -> str:
    return json.dumps(fields)


LK = Lookup(customers={"c1", "c2"}, meters={"s": "sum", "n": "count", "m": "max",
                                             "u": "unique_count", "l": "latest"})


# ------------------------------------------------------------------------------ conformance 02

def replay_case02(h: Home, after_step=None) -> list[IngestReport]:
    steps = json.loads((CASE02 / "steps.json").read_text())
    lookup = lookup_from(CASE02 / "catalog")
    reports = []
    for i, step in enumerate(steps):
        for name in step["files"]:
            shutil.copy(CASE02 / "events" / name, h.landing / name)
        reports.append(h.ingest(lookup, now=[NOW1, NOW2, NOW3][i]))
        if after_step:
            after_step(step, reports[-1])
    return reports


def meter_usage(h: Home, meters: dict[str, str], period: str) -> dict:
    """Sum/max/count per customer and meter for a UTC month, straight from raw.usage_events."""
    rows = h.rows("""
        with m as (select unnest(?::varchar[]) as meter_id, unnest(?::varchar[]) as agg)
        select u.customer_id, u.meter_id,
               case max(m.agg) when 'sum' then sum(u.value) when 'max' then max(u.value)
                               when 'count' then count(*) end::varchar, count(*)
        from raw.usage_events u join m using (meter_id)
        where u.event_at >= ?::timestamptz and u.event_at < ?::timestamptz
        group by all""", [list(meters), list(meters.values()), *period_bounds(period)])
    return {(c, m): (Decimal(q), n) for c, m, q, n in rows}


def period_bounds(period: str) -> tuple[datetime, datetime]:
    y, m = map(int, period.split("-"))
    start = datetime(y, m, 1, tzinfo=UTC)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return start, end


@needs(CASE02)
def test_case02_counts_quarantine_and_usage(home: Home) -> None:
    meters = lookup_from(CASE02 / "catalog").meters
    checked = Counter()

    def check(step: dict, report: IngestReport) -> None:
        exp = step["expect"]
        got = counts(report)
        for name, c in exp.get("ingest_counts", {}).items():
            assert got[name] == c, name
        assert set(got) == set(exp.get("ingest_counts", {}))
        skipped = {a["source_file"] for a in report.to_dict()["already_landed"]}
        for name in step["files"]:
            assert (name in skipped) == (name in exp.get("already_landed", [])), name
        assert not report.unreadable
        # the whole quarantine as a multiset
        assert home.quarantine() == Counter(
            (q["source_file"], q["row_number"], q["reason"], q.get("resolved", False))
            for q in exp["quarantine"])
        # usage per UTC month equals the case's meter usage (sum, max and count meters)
        for period, rows in exp.get("meter_usage", {}).items():
            want = {(r["customer_id"], r["meter_id"]): (Decimal(r["quantity"]), r["event_count"])
                    for r in rows}
            assert meter_usage(home, meters, period) == want, period
            checked["periods"] += 1

    replay_case02(home, check)
    assert checked["periods"] == 5
    # every row ends in exactly one table, per file
    for sha, read, landed, dup, quar in home.rows(
            "select file_sha256, rows_read, rows_landed, rows_duplicate, rows_quarantined "
            "from raw.landed_files"):
        assert read == landed + dup + quar
        n = home.one("""select (select count(*) from raw.usage_events
                                where file_sha256 = $1 and not is_relanded),
                               (select count(*) from raw.duplicate_events
                                where file_sha256 = $1 and not is_relanded),
                               (select count(*) from raw.quarantined_events
                                where file_sha256 = $1)""", [sha])
        assert n == (landed, dup, quar)


@needs(CASE02)
def test_case02_values_instants_and_dimensions(home: Home) -> None:
    replay_case02(home)
    e = home.event
    # boundaries: offsets, epoch ms, fractions truncated (never rounded), space separator
    assert e("b-01")["event_us"] == us("2026-03-01T00:00:00Z")
    assert e("b-02")["event_us"] == us("2026-02-28T23:59:59.999999Z")
    assert e("b-03")["event_us"] == us("2026-03-31T23:59:59.999999Z")
    assert e("b-05")["event_us"] == us("2026-03-31T23:30:00Z")
    assert e("b-06")["event_us"] == us("2026-03-01T00:30:00Z")
    assert e("b-07")["event_us"] == us("2026-04-01T00:00:00Z")
    assert e("b-08")["event_us"] == us("2026-03-01T00:00:00Z")
    assert e("b-09")["event_us"] == 1772323199999000
    assert e("b-11")["event_us"] == 1775001599999000
    assert e("b-13")["event_us"] == us("2026-03-15T12:00:00Z")
    assert e("d-04")["event_us"] == us("2026-03-12T08:00:00.123456Z")
    assert e("c-05")["event_us"] == us("2026-03-07T08:15:00.5Z")
    # values: exact decimals, missing/null/empty = 1
    assert e("e-01")["value"] == Decimal("1000")
    assert e("e-02")["value"] == Decimal("2.5")
    assert e("e-03")["value"] == Decimal("0.000000000001")
    assert e("d-02")["value"] == 1 and e("g-03")["value"] == 1
    assert e("k-02")["value"] == 1 and e("k-06")["value"] == 1 and e("c-04")["value"] == 1
    assert e("k-07")["value"] == Decimal("-4")
    assert e("f-03")["value"] == Decimal("123456789.123")  # DOUBLE at its shortest text
    assert e("f-01")["value"] + e("f-02")["value"] == Decimal("0.3")
    assert e("h-07")["value"] == Decimal("7.5")
    assert e("y" * 256)["value"] == 3
    # TIMESTAMP WITH TIME ZONE is an instant; MAP dimensions become canonical JSON
    assert e("f-01")["event_us"] == us("2026-05-01T02:00:00Z")
    assert e("f-03")["dimensions"] == '{"sku":"a=b","x":"y"}'
    assert e("f-04")["dimensions"] == "{}"
    assert e("d-01")["dimensions"] == '{"a":"1","b":"2"}'
    assert e("c-07")["dimensions"] == '{"sku":"a=b","x":"y"}'
    assert e("d-01")["source_file"] == "a_events.jsonl" and e("d-01")["row_number"] == 27
    assert e("q-07")["source_file"] == "d_more.jsonl"  # its first row was quarantined
    # duplicates: identical after normalising (10 vs "10.0", key order, +01:00, epoch ms)
    dups = Counter(r[0] for r in home.rows("select event_id from raw.duplicate_events"))
    assert dups == Counter({"d-01": 2, "d-02": 1, "d-04": 1, "b-13": 1, "c-04": 1, "b-05": 1})


@needs(CASE02)
def test_case02_every_reason_at_least_once(home: Home) -> None:
    replay_case02(home)
    assert {k[2] for k in home.quarantine()} == set(REASONS)


@needs(CASE02)
def test_case02_same_rows_under_new_york_zone(tmp_path: Path) -> None:
    """The process zone and even the session zone must not change a single stored instant."""

    def replay(root: Path, session_zone: str | None) -> dict:
        h = Home(root)
        if session_zone:
            h.con.execute(f"set TimeZone = '{session_zone}'")
        replay_case02(h)
        out = {
            "usage": sorted(h.rows("""
                select event_id, customer_id, meter_id, value::varchar, epoch_us(event_at),
                       dimensions, source_file, row_number, landing_seq, epoch_us(landed_at)
                from raw.usage_events""")),
            "quarantine": sorted(h.rows("""
                select source_file, row_number, raw_row, reason, event_id, value::varchar,
                       epoch_us(event_at), dimensions, landing_seq from raw.quarantined_events""")),
            "duplicates": sorted(h.rows(
                "select source_file, row_number, event_id from raw.duplicate_events")),
        }
        h.con.close()
        return out

    utc = replay(tmp_path / "utc", None)
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        assert time.localtime(1772323200).tm_hour == 19  # the process really is in New York
        ny = replay(tmp_path / "ny", None)
        ny_session = replay(tmp_path / "ny-session", "America/New_York")
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert ny == utc
    assert ny_session == utc


# ------------------------------------------------------------------------- re-check (case 04)

@needs(CASE04)
def test_case04_recheck_after_catalog_gains_customer_and_meter(home: Home) -> None:
    shutil.copy(CASE04 / "events" / "s1_events.jsonl", home.landing)
    r1 = home.ingest(lookup_from(CASE04 / "catalog"), now=NOW1)
    assert counts(r1)["s1_events.jsonl"] == {"read": 9, "landed": 5, "duplicates": 0,
                                              "quarantined": 4}
    assert home.quarantine() == Counter({
        ("s1_events.jsonl", 4, "unknown_customer", False): 1,
        ("s1_events.jsonl", 5, "unknown_customer", False): 1,
        ("s1_events.jsonl", 6, "unknown_meter", False): 1,
        ("s1_events.jsonl", 7, "unknown_meter", False): 1,
    })
    r2 = home.ingest(lookup_from(CASE04 / "catalog", CASE04 / "catalog-step2"), now=NOW2)
    assert r2.to_dict()["files"] == []
    assert r2.to_dict()["relanded"] == {"checked": 4, "landed": 3, "duplicates": 0,
                                        "still_quarantined": 1,
                                        "by_reason": {"unknown_customer": 1}}
    assert home.quarantine() == Counter({
        ("s1_events.jsonl", 4, "unknown_customer", True): 1,
        ("s1_events.jsonl", 5, "unknown_customer", False): 1,
        ("s1_events.jsonl", 6, "unknown_meter", True): 1,
        ("s1_events.jsonl", 7, "unknown_meter", True): 1,
    })
    for eid, row in (("n-1", 4), ("d-1", 6), ("d-2", 7)):
        ev = home.event(eid)
        assert ev["is_relanded"] and ev["landed_us"] == us("2026-06-02T12:00:00Z")
        assert (ev["source_file"], ev["row_number"]) == ("s1_events.jsonl", row)
    assert home.event("n-1")["value"] == 3
    assert home.event("g-1") is None
    resolved = home.rows("select epoch_us(resolved_at) from raw.quarantined_events "
                         "where resolved_at is not null")
    assert {r[0] for r in resolved} == {us("2026-06-02T12:00:00Z")}
    # the re-landed rows come after everything landed before
    seqs = dict(home.rows("select event_id, landing_seq from raw.usage_events"))
    assert min(seqs["n-1"], seqs["d-1"], seqs["d-2"]) > max(
        seqs[k] for k in ("a-1", "a-2", "b-1", "a-3", "b-2"))
    assert seqs["n-1"] < seqs["d-1"] < seqs["d-2"]  # original landing order
    runs = home.rows("select ingest_run_id, rows_relanded from raw.ingest_runs order by 1")
    assert runs == [("run-1", 0), ("run-2", 3)]
    # nothing changes on a third run with the same catalog
    before = home.snapshot()
    r3 = home.ingest(lookup_from(CASE04 / "catalog", CASE04 / "catalog-step2"), now=NOW3)
    assert r3.to_dict()["relanded"]["checked"] == 1
    assert home.snapshot() == before


def test_recheck_applies_every_rule_and_duplicates(home: Home) -> None:
    lines = [
        jl(event_id="r1", customer_id="c1", meter="later_count", value=-2, timestamp=TS),
        jl(event_id="r2", customer_id="ghost", meter="later_sum", value=5, timestamp=TS),
        jl(event_id="r3", customer_id="c1", meter="later_sum", value=7, timestamp=TS),
        jl(event_id="r4", customer_id="c1", meter="later_sum", value=8, timestamp=TS),
        jl(event_id="r5", customer_id="c1", meter="later_sum", value=9, timestamp=TS),
        jl(event_id="r6", customer_id="c1", meter="later_sum", value=1, timestamp=TS),
        jl(event_id="r7", customer_id="c1", meter="later_sum", value=2, timestamp=TS),
        jl(event_id="r7", customer_id="c1", meter="later_sum", value="2.0", timestamp=TS),
    ]
    lk2 = Lookup(customers=LK.customers, meters={**LK.meters, "later_count": "count",
                                                 "later_sum": "sum"})
    # r3 and r4 land first, while the catalog has the meter later_sum (r4 with another value)
    home.put("b.jsonl", jl(event_id="r3", customer_id="c1", meter="later_sum", value=7,
                           timestamp=TS)
             + "\n" + jl(event_id="r4", customer_id="c1", meter="later_sum", value=1,
                         timestamp=TS))
    home.ingest(lk2)
    # then the meters are gone from the catalog for a while: a.jsonl's rows are quarantined
    home.put("a.jsonl", "\n".join(lines) + "\n")
    r1 = home.ingest(LK)
    assert counts(r1)["a.jsonl"] == {"read": 8, "landed": 0, "duplicates": 0, "quarantined": 8}
    # a new file in the same run carries r5 (differently) and r6 (identically): the re-checked
    # rows come first in landing order, so they win
    home.put("c.jsonl", jl(event_id="r5", customer_id="c1", meter="later_sum", value=10,
                           timestamp=TS) + "\n" +
             jl(event_id="r6", customer_id="c1", meter="later_sum", value=1, timestamp=TS))
    r3 = home.ingest(lk2, now=NOW3)
    rel = r3.to_dict()["relanded"]
    assert rel["checked"] == 8
    q = {(r[0], r[1]): (r[2], r[3]) for r in home.rows(
        "select source_file, row_number, reason, resolved_at is not null "
        "from raw.quarantined_events")}
    assert q[("a.jsonl", 1)] == ("negative_value", False)  # meter known now: a count meter
    assert q[("a.jsonl", 2)] == ("unknown_customer", False)
    assert q[("a.jsonl", 3)] == ("unknown_meter", True)  # identical to r3 landed: duplicate
    assert q[("a.jsonl", 4)] == ("conflicting_duplicate", False)
    assert q[("a.jsonl", 5)] == ("unknown_meter", True)  # lands, before c.jsonl's r5
    assert q[("a.jsonl", 6)] == ("unknown_meter", True)
    assert q[("a.jsonl", 7)] == ("unknown_meter", True)  # lands
    assert q[("a.jsonl", 8)] == ("unknown_meter", True)  # duplicate of row 7 (2 = 2.0)
    assert q[("c.jsonl", 1)] == ("conflicting_duplicate", False)
    assert rel == {"checked": 8, "landed": 3, "duplicates": 2, "still_quarantined": 3,
                   "by_reason": {"negative_value": 1, "unknown_customer": 1,
                                 "conflicting_duplicate": 1}}
    assert counts(r3)["c.jsonl"] == {"read": 2, "landed": 0, "duplicates": 1, "quarantined": 1}
    assert home.event("r5")["value"] == 9 and home.event("r5")["is_relanded"]
    assert home.event("r3")["source_file"] == "b.jsonl"
    dups = home.rows("select event_id, source_file, row_number, is_relanded "
                     "from raw.duplicate_events order by all")
    assert dups == [("r3", "a.jsonl", 3, True), ("r6", "c.jsonl", 2, False),
                    ("r7", "a.jsonl", 8, True)]
    # a customer becoming known turns unknown_customer into unknown_meter when the meter is not
    home.put("d.jsonl", jl(event_id="z1", customer_id="zed", meter="zmeter", timestamp=TS))
    home.ingest(lk2)
    lk3 = Lookup(customers=LK.customers | {"zed"}, meters=lk2.meters)
    home.ingest(lk3)
    assert home.one("select reason, resolved_at from raw.quarantined_events "
                    "where source_file = 'd.jsonl'") == ("unknown_meter", None)
    lk4 = Lookup(customers=lk3.customers, meters={**lk3.meters, "zmeter": "max"})
    home.ingest(lk4)
    assert home.event("z1")["is_relanded"]


# --------------------------------------------------------------------------------- idempotency

@needs(CASE02)
def test_same_content_under_another_name_and_repeated_ingest_change_nothing(home: Home) -> None:
    shutil.copy(CASE02 / "events" / "a_events.jsonl", home.landing / "a_events.jsonl")
    lookup = lookup_from(CASE02 / "catalog")
    home.ingest(lookup)
    before = home.snapshot()
    (home.landing / "sub").mkdir()
    shutil.copy(CASE02 / "events" / "e_copy.jsonl", home.landing / "sub" / "again.jsonl")
    r = home.ingest(lookup, now=NOW2)
    assert r.to_dict()["files"] == []
    assert {a["source_file"]: a["first_landed_as"] for a in r.to_dict()["already_landed"]} == {
        "a_events.jsonl": "a_events.jsonl", "sub/again.jsonl": "a_events.jsonl"}
    assert home.snapshot() == before
    r = home.ingest(lookup, now=NOW3)
    assert home.snapshot() == before
    assert r.totals() == {"read": 0, "landed": 0, "duplicates": 0, "quarantined": 0}


def test_two_files_with_the_same_content_in_one_run(home: Home) -> None:
    body = jl(event_id="x1", customer_id="c1", meter="s", value=1, timestamp=TS) + "\n"
    home.put("a.jsonl", body)
    home.put("b.jsonl", body)
    r = home.ingest(LK).to_dict()
    assert [f["source_file"] for f in r["files"]] == ["a.jsonl"]
    assert r["already_landed"][0]["source_file"] == "b.jsonl"
    assert r["already_landed"][0]["first_landed_as"] == "a.jsonl"
    assert home.one("select count(*) from raw.landed_files") == (1,)


def test_run_id_cannot_be_reused(home: Home) -> None:
    home.put("a.jsonl", jl(event_id="x1", customer_id="c1", meter="s", timestamp=TS))
    home.ingest(LK, run_id="same")
    before = home.snapshot()
    home.put("b.jsonl", jl(event_id="x2", customer_id="c1", meter="s", timestamp=TS))
    with pytest.raises(IngestError, match="used before"):
        home.ingest(LK, run_id="same")
    assert home.snapshot() == before


# ----------------------------------------------------------------------------- unreadable files

def test_unreadable_files_are_reported_and_others_land(home: Home) -> None:
    good = jl(event_id="ok1", customer_id="c1", meter="s", value=2, timestamp=TS) + "\n"
    gz = gzip.compress((jl(event_id="gz1", customer_id="c1", meter="s", timestamp=TS) + "\n")
                       .encode() * 200)
    home.put("a_truncated.jsonl.gz", gz[: len(gz) // 2])
    home.con.execute(f"copy (select 'pq1' as event_id, 'c1' as customer_id, 's' as meter, "
                     f"'{TS}' as timestamp from range(100)) "
                     f"to '{home.root / 'good.parquet'}' (format parquet)")
    pq = (home.root / "good.parquet").read_bytes()
    home.put("b_corrupt.parquet", pq[: len(pq) - 30])
    home.put("c_not_utf8.jsonl", b'{"event_id": "\xff\xfe"}\n')
    home.put("d_good.jsonl", good)
    r = home.ingest(LK)
    d = r.to_dict()
    assert r.unreadable
    assert [f["source_file"] for f in d["files"]] == ["d_good.jsonl"]
    bad = {u["source_file"]: u["error"] for u in d["unreadable"]}
    assert set(bad) == {"a_truncated.jsonl.gz", "b_corrupt.parquet", "c_not_utf8.jsonl"}
    assert "truncated" in bad["a_truncated.jsonl.gz"]
    for err in bad.values():
        assert "run ingest again" in err
    assert "a_truncated.jsonl.gz" in format_report(d)
    assert home.event("ok1")["value"] == 2
    assert home.rows("select source_file from raw.landed_files") == [("d_good.jsonl",)]
    assert home.one("select files_landed, files_unreadable from raw.ingest_runs") == (1, 3)
    # fixed files land on the next run
    home.put("a_truncated.jsonl.gz", gz)
    home.put("b_corrupt.parquet", pq)
    (home.landing / "c_not_utf8.jsonl").unlink()
    r2 = home.ingest(LK, now=NOW2)
    assert not r2.unreadable
    assert counts(r2) == {
        "a_truncated.jsonl.gz": {"read": 200, "landed": 1, "duplicates": 199, "quarantined": 0},
        "b_corrupt.parquet": {"read": 100, "landed": 1, "duplicates": 99, "quarantined": 0},
    }


def test_paths_given_missing_or_wrong_extension(home: Home, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    r = home.ingest(LK, paths=[tmp_path / "nope.jsonl", tmp_path / "notes.txt"])
    errors = {u["source_file"]: u["error"] for u in r.to_dict()["unreadable"]}
    assert "no such file" in errors[str(tmp_path / "nope.jsonl")]
    assert "accepted" in errors[str(tmp_path / "notes.txt")]


# ----------------------------------------------------------------------------------- formats

@needs(CASE02)
def test_gzip_lands_like_its_plain_twin(tmp_path: Path) -> None:
    plain, zipped = Home(tmp_path / "plain"), Home(tmp_path / "gz")
    src = (CASE02 / "events" / "a_events.jsonl").read_bytes()
    plain.put("a_events.jsonl", src)
    zipped.put("a_events.jsonl.gz", gzip.compress(src))
    lookup = lookup_from(CASE02 / "catalog")
    rp, rz = plain.ingest(lookup), zipped.ingest(lookup)
    assert rz.to_dict()["files"][0]["format"] == "jsonl.gz"
    assert list(counts(rp).values()) == list(counts(rz).values())

    def table(h: Home, sql: str) -> list:
        return sorted(h.rows(sql))

    for sql in ("select event_id, customer_id, meter_id, value, epoch_us(event_at), dimensions, "
                "row_number, landing_seq from raw.usage_events",
                "select row_number, raw_row, reason from raw.quarantined_events",
                "select row_number, event_id from raw.duplicate_events"):
        assert table(plain, sql) == table(zipped, sql)
    plain.con.close()
    zipped.con.close()


def test_exact_values(home: Home) -> None:
    ok = {
        "n1": ("40000.000000000001", "40000.000000000001"),
        "n2": ("1e3", "1000"),
        "n3": ('"1e3"', "1000"),
        "n4": ('"2.500000000000000000"', "2.5"),
        "n5": ("12345678901234567890123456", "12345678901234567890123456"),
        "n6": ('"12345678901234567890123456.123456789012"',
               "12345678901234567890123456.123456789012"),
        "n7": ("12345678901234567890123456.123456789012",
               "12345678901234567890123456.123456789012"),
        "n8": ("0.000000000001", "0.000000000001"),
        "n9": ('"1E+3"', "1000"),
        "n10": ('".5"', "0.5"),
        "n11": ('"-0"', "0"),
        "n12": ("1.5E2", "150"),
        "n13": ('"617.25"', "617.25"),
        "n14": ("-4.25", "-4.25"),
        "n15": ("null", "1"),
        "n16": ('""', "1"),
        "n17": ('"1e-12"', "0.000000000001"),
        "n18": ("1.0000000000000000000000000000", "1"),
    }
    bad = {
        "b1": "1.0000000000001",  # 13 decimals as a JSON number
        "b2": '"1.0000000000001"',  # 13 decimals as a string
        "b3": "123456789012345678901234567",  # 27 digits before the point
        "b4": '"123456789012345678901234567"',
        "b5": "1e-13",
        "b6": '"abc"',
        "b7": "true",
        "b8": '" 5"',
        "b9": '"inf"',
        "b10": "[1]",
        "b11": '"1e99999"',
        "b12": "1.00000000000000000000001",  # would round to 1 through DECIMAL(38,20)
        "b13": '"12345678901234567890123456.1234567890123"',
        "b14": '"-"',
        "b15": '"1,5"',
    }
    lines = [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s", "timestamp": TS})[:-1]
             + f', "value": {v}}}' for k, (v, _) in ok.items()]
    lines += [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s", "timestamp": TS})[:-1]
              + f', "value": {v}}}' for k, v in bad.items()]
    # a value key hidden by an escape: the raw token cannot be confirmed, never a guess
    lines.append('{"event_id": "esc", "customer_id": "c1", "meter": "s", "\\u0076alue": 2, '
                 '"dimensions": {"value": "3"}, "timestamp": "' + TS + '"}')
    # 1.005 three times is exactly 3.015 (JSON numbers, a string, a CSV cell)
    lines += [jl(event_id="t1", customer_id="c2", meter="s", timestamp=TS)[:-1]
              + ', "value": 1.005}',
              jl(event_id="t2", customer_id="c2", meter="s", value="1.005", timestamp=TS)]
    home.put("v.jsonl", "\n".join(lines) + "\n")
    home.put("v.csv", f"event_id,customer_id,meter,value,timestamp\nt3,c2,s,1.005,{TS}\n")
    home.ingest(LK)
    for k, (_, want) in ok.items():
        assert home.event(k)["value"] == Decimal(want), k
    reasons = dict(home.rows("select event_id, reason from raw.quarantined_events"))
    assert reasons == {**{k: "invalid_value" for k in bad}, "esc": "invalid_value"}
    assert home.one("select sum(value)::varchar from raw.usage_events where customer_id = 'c2'"
                    ) == ("3.015000000000",)


def test_timestamps(home: Home) -> None:
    good = {
        "g1": ('"2026-03-01T00:00:00Z"', "2026-03-01T00:00:00Z"),
        "g2": ('"2026-03-01 05:30:00+05:30"', "2026-03-01T00:00:00Z"),
        "g3": ('"2026-02-28T19:00:00-0500"', "2026-03-01T00:00:00Z"),
        "g4": ('"2026-03-01T00:00:00.123456789Z"', "2026-03-01T00:00:00.123456Z"),
        "g5": ('"2026-03-01T00:00:00.9999999-01:00"', "2026-03-01T01:00:00.999999Z"),
        "g6": ('"2024-02-29T12:00:00Z"', "2024-02-29T12:00:00Z"),
        "g7": ("1772323200001", "2026-03-01T00:00:00.001Z"),
        "g8": ('"1772323200001"', "2026-03-01T00:00:00.001Z"),
        "g9": ('"2026-11-01T02:00:00Z"', "2026-11-01T02:00:00Z"),
        "g10": ('"2026-03-08T02:30:00-05:00"', "2026-03-08T07:30:00Z"),
        "g11": ("1000000000000", "2001-09-09T01:46:40Z"),  # 10^12: the smallest epoch ms
    }
    bad = {
        "x1": '"2026-02-29T00:00:00Z"',  # not a leap year
        "x2": '"2026-02-30T10:00:00Z"',
        "x3": '"2026-03-01T00:00:00"',  # no offset: ambiguous
        "x4": '"2026-03-01t00:00:00Z"',
        "x5": '"2026-03-01T24:00:00Z"',
        "x6": '"2026-03-01T23:59:60Z"',
        "x7": '"2026-03-01T00:00Z"',
        "x8": "-1000",
        "x9": "1772323200000.5",
        "x10": '"soon"',
        "x11": '"2026-03-01T00:00:00+24:00"',
        "x12": '"2026-04-31T00:00:00Z"',
        "x13": "true",
        "x14": '"2026-03-01T00:00:00.Z"',
        "x15": "0",  # below 10^12 ms: epoch seconds, most likely (CONTRACT.md v1.2)
        "x16": "1772323200",
        "x17": '"999999999999"',
    }
    lines = [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s"})[:-1]
             + f', "timestamp": {v}}}' for k, (v, _) in good.items()]
    lines += [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s"})[:-1]
              + f', "timestamp": {v}}}' for k, v in bad.items()]
    lines += [jl(event_id="m1", customer_id="c1", meter="s"),
              jl(event_id="m2", customer_id="c1", meter="s", timestamp=""),
              jl(event_id="m3", customer_id="c1", meter="s", timestamp=None)]
    home.put("t.jsonl", "\n".join(lines))
    home.ingest(LK)
    for k, (_, want) in good.items():
        assert home.event(k)["event_us"] == us(want), k
    reasons = dict(home.rows("select event_id, reason from raw.quarantined_events"))
    assert reasons == {**{k: "invalid_timestamp" for k in bad},
                       **{k: "missing_field" for k in ("m1", "m2", "m3")}}


def test_dimensions(home: Home) -> None:
    dims = {
        "d1": ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
        "d2": ("{}", "{}"),
        "d3": ("null", "{}"),
        "d4": ('{"k": ""}', '{"k":""}'),
        "d5": ('{"\\u00e9": "x\\"y", "Z": "1"}', '{"Z":"1","\u00e9":"x\\"y"}'),
    }
    bad = {"x1": "[]", "x2": '{"a": 1}', "x3": '{"a": null}', "x4": '{"a": "1", "a": "2"}',
           "x5": '"a=b"', "x6": '{"a": {"b": "c"}}'}
    lines = [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s", "timestamp": TS})[:-1]
             + f', "dimensions": {v}}}' for k, (v, _) in dims.items()]
    lines += [json.dumps({"event_id": k, "customer_id": "c1", "meter": "s", "timestamp": TS})
              [:-1] + f', "dimensions": {v}}}' for k, v in bad.items()]
    lines.append(jl(event_id="d6", customer_id="c1", meter="s", timestamp=TS))
    home.put("d.jsonl", "\n".join(lines))
    home.ingest(LK)
    for k, (_, want) in dims.items():
        assert home.event(k)["dimensions"] == want, k
    assert home.event("d6")["dimensions"] == "{}"
    reasons = dict(home.rows("select event_id, reason from raw.quarantined_events"))
    assert reasons == {k: "invalid_dimensions" for k in bad}


def test_jsonl_lines_blank_lines_bom_and_crlf(home: Home) -> None:
    body = ("\ufeff" + jl(event_id="j1", customer_id="c1", meter="s", timestamp=TS) + "\r\n"
            + "\r\n   \n"
            + '[1, 2]\r\n"text"\n{"event_id": "j2", \n\t\n'
            + jl(event_id="j3", customer_id="c1", meter="s", timestamp=TS))
    body += "\n" + ('{"event_id": "j4", "event_id": "j5", "customer_id": "c1", "meter": "s", '
                     '"timestamp": "' + TS + '"}')
    body += "\n" + ('{"event_id": "j6", "customer_id": "c1", "meter": "s", "note": 1, '
                     '"note": 2, "timestamp": "' + TS + '"}')
    home.put("l.jsonl", body)
    r = home.ingest(LK)
    assert counts(r)["l.jsonl"] == {"read": 7, "landed": 3, "duplicates": 0, "quarantined": 4}
    assert home.event("j1")["row_number"] == 1
    assert home.event("j3")["row_number"] == 8  # physical line; blank lines are not rows
    q = home.rows("select row_number, reason, raw_row from raw.quarantined_events order by 1")
    assert q == [(4, "malformed_row", "[1, 2]"), (5, "malformed_row", '"text"'),
                 (6, "malformed_row", '{"event_id": "j2", '),
                 (9, "malformed_row", body.split("\n")[8])]  # a field given twice
    assert home.event("j6")["row_number"] == 10  # another key given twice does not matter


def test_jsonl_lines_with_trailing_commas_are_malformed(home: Home) -> None:
    """DuckDB's JSON parser accepts trailing commas; JSON does not. Commas and brackets inside
    strings (escaped quotes included) are text, not syntax."""
    head = f'"customer_id": "c1", "meter": "s", "timestamp": "{TS}"'
    lines = [
        '{"event_id": "t1", ' + head + ',}',
        '{"event_id": "t2", ' + head + ', "dimensions": {"region": "eu" , }}',
        '{"event_id": "t3", ' + head + ', "extra": [1, 2,\t]}',
        jl(event_id="t4", customer_id="c1", meter="s", timestamp=TS,
           dimensions={"note": 'a,} and \\",] b'}),
        jl(event_id="t5", customer_id="c1", meter="s", timestamp=TS, extra="x\\",
           more=",]"),  # a string ending in a backslash, then one with ",]"
    ]
    home.put("tc.jsonl", "\n".join(lines))
    r = home.ingest(LK)
    assert counts(r)["tc.jsonl"] == {"read": 5, "landed": 2, "duplicates": 0, "quarantined": 3}
    q = home.rows("select row_number, reason from raw.quarantined_events order by 1")
    assert q == [(1, "malformed_row"), (2, "malformed_row"), (3, "malformed_row")]
    assert json.loads(home.event("t4")["dimensions"]) == {"note": 'a,} and \\",] b'}
    assert home.event("t5")["row_number"] == 5


def test_required_fields_and_event_id(home: Home) -> None:
    lines = [
        jl(customer_id="c1", meter="s", timestamp=TS),
        jl(event_id="", customer_id="c1", meter="s", timestamp=TS),
        jl(event_id="e3", customer_id="", meter="s", timestamp=TS),
        jl(event_id="e4", customer_id="c1", meter=None, timestamp=TS),
        jl(event_id=5, customer_id="c1", meter="s", timestamp=TS),
        jl(event_id="x" * 257, customer_id="c1", meter="s", timestamp=TS),
        jl(event_id="\u00e9" * 256, customer_id="c1", meter="s", timestamp=TS),
        jl(event_id="e8", customer_id=7, meter="s", timestamp=TS),
        jl(event_id="e9", customer_id="c1", meter=["s"], timestamp=TS),
        jl(event_id="e10", customer_id="C1", meter="s", timestamp=TS),
        jl(event_id="e11", customer_id="c1", meter="n", value=-1, timestamp="bad"),
        jl(event_id="e12", customer_id="ghost", meter="n", value=-1, timestamp=TS),
        jl(event_id="e13", customer_id="c1", meter="s", value=-1, timestamp=TS),
        jl(event_id="e14", customer_id="c1", meter="m", value="-0.5", timestamp=TS),
        jl(event_id="e15", customer_id="c1", meter="n", value="abc", timestamp=TS),
    ]
    home.put("r.jsonl", "\n".join(lines))
    home.ingest(LK)
    q = dict(home.rows("select row_number, reason from raw.quarantined_events"))
    assert q == {1: "missing_field", 2: "missing_field", 3: "missing_field", 4: "missing_field",
                 5: "invalid_event_id", 6: "invalid_event_id", 8: "unknown_customer",
                 9: "unknown_meter", 10: "unknown_customer", 11: "negative_value",
                 12: "negative_value", 14: "negative_value", 15: "invalid_value"}
    assert home.event("\u00e9" * 256)["row_number"] == 7  # 256 characters, 512 bytes
    assert home.event("e13")["value"] == -1  # sum meters take negative corrections
    # a non-string customer id is stored as NULL, so no catalog change can ever land it
    assert home.one("select customer_id from raw.quarantined_events where row_number = 8"
                    ) == (None,)


def test_csv_layouts(home: Home) -> None:
    csv_text = (
        "\ufeff timestamp ,meter,event_id,note,customer_id,dimensions,value\r\n"
        f'{TS},s,c1,"a\r\nmulti-line, quoted note",c1,"{{""k"": ""v"", ""a"": ""b""}}",1.5\r\n'
        "\r\n"
        f"{TS},s,c2,,c1,,\r\n"
        f'{TS},s,c3,,c1,,"7"x\r\n'
        f"{TS},s,,,c1,,1\r\n"
        f'{TS},s,"c,5",,c1,null,"-2"\r\n'
        f"{TS},s,c6,,c1,,1,extra\r\n"
        f"{TS},s,c7,,c1,,1"
    )
    home.put("a.csv", csv_text)
    home.put("b.csv", f"event_id,customer_id,meter,timestamp\nb1,c1,s,{TS}\nb2,c1,n,\n")
    home.put("c.csv", "event_id,customer_id,value\nc9,c1,1\n")  # no meter/timestamp columns
    home.put("d.csv", "\r\n\r\n")  # blank lines only (an empty file is skipped: hardening tests)
    home.put("e.csv", "event_id,event_id,customer_id,meter,timestamp\n")
    home.put("f.csv", f"event_id,customer_id,meter,timestamp\nf1,c1,s,{TS}\nf2,c1,s,\"{TS}\n"
                      f"f3,c1,s,{TS}\n")
    r = home.ingest(LK)
    assert counts(r)["a.csv"] == {"read": 7, "landed": 4, "duplicates": 0, "quarantined": 3}
    assert counts(r)["b.csv"] == {"read": 2, "landed": 1, "duplicates": 0, "quarantined": 1}
    assert counts(r)["c.csv"] == {"read": 1, "landed": 0, "duplicates": 0, "quarantined": 1}
    # an unterminated quote swallows the rest of the file into one malformed row: nothing lost
    assert counts(r)["f.csv"] == {"read": 2, "landed": 1, "duplicates": 0, "quarantined": 1}
    unreadable = {u["source_file"]: u["error"] for u in r.to_dict()["unreadable"]}
    assert "no header row" in unreadable["d.csv"]
    assert "twice" in unreadable["e.csv"]
    assert home.event("c1")["value"] == Decimal("1.5")
    assert home.event("c1")["dimensions"] == '{"a":"b","k":"v"}'
    assert home.event("c2")["value"] == 1
    assert home.event("c,5")["value"] == -2 and home.event("c,5")["dimensions"] == "{}"
    assert home.event("c7")["row_number"] == 7
    q = home.rows("select source_file, row_number, reason, raw_row from raw.quarantined_events "
                  "order by 1, 2")
    assert q == [
        ("a.csv", 3, "malformed_row", f'{TS},s,c3,,c1,,"7"x'),
        ("a.csv", 4, "missing_field", f"{TS},s,,,c1,,1"),
        ("a.csv", 6, "malformed_row", f"{TS},s,c6,,c1,,1,extra"),
        ("b.csv", 2, "missing_field", "b2,c1,n,"),
        ("c.csv", 1, "missing_field", "c9,c1,1"),
        ("f.csv", 2, "malformed_row", f'f2,c1,s,"{TS}\nf3,c1,s,{TS}\n'),
    ]


def test_parquet_types(home: Home) -> None:
    c = home.con
    p = home.landing

    def write(name: str, select: str) -> None:
        c.execute(f"copy ({select}) to '{p / name}' (format parquet)")

    write("a_decimal.parquet", """
        select * from (values
            ('p1', 'c1', 's', 12.5::decimal(38, 12), 1772323200001::bigint,
             '{"b": "2", "a": "1"}'),
            ('p2', 'c1', 's', -0.000000000001::decimal(38, 12), null, null),
            ('p3', 'c1', 'n', null, 1772323200000::bigint, '[1]')
        ) t(event_id, customer_id, meter, value, timestamp, dimensions)""")
    write("b_double.parquet", f"""
        select * from (values
            ('q1', 'c1', 's', 1e22::double, '{TS}', map(['k'], ['v'])),
            ('q2', 'c1', 's', 1e-13::double, '{TS}', map(['k'], [null::varchar])),
            ('q3', 'c1', 's', 'nan'::double, '{TS}', null),
            ('q4', 'c1', 's', 0.1::double, '{TS}', map(['k'], [null::varchar]))
        ) t(event_id, customer_id, meter, value, timestamp, dimensions)""")
    write("c_types.parquet", """
        select * from (values
            (1::bigint, 5::bigint, 's', true, timestamp '2026-03-01 00:00:00'),
            (2::bigint, 6::bigint, 's', false, null)
        ) t(event_id, customer_id, meter, value, timestamp)""")
    write("d_struct.parquet", """
        select 'r1' as event_id, 'c1' as customer_id, 'm' as meter, 3::integer as value,
               timestamptz '2026-03-01 05:00:00+05:00' as timestamp,
               {'region': 'eu', 'tier': 'gold'} as dimensions""")
    write("e_no_event_id.parquet", f"select 'c1' as customer_id, 's' as meter, '{TS}' as timestamp")
    r = home.ingest(LK)
    assert counts(r)["a_decimal.parquet"] == {"read": 3, "landed": 1, "duplicates": 0,
                                              "quarantined": 2}
    assert home.event("p1")["value"] == Decimal("12.5")
    assert home.event("p1")["event_us"] == us("2026-03-01T00:00:00.001Z")
    assert home.event("p1")["dimensions"] == '{"a":"1","b":"2"}'
    assert home.event("p1")["row_number"] == 1
    assert home.event("q1")["value"] == Decimal("1e22")
    assert home.event("q1")["dimensions"] == '{"k":"v"}'
    assert home.event("r1")["event_us"] == us(TS)
    assert home.event("r1")["dimensions"] == '{"region":"eu","tier":"gold"}'
    q = {(r[0], r[1]): r[2] for r in home.rows(
        "select source_file, row_number, reason from raw.quarantined_events")}
    assert q == {
        ("a_decimal.parquet", 2): "missing_field",
        ("a_decimal.parquet", 3): "invalid_dimensions",
        ("b_double.parquet", 2): "invalid_value",
        ("b_double.parquet", 3): "invalid_value",
        ("b_double.parquet", 4): "invalid_dimensions",
        ("c_types.parquet", 1): "invalid_event_id",
        ("c_types.parquet", 2): "missing_field",  # null timestamp: before invalid_event_id
        ("e_no_event_id.parquet", 1): "missing_field",
    }
    raw = json.loads(home.one("select raw_row from raw.quarantined_events "
                              "where source_file = 'b_double.parquet' and row_number = 4")[0])
    assert raw == {"event_id": "q4", "customer_id": "c1", "meter": "s", "value": 0.1,
                   "timestamp": TS, "dimensions": {"k": None}}


def test_paths_order_first_copy_wins_and_source_file(home: Home, tmp_path: Path) -> None:
    a = home.put("a.jsonl", jl(event_id="o1", customer_id="c1", meter="s", value=1, timestamp=TS))
    b = home.put("sub/b.jsonl", jl(event_id="o1", customer_id="c1", meter="s", value=2,
                                   timestamp=TS))
    outside = tmp_path / "outside"
    outside.mkdir()
    o = outside / "o.csv"
    o.write_text(f"event_id,customer_id,meter,value,timestamp\no2,c1,s,5,{TS}\n")
    r = home.ingest(LK, paths=[b, a, outside])
    assert [f["source_file"] for f in r.to_dict()["files"]] == ["sub/b.jsonl", "a.jsonl", str(o)]
    assert home.event("o1")["value"] == 2  # b was given first
    assert home.event("o2")["source_file"] == str(o)
    assert home.rows("select source_file, reason from raw.quarantined_events") == [
        ("a.jsonl", "conflicting_duplicate")]


def test_default_order_is_byte_order_of_relative_paths(home: Home) -> None:
    home.put("b/x.jsonl", jl(event_id="k", customer_id="c1", meter="s", value=1, timestamp=TS))
    home.put("B.jsonl", jl(event_id="k", customer_id="c1", meter="s", value=2, timestamp=TS))
    home.put("a.csv", f"event_id,customer_id,meter,value,timestamp\nk,c1,s,3,{TS}\n")
    home.put("README.md", "not an event file")
    r = home.ingest(LK)
    assert [f["source_file"] for f in r.to_dict()["files"]] == ["B.jsonl", "a.csv", "b/x.jsonl"]
    assert home.event("k")["value"] == 2


def test_landing_seq_is_monotonic_across_runs(home: Home) -> None:
    home.put("a.jsonl", "\n".join(
        jl(event_id=f"a{i}", customer_id="c1" if i % 3 else "ghost", meter="s", timestamp=TS)
        for i in range(10)))
    home.ingest(LK)
    home.put("b.jsonl", "\n".join(
        jl(event_id=f"b{i}", customer_id="c1", meter="s", timestamp=TS) for i in range(5)))
    home.ingest(LK, now=NOW2)
    seqs = home.rows("""
        select landing_seq, source_file, row_number from raw.usage_events
        union all
        select landing_seq, source_file, row_number from raw.quarantined_events
        order by 1""")
    # run 1: positions 1..10; run 2 re-checks the four ghost rows first (positions 11..14,
    # unused: they stay quarantined), then b.jsonl's rows
    assert [s[0] for s in seqs] == [*range(1, 11), *range(15, 20)]
    assert [(s[1], s[2]) for s in seqs] == sorted((s[1], s[2]) for s in seqs)


def test_report_document_and_table(home: Home) -> None:
    home.put("a.jsonl", "\n".join([
        jl(event_id="a1", customer_id="c1", meter="s", value=1, timestamp=TS),
        jl(event_id="a1", customer_id="c1", meter="s", value=1, timestamp=TS),
        jl(event_id="a2", customer_id="ghost", meter="s", value=1, timestamp=TS),
        "{",
    ]))
    r = home.ingest(LK, run_id="the-run")
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {"ingest_run_id", "files", "already_landed", "unreadable", "relanded",
                      "totals", "skipped", "out_of_range_months"}
    assert d["skipped"] == [] and d["out_of_range_months"] == {}
    assert d["ingest_run_id"] == "the-run"
    assert d["files"] == [{
        "source_file": "a.jsonl", "sha256": d["files"][0]["sha256"], "format": "jsonl",
        "read": 4, "landed": 1, "duplicates": 1, "quarantined": 2,
        "quarantined_by_reason": {"malformed_row": 1, "unknown_customer": 1}}]
    assert len(d["files"][0]["sha256"]) == 64
    assert d["totals"] == {"read": 4, "landed": 1, "duplicates": 1, "quarantined": 2}
    assert d["relanded"] == {"checked": 0, "landed": 0, "duplicates": 0, "still_quarantined": 0,
                             "by_reason": {}}
    table = format_report(d)
    assert "a.jsonl" in table and "malformed_row 1, unknown_customer 1" in table
    assert not r.unreadable


def test_now_must_be_aware(home: Home) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ingest(home.con, landing_dir=home.landing, paths=None, lookup=LK, run_id="x",
               now=datetime(2026, 6, 1))


def test_temp_tables_are_cleaned_up(home: Home) -> None:
    home.put("a.jsonl", jl(event_id="a", customer_id="c1", meter="s", timestamp=TS))
    home.ingest(LK)
    left = home.rows("select table_name from duckdb_tables() where temporary")
    assert left == []


@needs(CASE01)
def test_case01_events_land_exactly(home: Home) -> None:
    for f in (CASE01 / "events").iterdir():
        shutil.copy(f, home.landing / f.name)
    r = home.ingest(lookup_from(CASE01 / "catalog"))
    assert not r.unreadable
    t = r.totals()
    assert t["read"] == t["landed"] and t["quarantined"] == 0
    assert home.event("g-cmp-2")["value"] == Decimal("40000.000000000001")
    assert home.one("select sum(value)::varchar from raw.usage_events where meter_id = 'tokens' "
                    "and customer_id = 'commit_co'") == ("3.015000000000",)
    assert home.event("g-trf-2")["value"] == -5
    assert home.event("a-seat-9")["event_us"] == us("2026-03-20T10:00:00Z")


def test_a_failed_write_changes_nothing(home: Home) -> None:
    """All or nothing: an error after the first table was written rolls the whole run back."""
    home.put("a.jsonl", jl(event_id="a", customer_id="c1", meter="s", timestamp=TS) + "\n"
             + jl(event_id="a", customer_id="c1", meter="s", timestamp=TS))
    home.con.execute("alter table raw.duplicate_events rename to duplicate_events_away")
    with pytest.raises(duckdb.Error):
        home.ingest(LK)
    home.con.execute("alter table raw.duplicate_events_away rename to duplicate_events")
    for t in ("usage_events", "quarantined_events", "duplicate_events", "landed_files",
              "ingest_runs"):
        assert home.one(f"select count(*) from raw.{t}") == (0,), t
    assert home.rows("select table_name from duckdb_tables() where temporary") == []
    r = home.ingest(LK)  # and the file lands once the warehouse is whole again
    assert counts(r)["a.jsonl"] == {"read": 2, "landed": 1, "duplicates": 1, "quarantined": 0}
