"""Hardening: arithmetic that would overflow DECIMAL(38,12) is a catalog/usage problem naming the
customer, meter or item and the period, found before anything is priced (CONTRACT.md section 4);
and a full disk: the readers' snapshot is never half-written, is not copied again when the
warehouse did not change, checks the free space first, and the CLI says so in one line.

Real DuckDB files and the real CLI. The full-disk tests mount a small tmpfs (root only; they
skip saying so where mount is not permitted) and unmount it in a finally."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from orchestration.catalog.periods import period_problems
from orchestration.catalog.problems import Problem
from orchestration.catalog.read import Catalog, load_catalog
from orchestration.catalog.rules import validate
from orchestration.lib import diskspace, snapshot, warehouse
from orchestration.resources import MeterlineResource
from tests.conftest import run_meterline
from tests.handmade import CATALOG, make_home

BIG = "90000000000000000000000000"  # 9 x 10^25: valid alone (26 integer digits)
MAX_VALUE = "99999999999999999999999999.999999999999"  # the largest DECIMAL(38,12)
TINY = "0.000000000001"


# --------------------------------------------------------------------------- helpers
def _catalog(tmp_path: Path, files: dict[str, str] = CATALOG) -> Catalog:
    root = tmp_path / "catalog"
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    catalog = load_catalog(root)
    assert validate(catalog) == []
    return catalog


def _warehouse_with(tmp_path: Path, rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A real warehouse holding events (event_id, customer_id, meter, value, at[, dims])."""
    con = warehouse.connect(tmp_path / "warehouse.duckdb")
    con.executemany("""
        insert into raw.usage_events (event_id, customer_id, meter_id, value, event_at,
            dimensions, source_file, row_number, ingest_run_id, landed_at, landing_seq)
        values (?, ?, ?, ?::decimal(38, 12), ?::timestamptz, ?, 't.jsonl', ?, 'run-1', now(), ?)
        """, [(r[0], r[1], r[2], r[3], r[4], r[5] if len(r) > 5 else "{}", i, i)
              for i, r in enumerate(rows, start=1)])
    return con


def _overflows(problems: list[Problem]) -> dict[str, str]:
    return {p.key: str(p) for p in problems if p.file == "raw.usage_events"
            or p.field == "package_size"}


def _engine_sum(con, customer: str, meter: str, where: str = "true") -> str:
    """What DuckDB's own sum (as the usage models compute it) does with the group."""
    try:
        return str(con.execute(f"select sum(value) from raw.usage_events where customer_id = ? "
                               f"and meter_id = ? and {where}", [customer, meter]).fetchone()[0])
    except duckdb.OutOfRangeException as exc:
        return f"overflow: {exc}"


def _with_rate(catalog: dict[str, str], old: str, new: str) -> dict[str, str]:
    assert old in catalog["rates.csv"]
    return {**catalog, "rates.csv": catalog["rates.csv"].replace(old, new)}


EUR_PACKAGE = "r_calls_eur,calls_item,,EUR,package,2.50,100,50,"


def _package_catalog(size: str) -> dict[str, str]:
    return _with_rate(CATALOG, EUR_PACKAGE, f"r_calls_eur,calls_item,,EUR,package,2.50,{size},0,")


FILTERED = {**CATALOG,
            "meters.csv": CATALOG["meters.csv"] + "disk,Disk,GB,sum,\n",
            "product_items.csv": CATALOG["product_items.csv"]
            + "disk_eu,Disk EU,disk,region=eu\ndisk_us,Disk US,disk,region=us\n"}


# --------------------------------------------------------------------------- A. overflow
def test_sum_overflow_in_one_month_is_a_problem_of_every_month_naming_customer_and_meter(
        tmp_path):
    con = _warehouse_with(tmp_path, [
        ("big0", "hm_usd", "calls", BIG, "2026-09-10 00:00:00+00"),
        ("big1", "hm_usd", "calls", BIG, "2026-09-11 00:00:00+00"),
        ("ok", "hm_usd", "calls", "5", "2026-10-11 00:00:00+00"),
    ])
    catalog = _catalog(tmp_path)
    assert _engine_sum(con, "hm_usd", "calls", "event_at < '2026-10-01'").startswith("overflow")
    for month in (date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)):
        found = _overflows(period_problems(con, catalog, month))
        assert list(found) == ["hm_usd, calls, 2026-09"], month
        text = found["hm_usd, calls, 2026-09"]
        assert "customer hm_usd, meter calls, period 2026-09: its 2 events" in text
        assert "item calls_item 180000000000000000000000000" in text
        assert "less than 10^26" in text and "running total" in text
    assert con.execute("select count(*) from duckdb_tables() where table_name like "
                       "'_meterline_check%'").fetchone()[0] == 0
    con.close()


def test_sum_overflow_check_is_exact_where_a_double_cannot_tell(tmp_path):
    """Every group below adds up to 10^26 as a DOUBLE; only the exact sum tells them apart, and
    the check agrees with DuckDB's own sum on each."""
    con = _warehouse_with(tmp_path, [
        # 10^26 - 10^-12: the largest total that fits
        ("f1", "hm_usd", "calls", "99999999999999999999999999.999999999998",
         "2026-10-02 00:00:00+00"),
        ("f2", "hm_usd", "calls", TINY, "2026-10-03 00:00:00+00"),
        # exactly 10^26
        ("x1", "hm_eur", "calls", MAX_VALUE, "2026-10-02 00:00:00+00"),
        ("x2", "hm_eur", "calls", TINY, "2026-10-03 00:00:00+00"),
        # exactly -10^26: sum meters take negative corrections
        ("n1", "hm_jpy", "calls", "-" + MAX_VALUE, "2026-10-02 00:00:00+00"),
        ("n2", "hm_jpy", "calls", "-" + TINY, "2026-10-03 00:00:00+00"),
        # a total that fits (9 x 10^25) whose running total does not: DuckDB still fails
        ("r1", "hm_idle", "calls", BIG, "2026-10-02 00:00:00+00"),
        ("r2", "hm_idle", "calls", BIG, "2026-10-03 00:00:00+00"),
        ("r3", "hm_idle", "calls", "-" + BIG, "2026-10-04 00:00:00+00"),
        # max never sums: huge values are fine
        ("g1", "hm_usd", "gb", BIG, "2026-10-02 00:00:00+00"),
        ("g2", "hm_usd", "gb", BIG, "2026-10-03 00:00:00+00"),
    ])
    catalog = _catalog(tmp_path)
    found = _overflows(period_problems(con, catalog, date(2026, 10, 1)))
    assert sorted(found) == ["hm_eur, calls, 2026-10", "hm_idle, calls, 2026-10",
                             "hm_jpy, calls, 2026-10"]
    assert _engine_sum(con, "hm_usd", "calls") == "99999999999999999999999999.999999999999"
    for customer in ("hm_eur", "hm_jpy", "hm_idle"):
        assert _engine_sum(con, customer, "calls").startswith("overflow"), customer
    assert "100000000000000000000000000" in found["hm_eur, calls, 2026-10"]
    assert "-100000000000000000000000000" in found["hm_jpy, calls, 2026-10"]
    assert "land a correcting event" in found["hm_jpy, calls, 2026-10"]
    idle = found["hm_idle, calls, 2026-10"]
    assert "add up to 90000000000000000000000000; its positive values add up to " \
           "180000000000000000000000000" in idle and "running total of 1.7 x 10^26" in idle
    con.close()


def test_sum_overflow_of_one_item_is_named_though_its_meter_total_fits(tmp_path):
    con = _warehouse_with(tmp_path, [
        ("e1", "hm_usd", "disk", "60000000000000000000000000", "2026-10-02 00:00:00+00",
         '{"region":"eu"}'),
        ("e2", "hm_usd", "disk", "60000000000000000000000000", "2026-10-03 00:00:00+00",
         '{"region":"eu"}'),
        ("u1", "hm_usd", "disk", "-60000000000000000000000000", "2026-10-04 00:00:00+00",
         '{"region":"us"}'),
    ])
    catalog = _catalog(tmp_path, FILTERED)
    assert _engine_sum(con, "hm_usd", "disk") == "60000000000000000000000000.000000000000"
    assert _engine_sum(con, "hm_usd", "disk", "dimensions like '%eu%'").startswith("overflow")
    found = _overflows(period_problems(con, catalog, date(2026, 10, 1)))
    assert list(found) == ["hm_usd, disk, 2026-10"]
    assert "item disk_eu 120000000000000000000000000" in found["hm_usd, disk, 2026-10"]
    assert "disk_us" not in found["hm_usd, disk, 2026-10"]
    con.close()


@pytest.mark.parametrize("size, quantity, overflows", [
    ("90000000000000000000000000", "95000000000000000000000000", True),   # 2 x size >= 10^26
    ("49000000000000000000000000", "99000000000000000000000000", True),   # 3 x size >= 10^26
    ("49000000000000000000000000", "97000000000000000000000000", False),  # 2 x size fits
    ("90000000000000000000000000", "50000000000000000000000000", False),  # 1 package
    ("100", MAX_VALUE, False),  # 10^24 packages: int_usage_rated names it itself
])
def test_package_count_overflow_is_a_problem_naming_customer_item_and_rate(
        tmp_path, size, quantity, overflows):
    con = _warehouse_with(tmp_path, [
        ("p1", "hm_eur", "calls", quantity, "2026-10-05 00:00:00+00"),
        ("p0", "hm_eur", "calls", "1", "2026-09-05 00:00:00+00"),  # September: not billed
    ])
    catalog = _catalog(tmp_path, _package_catalog(size))
    found = _overflows(period_problems(con, catalog, date(2026, 10, 1)))
    if not overflows:
        assert found == {}
        return
    assert list(found) == ["r_calls_eur, hm_eur"]
    text = found["r_calls_eur, hm_eur"]
    assert text.startswith("rates.csv row 2 (r_calls_eur, hm_eur), package_size: customer "
                           "hm_eur, item calls_item, period 2026-10: rate r_calls_eur prices "
                           f"{quantity} units in packages of {size}")
    assert "give the rate a package_size below" in text
    assert _overflows(period_problems(con, catalog, date(2026, 9, 1))) == {}
    con.close()


def test_package_count_overflow_of_a_restated_published_period_is_found_too(tmp_path):
    """Late usage of a published September is re-priced with September's rate on October's
    bill (int_usage_rated): its package count is checked there too."""
    con = _warehouse_with(tmp_path, [
        ("late", "hm_eur", "calls", "95000000000000000000000000", "2026-09-05 00:00:00+00"),
        ("oct", "hm_eur", "calls", "1", "2026-10-05 00:00:00+00"),
    ])
    catalog = _catalog(tmp_path, _package_catalog("90000000000000000000000000"))
    assert _overflows(period_problems(con, catalog, date(2026, 10, 1))) == {}
    con.execute("insert into billing.published_periods values (date '2026-09-01', "
                "now() - interval 1 day, 4, 'fingerprint')")  # published before it landed
    found = _overflows(period_problems(con, catalog, date(2026, 10, 1)))
    assert list(found) == ["r_calls_eur, hm_eur"]
    assert "item calls_item, period 2026-09: rate r_calls_eur" in found["r_calls_eur, hm_eur"]
    con.execute("update billing.published_periods set published_at = now() + interval 1 day")
    assert _overflows(period_problems(con, catalog, date(2026, 10, 1))) == {}  # not late
    con.close()


def test_bill_names_the_overflowing_month_and_a_correction_unblocks_it(tmp_path):
    """September's events overflowed every month's bill with DuckDB's `Overflow in SUM`
    naming nobody; now `bill` of October stops before pricing naming customer, meter and month,
    and the correction the message asks for lets October bill to the cent."""
    home, catalog, cwd = make_home(tmp_path)
    with (home / "landing" / "huge.jsonl").open("w") as fh:
        for i in range(2):
            fh.write(json.dumps({"event_id": f"huge{i}", "customer_id": "hm_usd",
                                 "meter": "calls", "value": "60000000000000000000000000",
                                 "timestamp": f"2026-09-1{i}T00:00:00Z"}) + "\n")
    done = run_meterline(["ingest"], home=home, catalog=catalog, cwd=cwd)
    assert done.returncode == 0, done.stderr
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=catalog, cwd=cwd)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "customer hm_usd, meter calls, period 2026-09" in out
    assert "120000000000000000000000000" in out and "land a correcting event" in out
    assert "Overflow" not in out and "HUGEINT" not in out and "Traceback" not in out
    done = run_meterline(["catalog", "--period", "2026-10"], home=home, catalog=catalog, cwd=cwd)
    assert done.returncode == 1 and "meter calls, period 2026-09" in done.stdout
    (home / "landing" / "fix.jsonl").write_text(json.dumps({
        "event_id": "huge-fix", "customer_id": "hm_usd", "meter": "calls",
        "value": "-30000000000000000000000000", "timestamp": "2026-09-20T00:00:00Z"}) + "\n")
    assert run_meterline(["ingest"], home=home, catalog=catalog, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=catalog, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"USD 94\.45", done.stdout), done.stdout


def test_bill_names_a_package_count_overflow_and_bills_the_one_next_to_it(tmp_path):
    """Packages of 4.9 x 10^25: 9.7 x 10^25 units (2 packages) bill; one more 2 x 10^24 units
    would make the exact package count overflow inside int_usage_rated, so bill names it."""
    home, catalog, cwd = make_home(tmp_path, _package_catalog("49000000000000000000000000"))
    (home / "landing" / "packages.jsonl").write_text(json.dumps({
        "event_id": "pk1", "customer_id": "hm_eur", "meter": "calls",
        "value": "96999999999999999999999849.75",  # + 150.25 of October = 9.7 x 10^25
        "timestamp": "2026-10-15T00:00:00Z"}) + "\n")
    assert run_meterline(["ingest"], home=home, catalog=catalog, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=catalog, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_meterline(["invoices", "--period", "2026-10", "--customer", "hm_eur", "--format",
                          "json"], home=home, catalog=catalog, cwd=cwd)
    assert done.returncode == 0, done.stderr
    lines = {ln["product_item_id"]: ln for ln in json.loads(done.stdout)["invoices"][0]["lines"]}
    assert lines["calls_item"]["amount"] == "5.00"  # exactly 2 packages x 2.50
    assert lines["calls_item"]["quantity"].startswith("97000000000000000000000000")
    (home / "landing" / "more.jsonl").write_text(json.dumps({
        "event_id": "pk2", "customer_id": "hm_eur", "meter": "calls",
        "value": "2000000000000000000000000", "timestamp": "2026-10-16T00:00:00Z"}) + "\n")
    assert run_meterline(["ingest"], home=home, catalog=catalog, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10"], home=home, catalog=catalog, cwd=cwd)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "customer hm_eur, item calls_item, period 2026-10: rate r_calls_eur" in out
    assert "Overflow in multiplication" not in out and "Traceback" not in out


# --------------------------------------------------------------------------- B. disk
@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int):
    """A real filesystem of ``size_mb`` MB at ``path`` (tmpfs; needs root), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size_mb} MB tmpfs to fill a disk for real (needs root and "
                    f"a kernel that permits it): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(fs: Path, leave_bytes: int) -> None:
    """Take the filesystem's free space but ``leave_bytes``."""
    filler = fs / f"filler-{len(list(fs.glob('filler-*')))}"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(diskspace.free_bytes(fs) - leave_bytes, 0))


def _make_warehouse(path: Path, rows: int) -> None:
    with warehouse.connection(path) as con:
        # in a schema the snapshot serves (orchestration/lib/snapshot.py), so it grows with it
        con.execute("create table if not exists billing.filler (n bigint, s varchar)")
        con.execute("insert into billing.filler select i, md5(i::varchar) || md5((i + 1)::varchar)"
                    " from range(?) as t(i)", [rows])


def _rows(path: Path) -> int:
    with warehouse.connection(path, read_only=True) as con:
        return con.execute("select count(*) from billing.filler").fetchone()[0]


MESSAGE = re.compile(r"^disk full: (?P<path>\S+) needs (?P<needed>\d+) MB free, (?P<free>\d+) MB "
                     r"are free; free some space and run the command again$")


def _refresh(home: Path) -> Path:
    """The real resource's snapshot step, as every writing step calls it."""
    return MeterlineResource(home=str(home), catalog_dir=str(home)).refresh_snapshot()


def test_snapshot_is_not_copied_again_while_the_warehouse_is_unchanged(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    source, target = home / "warehouse.duckdb", home / "snapshot" / "warehouse.duckdb"
    _make_warehouse(source, 1000)
    assert _refresh(home) == target and _rows(target) == 1000
    inode = target.stat().st_ino
    _refresh(home)
    assert target.stat().st_ino == inode  # not copied again
    assert snapshot.publish(source, target) is False
    with warehouse.connection(source):  # a writer that writes nothing (the DDL is a no-op)
        pass
    with warehouse.connection(source, read_only=True):
        pass
    _refresh(home)
    assert target.stat().st_ino == inode and _rows(target) == 1000
    _make_warehouse(source, 5)
    assert snapshot.publish(source, target) is True
    assert target.stat().st_ino != inode and _rows(target) == 1005
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "warehouse.duckdb", "warehouse.duckdb.source.json"]


def test_snapshot_serves_what_readers_read_and_no_per_event_table(tmp_path):
    """Its cost must not grow with the events: raw events, duplicates, quarantine and
    fct_billed_events stay out; 200,000 more events leave its size as it was."""
    home = tmp_path / "home"
    home.mkdir()
    source, target = home / "warehouse.duckdb", home / "snapshot" / "warehouse.duckdb"
    _make_warehouse(source, 10)
    with warehouse.connection(source) as con:
        con.execute("create schema marts")
        con.execute("create table marts.fct_invoices as select 'INV-1' as invoice_id")
        con.execute("create view marts.fct_billed_events as select 'e1' as event_id")
        con.execute("create view marts.fct_invoice_lines as select 'INV-1' as invoice_id, 1 as n")
        con.execute("create schema staging")
        con.execute("create view staging.stg_raw__usage_events as select 1 as x")

    def add_events(n):
        with warehouse.connection(source) as con:
            con.execute("insert into raw.usage_events select 'e' || i, 'c', 'm', 1, "
                        "timestamptz '2026-10-01 00:00:00+00', '{}', 'f', i + 1, 'h', 'r', "
                        "now(), i, false from range(?) t(i)", [n])

    add_events(1000)
    assert snapshot.publish(source, target) is True
    small = target.stat().st_size
    with warehouse.connection(target, read_only=True) as con:
        served = {(s, t) for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables").fetchall()}
        assert snapshot.is_snapshot(con)
        assert con.execute("select * from marts.fct_invoice_lines").fetchall() == [("INV-1", 1)]
    assert {("billing", "filler"), ("marts", "fct_invoices"), ("marts", "fct_invoice_lines"),
            ("raw", "landed_files"), ("raw", "ingest_runs"),
            ("main", "snapshot_about")} <= served
    assert not served & {("raw", "usage_events"), ("raw", "duplicate_events"),
                         ("marts", "fct_billed_events"),
                         ("staging", "stg_raw__usage_events")}
    with warehouse.connection(source, read_only=True) as con:
        assert not snapshot.is_snapshot(con)
    add_events(200_000)
    assert source.stat().st_size > small + 2_000_000
    assert snapshot.publish(source, target) is True
    assert target.stat().st_size == small


def test_free_space_check_and_one_line_messages_without_a_small_disk(tmp_path):
    free = diskspace.free_bytes(tmp_path)
    with pytest.raises(diskspace.DiskFull) as raised:
        diskspace.require_free(tmp_path / "snapshot", free + 10 ** 12)
    full = raised.value
    assert full.errno == errno.ENOSPC and isinstance(full, OSError)
    match = MESSAGE.match(str(full))
    assert match and match["path"] == str(tmp_path / "snapshot")
    assert int(match["needed"]) > int(match["free"]) and int(match["needed"]) >= 10 ** 6
    assert diskspace.DiskFull.from_message(f"x.DiskFull: {full}\n").message == full.message
    diskspace.require_free(tmp_path, 1)  # plenty: no error
    home = tmp_path
    assert diskspace.disk_full_message(full, home) == full.message
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("a step failed") from inner
    except RuntimeError as outer:
        assert diskspace.disk_full_message(outer, home) == full.message
    line = diskspace.disk_full_message(OSError(errno.ENOSPC, "No space left on device"), home,
                                       needed_bytes=50_000_000)
    assert MESSAGE.match(line) and f"{home} needs 55 MB free" in line
    assert diskspace.disk_full_message(
        sqlite3.OperationalError("database or disk is full"), home) is not None
    assert diskspace.disk_full_message(
        duckdb.IOException("IO Error: No space left on device"), home) is not None
    # "disk I/O error" with plenty of space is some other I/O failure: not reported as full
    assert diskspace.disk_full_message(sqlite3.OperationalError("disk I/O error"), home) is None
    assert diskspace.disk_full_message(ValueError("bad"), home) is None


def test_snapshot_on_a_full_disk_keeps_the_old_one_and_leaves_no_tmp(tmp_path, monkeypatch):
    with small_filesystem(tmp_path / "fs", 40) as fs:
        home = fs / "home"
        home.mkdir()
        source, target = home / "warehouse.duckdb", home / "snapshot" / "warehouse.duckdb"
        _make_warehouse(source, 140_000)
        first_size = source.stat().st_size
        assert 4_000_000 < first_size < 10_000_000, first_size
        _refresh(home)
        old = (target.stat().st_ino, target.stat().st_size)
        _make_warehouse(source, 200_000)
        _fill(fs, old[1] // 2)  # less than a snapshot the size of the last one
        with pytest.raises(diskspace.DiskFull) as raised:
            _refresh(home)
        match = MESSAGE.match(str(raised.value))
        assert match and match["path"] == str(target.parent)
        # the estimate: a snapshot the size of the last one
        assert int(match["needed"]) * 10 ** 6 >= old[1] + diskspace.HEADROOM_BYTES
        assert int(match["free"]) * 10 ** 6 <= diskspace.free_bytes(fs)
        assert sorted(p.name for p in target.parent.iterdir()) == [
            "warehouse.duckdb", "warehouse.duckdb.source.json"]
        assert (target.stat().st_ino, target.stat().st_size) == old and _rows(target) == 140_000
        # the build itself running out of space (as when another process takes it meanwhile)
        monkeypatch.setattr(diskspace, "require_free", lambda path, needed: None)
        with pytest.raises(diskspace.DiskFull) as raised:
            _refresh(home)
        assert "no space left on device" in str(raised.value.__cause__).lower()
        assert sorted(p.name for p in target.parent.iterdir()) == [
            "warehouse.duckdb", "warehouse.duckdb.source.json"]
        assert (target.stat().st_ino, target.stat().st_size) == old and _rows(target) == 140_000
        monkeypatch.undo()
        for filler in fs.glob("filler-*"):
            filler.unlink()
        _refresh(home)
        assert _rows(target) == 340_000


def test_full_disk_commands_say_so_in_one_line_and_a_no_op_needs_no_space(tmp_path):
    """A home on a 24 MB disk. Full: the ingest that lands an event says `disk full` in one line
    (its events are landed; the snapshot stays as it was, no .tmp); so does the next command,
    whose snapshot is still due. Freed: it catches up. Nearly full again: a no-op ingest copies
    nothing and succeeds. Completely full: Dagster's run storage fails, still one line."""
    with small_filesystem(tmp_path / "fs", 24) as fs:
        home, catalog, cwd = make_home(fs)
        snapshot_path = home / "snapshot" / "warehouse.duckdb"

        def ingest():
            done = run_meterline(["ingest"], home=home, catalog=catalog, cwd=cwd)
            # progress lines aside, what a person is told went wrong
            errors = [ln for ln in done.stderr.splitlines()
                      if ln.startswith("meterline:") or "Traceback" in ln or "Error" in ln]
            return done, errors

        done, errors = ingest()
        assert done.returncode == 0 and errors == [], done.stderr
        _fill(fs, 3_000_000)  # less than the warehouse + headroom
        (home / "landing" / "more.jsonl").write_text(json.dumps({
            "event_id": "more1", "customer_id": "hm_usd", "meter": "calls", "value": 1,
            "timestamp": "2026-10-03T00:00:00Z"}) + "\n")
        old_inode = snapshot_path.stat().st_ino
        for _ in range(2):
            done, errors = ingest()
            assert done.returncode == 1 and len(errors) == 1, done.stderr
            match = MESSAGE.match(errors[0].removeprefix("meterline: "))
            assert match and match["path"] == str(snapshot_path.parent), errors
            assert sorted(p.name for p in snapshot_path.parent.iterdir()) == [
                "warehouse.duckdb", "warehouse.duckdb.source.json"]
            assert snapshot_path.stat().st_ino == old_inode
        with warehouse.connection(home / "warehouse.duckdb", read_only=True) as con:
            assert con.execute("select count(*) from raw.usage_events where event_id = 'more1'"
                               ).fetchone()[0] == 1  # the ingest had committed
        for filler in fs.glob("filler-*"):
            filler.unlink()
        done, errors = ingest()
        assert done.returncode == 0 and errors == [], done.stderr
        with warehouse.connection(snapshot_path, read_only=True) as con:
            assert con.execute("select count(*) from raw.landed_files "
                               "where source_file = 'more.jsonl'").fetchone()[0] == 1
        caught_up = snapshot_path.stat().st_ino
        _fill(fs, 3_000_000)
        done, errors = ingest()
        assert done.returncode == 0 and errors == [], done.stderr
        assert snapshot_path.stat().st_ino == caught_up  # nothing written, nothing copied
        _fill(fs, 0)
        done, errors = ingest()
        assert done.returncode == 1 and len(errors) == 1, done.stderr
        assert errors[0].startswith(f"meterline: disk full: {home} needs "), errors
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) < 8
