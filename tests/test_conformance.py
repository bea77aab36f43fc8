"""Every worked case of ../shared/conformance and ../shared/conformance-v1.2, run through the
real CLI (procedure in its README): fresh home, TZ=America/New_York, commands in order, then
the warehouse compared."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CONFORMANCE, CONFORMANCE_V12, MISSING_SHARED, run_meterline

# Each case as "<folder>/<case>" under ../shared. Without the shared folder, one skipped case
# says why (an empty list would only say that the parameter set is empty).
CASES = ([f"{folder.name}/{p.name}" for folder in (CONFORMANCE, CONFORMANCE_V12)
          if folder.is_dir() for p in sorted(folder.iterdir()) if p.is_dir()]
         if CONFORMANCE.is_dir()
         else [pytest.param("none", marks=pytest.mark.skip(reason=MISSING_SHARED))])
def _period(key: str) -> date:
    return date.fromisoformat(key + "-01")


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _strip_why(obj):
    if isinstance(obj, dict):
        return {k: _strip_why(v) for k, v in obj.items() if k != "why"}
    if isinstance(obj, list):
        return [_strip_why(v) for v in obj]
    return obj


def _table_exists(con, schema: str, name: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables "
                            "where table_schema = ? and table_name = ?", [schema, name]
                            ).fetchone()[0])


def _compare_line(expected: dict, actual: dict, where: str) -> None:
    for key, want in expected.items():
        got = actual[key]
        if key in ("quantity", "unit_price", "amount"):
            assert _dec(got) == _dec(want), f"{where}: {key} {got} != {want}"
        elif key == "usage_period_start":
            assert str(got) == want, f"{where}: {key} {got} != {want}"
        else:
            assert got == want, f"{where}: {key} {got!r} != {want!r}"


def _compare_invoices(con, expected: dict, invoices_table: str, lines_table: str,
                      label: str) -> None:
    have_inv = _table_exists(con, *invoices_table.split("."))
    have_lines = _table_exists(con, *lines_table.split("."))
    for key, want_invoices in expected.items():
        start = _period(key)
        rows = con.execute(
            f"select customer_id, invoice_id, currency, status, subtotal, total, line_count "
            f"from {invoices_table} where billing_period_start = ?", [start]
        ).fetchall() if have_inv else []
        actual = {r[0]: r for r in rows}
        assert set(actual) == set(want_invoices), f"{label} {key}: customers {sorted(actual)}"
        for customer, want in want_invoices.items():
            cust, invoice_id, currency, status, subtotal, total, line_count = actual[customer]
            where = f"{label} {key} {customer}"
            for k, v in (("invoice_id", invoice_id), ("currency", currency), ("status", status)):
                if k in want:
                    assert v == want[k], f"{where}: {k} {v!r} != {want[k]!r}"
            if "total" in want:
                assert _dec(total) == _dec(want["total"]), f"{where}: total {total}"
                assert _dec(subtotal) == _dec(want["total"]), f"{where}: subtotal {subtotal}"
            if "lines" in want:
                lines = con.execute(
                    f"select line_number, line_type, product_item_id, tier, quantity, unit_price, "
                    f"amount, usage_period_start from {lines_table} where invoice_id = ? "
                    f"order by line_number", [invoice_id]
                ).fetchall() if have_lines else []
                names = ["line_number", "line_type", "product_item_id", "tier", "quantity",
                         "unit_price", "amount", "usage_period_start"]
                got = [dict(zip(names, r, strict=True)) for r in lines]
                assert [g["line_number"] for g in got] == list(range(1, len(got) + 1))
                assert len(got) == len(want["lines"]), (
                    f"{where}: {len(got)} lines, expected {len(want['lines'])}: {got}")
                assert line_count == len(got), f"{where}: line_count {line_count}"
                for i, (w, g) in enumerate(zip(want["lines"], got, strict=True), start=1):
                    _compare_line(w, g, f"{where} line {i}")
        if not want_invoices and have_lines:
            n = con.execute(f"select count(*) from {lines_table} where billing_period_start = ?",
                            [start]).fetchone()[0]
            assert n == 0, f"{label} {key}: expected no lines, found {n}"


def _compare_usage(con, table: str, expected: dict, label: str) -> None:
    for key, rows in expected.items():
        got = con.execute(
            f"select customer_id, meter_id, quantity, event_count from {table} "
            f"where billing_period_start = ?", [_period(key)]
        ).fetchall() if _table_exists(con, *table.split(".")) else []
        actual = {(r[0], r[1]): (r[2], r[3]) for r in got}
        want = {(r["customer_id"], r["meter_id"]): (r["quantity"], r["event_count"]) for r in rows}
        assert set(actual) == set(want), f"{label} {key}: rows {sorted(actual)} != {sorted(want)}"
        for k, (qty, count) in want.items():
            assert _dec(actual[k][0]) == _dec(qty), f"{label} {key} {k}: quantity {actual[k][0]}"
            assert actual[k][1] == count, f"{label} {key} {k}: event_count {actual[k][1]}"


def _check_expect(expect: dict, home: Path, ingest_doc: dict | None, step_no: int) -> None:
    label = f"step {step_no}"
    if "ingest_counts" in expect:
        files = {f["source_file"]: f for f in ingest_doc["files"]}
        for name, want in expect["ingest_counts"].items():
            got = files[name]
            for k in ("read", "landed", "duplicates", "quarantined"):
                assert got[k] == want[k], f"{label} ingest {name}: {k} {got[k]} != {want[k]}"
    if "already_landed" in expect:
        skipped = {f["source_file"] for f in ingest_doc["already_landed"]}
        assert set(expect["already_landed"]) <= skipped, f"{label}: already landed {skipped}"
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    try:
        if "quarantine" in expect:
            got = Counter(
                (r[0], r[1], r[2], r[3] is not None) for r in con.execute(
                    "select source_file, row_number, reason, resolved_at "
                    "from raw.quarantined_events").fetchall())
            want = Counter((q["source_file"], q["row_number"], q["reason"],
                            bool(q.get("resolved", False))) for q in expect["quarantine"])
            assert got == want, (f"{label} quarantine: missing {want - got}, extra {got - want}")
        if "meter_usage" in expect:
            _compare_usage(con, "marts.fct_meter_usage", expect["meter_usage"], label)
        if "unbilled_usage" in expect:
            _compare_usage(con, "marts.fct_unbilled_usage", expect["unbilled_usage"], label)
        if "invoices" in expect:
            _compare_invoices(con, expect["invoices"], "marts.fct_invoices",
                              "marts.fct_invoice_lines", label)
        if "published_invoices" in expect:
            _compare_invoices(con, expect["published_invoices"], "billing.published_invoices",
                              "billing.published_invoice_lines", label + " published")
        if "published_invoice_count" in expect:
            for key, n in expect["published_invoice_count"].items():
                got = con.execute("select count(*) from billing.published_invoices "
                                  "where billing_period_start = ?", [_period(key)]).fetchone()[0]
                assert got == n, f"{label} published count {key}: {got} != {n}"
                row = con.execute("select invoice_count from billing.published_periods "
                                  "where billing_period_start = ?", [_period(key)]).fetchone()
                if row is not None:
                    assert row[0] == n
        if "published_invoice_numbers" in expect:
            for key, numbers in expect["published_invoice_numbers"].items():
                got = {r[0] for r in con.execute(
                    "select invoice_number from billing.published_invoices "
                    "where billing_period_start = ?", [_period(key)]).fetchall()}
                assert got == set(numbers), f"{label} numbers {key}: {sorted(got)}"
        if "billed_events" in expect:
            for want in expect["billed_events"]:
                row = con.execute(
                    "select product_item_id, invoice_id, line_type from marts.fct_billed_events "
                    "where event_id = ?", [want["event_id"]]).fetchall()
                assert len(row) == 1, f"{label} billed event {want['event_id']}: {row}"
                got = dict(zip(["product_item_id", "invoice_id", "line_type"], row[0],
                               strict=True))
                for k in ("product_item_id", "invoice_id", "line_type"):
                    if k in want:
                        assert got[k] == want[k], f"{label} {want['event_id']} {k}: {got[k]}"
    finally:
        con.close()
    if "invoice_documents" in expect:
        for key, docs in expect["invoice_documents"].items():
            folder = home / "invoices" / key
            for invoice_id, present in docs.items():
                both = [(folder / f"{invoice_id}.{ext}").exists() for ext in ("json", "html")]
                assert both == [present, present], f"{label} documents {invoice_id}: {both}"


@pytest.mark.parametrize("case", CASES)
def test_conformance_case(case: str, shared_conformance: Path, tmp_path: Path) -> None:
    run_case(shared_conformance / case, tmp_path)


def run_case(case_dir: Path, tmp_path: Path, engine_env: dict[str, str] | None = None) -> Path:
    """Run one worked case in a fresh home under ``tmp_path`` (its procedure, every step's
    expectations checked), with ``engine_env`` added to every command's environment (e.g.
    METERLINE_ENGINE=spark: tests/test_spark_conformance.py). Returns the home."""
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    catalog = tmp_path / "catalog"
    shutil.copytree(case_dir / "catalog", catalog)
    outside = tmp_path / "cwd"
    outside.mkdir()
    steps = json.loads((case_dir / "steps.json").read_text())
    for step_no, raw_step in enumerate(steps, start=1):
        step = _strip_why(raw_step)
        env = {"TZ": "America/New_York", **(engine_env or {}), **step.get("env", {})}
        for name, rel in step.get("catalog", {}).get("files", {}).items():
            shutil.copyfile(case_dir / rel, catalog / name)
        ingest_doc = None
        if step.get("files"):
            for name in step["files"]:
                shutil.copyfile(case_dir / "events" / name, home / "landing" / name)
            done = run_meterline(["ingest", "--format", "json"], home=home, catalog=catalog,
                                 cwd=outside, env=env)
            assert done.returncode == 0, f"step {step_no} ingest: {done.stderr}"
            ingest_doc = json.loads(done.stdout)
        codes: list[int] = []
        outputs: list[str] = []
        for command in step.get("commands", []):
            done = run_meterline(command, home=home, catalog=catalog, cwd=outside, env=env)
            codes.append(done.returncode)
            outputs.append(f"$ meterline {' '.join(command)} -> {done.returncode}\n"
                           f"{done.stderr[-1500:]}")
            assert done.returncode in (0, 1, 2), done.stderr
        expect = step["expect"]
        if "exit_codes" in expect:
            assert codes == expect["exit_codes"], (
                f"step {step_no}: exit codes {codes}\n" + "\n".join(outputs))
        _check_expect(expect, home, ingest_doc, step_no)
    return home
