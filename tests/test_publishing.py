"""Publishing through the real CLI (CONTRACT.md section 7): numbered, atomic, documented,
idempotent; refused on a failed reconciliation or dbt test, inside the grace period and after an
edit of a catalog row that priced the published period."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from tests.conftest import run_meterline
from tests.handmade import EXPECTED, make_home


def _published(home: Path) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("select invoice_number, invoice_id, total::varchar "
                           "from billing.published_invoices order by 1").fetchall()
    finally:
        con.close()


def test_publish_numbers_documents_and_is_idempotent(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd, env={"METERLINE_GRACE_HOURS": "1000000"})
    assert done.returncode == 1 and "grace period" in done.stderr
    assert _published(home) == [] and not (home / "invoices").exists()

    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    published = _published(home)
    assert [n for n, _, _ in published] == [f"MLN-{i:06d}" for i in range(1, len(EXPECTED) + 1)]
    assert {i: Decimal(t) for _, i, t in published} == {
        f"INV-202610-{c}": Decimal(v[1]) for c, v in EXPECTED.items()}
    doc = json.loads((home / "invoices" / "2026-10" / "INV-202610-hm_usd.json").read_text())
    assert doc["total"] == "94.45" and doc["invoice_number"].startswith("MLN-")
    assert [ln["amount"] for ln in doc["lines"]] == ["10.00", "8.53", "60.00", "0.92", "15.00"]
    assert doc["lines"][1]["tier_range"] == {"above": "1000", "up_to": None}
    page = (home / "invoices" / "2026-10" / "INV-202610-hm_usd.html").read_text()
    assert "USD 94.45" in page and doc["invoice_number"] in page
    shown = json.loads(run_meterline(["invoices", "--period", "2026-10", "--format", "json"],
                                     home=home, catalog=cat, cwd=cwd).stdout)
    assert {inv["status"] for inv in shown["invoices"]} == {"published"}

    again = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                          cwd=cwd)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert _published(home) == published

    rates = cat / "rates.csv"
    rates.write_text(rates.read_text().replace("r_storage_usd,storage_item,,USD,per_unit,0.023",
                                               "r_storage_usd,storage_item,,USD,per_unit,0.024"))
    refused = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home,
                            catalog=cat, cwd=cwd)
    assert refused.returncode == 1 and "rates.csv r_storage_usd" in refused.stderr
    assert _published(home) == published

    # a late October event: billing November restates October, which needs its rows unchanged
    (home / "landing" / "late.jsonl").write_text(json.dumps(
        {"event_id": "late-g1", "customer_id": "hm_usd", "meter": "gb", "value": 50,
         "timestamp": "2026-10-20T00:00:00Z"}) + "\n")
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    done = run_meterline(["bill", "--period", "2026-11"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 1
    assert "restating late usage of published 2026-10" in done.stderr + done.stdout
    rates.write_text(rates.read_text().replace("per_unit,0.024", "per_unit,0.023"))
    done = run_meterline(["bill", "--period", "2026-11"], home=home, catalog=cat, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(run_meterline(["invoices", "--period", "2026-11", "--customer", "hm_usd",
                                      "--format", "json"], home=home, catalog=cat, cwd=cwd).stdout)
    adjustments = [ln for ln in shown["invoices"][0]["lines"] if ln["line_type"] == "adjustment"]
    # storage max 40 -> 50: 10 more GB at 0.023 = 0.23, restating October on November's draft
    assert [(a["product_item_id"], a["quantity"], a["amount"], a["usage_period_start"])
            for a in adjustments] == [("storage_item", "10", "0.23", "2026-10-01")]
    assert _published(home) == published, "published invoices never change"


def test_publish_refused_when_reconciliation_fails(tmp_path):
    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("delete from raw.usage_events where event_id = 'u-c2'")  # a landed event lost
    con.close()
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 1
    assert "landed_file_counts" in done.stderr and "october.jsonl" in done.stderr
    assert _published(home) == []
    assert not (home / "invoices" / "2026-10").exists()


def _publish_runs(home_env, home: Path, cat: Path):
    """A function running publish_job for October with only the publish step and ``checks``
    (asset check keys), in process on the home's instance; the reconciliation checks' keys; the
    blocking dbt tests' keys; and the instance."""
    import dagster as dg

    from orchestration.billing.project import ensure_manifest

    ensure_manifest()
    from orchestration.billing.assets import blocking_dbt_checks
    from orchestration.billing.reconciliation.registry import CHECKS
    from orchestration.definitions import defs

    instance = home_env(home, cat)
    job = defs.resolve_job_def("publish_job")
    publish_key = dg.AssetKey(["billing", "publish_invoices"])

    def run(checks: set):
        return job.get_subset(asset_selection={publish_key}, asset_check_selection=checks
                              ).execute_in_process(instance=instance, partition_key="2026-10",
                                                   raise_on_error=False)

    reconciliation = {dg.AssetCheckKey(dg.AssetKey(check.asset), check.name) for check in CHECKS}
    return run, reconciliation, set(blocking_dbt_checks()), instance


def _refusals(result) -> list[str]:
    return [e.step_failure_data.user_failure_data.description for e in result.all_events
            if e.is_step_failure and e.step_failure_data.user_failure_data]


def test_a_tampered_line_is_caught_by_the_checks_and_blocks_the_publish_step(tmp_path, home_env):
    """The publish step, the reconciliation checks and the dbt tests as Dagster runs them, on
    drafts whose line was changed after the build: the blocking checks fail with their figures
    (the Decimal pricer's, and the dbt test of the invoice total) and the publish step does not
    run; and the publish step alone (no checks in its run) refuses by itself."""
    from orchestration.billing.reconciliation.registry import CHECKS

    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    assert run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat,
                         cwd=cwd).returncode == 0
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("update intermediate.int_invoice_lines_drafted set amount = amount + 0.01 "
                "where invoice_id = 'INV-202610-hm_usd' and line_number = 2")  # 8.53 -> 8.54
    con.close()
    run, reconciliation, dbt_tests, _ = _publish_runs(home_env, home, cat)

    checked = run(reconciliation | dbt_tests)
    assert not checked.success
    failed = {e.check_name: e.metadata for e in checked.get_asset_check_evaluations()
              if not e.passed}
    assert set(failed) == {"line_amounts_match_decimal_pricer",
                           "assert_invoice_total_equals_sum_of_lines"}
    figures = failed["line_amounts_match_decimal_pricer"]["figures"].data
    first = figures["differences"][0]
    assert (first["invoice_id"], first["line_number"], first["actual_amount"],
            first["expected_amount"]) == ("INV-202610-hm_usd", 2, "8.54", "8.53")
    assert not checked.asset_materializations_for_node("billing__publish_invoices")
    assert _published(home) == [] and not (home / "invoices" / "2026-10").exists()

    alone = run(set())
    assert not alone.success
    refused = _refusals(alone)
    assert len(refused) == 1 and "reconciliation failed; nothing was written" in refused[0]
    assert all(f"{check.name}: did not run in this run" in refused[0]
               for check in CHECKS if check.blocking)
    assert f"{len(dbt_tests)} blocking dbt test(s) did not run in this run" in refused[0]
    assert _published(home) == []

    # the audit trail keeps what each run proved; a full publish rebuilds the month and passes
    done = run_meterline(["bill", "--period", "2026-10", "--publish"], home=home, catalog=cat,
                         cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t for _, _, t in _published(home) if _ == "INV-202610-hm_usd"] == ["94.4500"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    runs = con.execute("select run_id, count(*) filter (where not passed) from "
                       "billing.reconciliation_results group by run_id order by min(checked_at)"
                       ).fetchall()
    con.close()
    assert [failures for _, failures in runs] == [0, 1, 0]  # bill, tampered check run, publish


def test_a_tampered_invoice_total_fails_its_dbt_test_and_publishes_nothing(tmp_path, home_env):
    """An invariant only a dbt test states (an invoice total = the sum of its lines: no
    reconciliation check re-derives it) stops publishing through the real publish job. Run with
    the dbt tests, the failed test keeps the publish step from running, and the gate reads the
    failure from that run's asset check evaluations; run with the reconciliation checks only,
    which all pass, the publish step refuses by itself: the dbt test did not pass in its run."""
    from orchestration.billing import checks
    from orchestration.billing.assets import blocking_dbt_checks

    home, cat, cwd = make_home(tmp_path)
    assert run_meterline(["ingest"], home=home, catalog=cat, cwd=cwd).returncode == 0
    assert run_meterline(["bill", "--period", "2026-10"], home=home, catalog=cat,
                         cwd=cwd).returncode == 0
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("update intermediate.int_invoices_drafted "
                "set total = total + 1, subtotal = subtotal + 1 "
                "where customer_id = 'hm_usd'")  # 94.45 -> 95.45, its lines unchanged
    con.close()
    run, reconciliation, dbt_tests, instance = _publish_runs(home_env, home, cat)
    test = "marts/fct_invoices:assert_invoice_total_equals_sum_of_lines"

    everything = run(reconciliation | dbt_tests)
    assert not everything.success
    evaluations = everything.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations if not e.passed} == {
        "assert_invoice_total_equals_sum_of_lines"}
    assert {e.asset_check_key for e in evaluations} == reconciliation | dbt_tests
    assert not everything.asset_materializations_for_node("billing__publish_invoices")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        gate = checks.unproved(con, instance, everything.run_id, date(2026, 10, 1),
                               blocking_dbt_checks())
    finally:
        con.close()
    assert gate == [f"{test}: dbt test failed (1 failing row(s))"]

    reconciled = run(reconciliation)
    assert not reconciled.success
    assert all(e.passed for e in reconciled.get_asset_check_evaluations())
    refused = _refusals(reconciled)
    assert len(refused) == 1 and "reconciliation failed; nothing was written" in refused[0]
    assert "blocking dbt test(s) did not run in this run" in refused[0] and test in refused[0]
    assert _published(home) == [] and not (home / "invoices" / "2026-10").exists()
