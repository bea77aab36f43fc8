"""The notebooks of notebooks/: kept with their outputs stripped (fast tier), and each executed
headless with nbclient on a demo home, failing on any cell error (e2e).

The demo is made once for the module with the clock pinned to the middle of November 2026, so
October is published and November is the month-to-date estimate: "this month" of the explorer
is then a month with both. The kernel is this venv's Python, from a kernelspec written into a
temporary folder (nothing is installed for the user or the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO, run_meterline

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPLORER = REPO / "notebooks" / "usage_and_revenue_explorer.ipynb"
DEMO_NOW = "2026-11-17T12:00:00Z"
THIS_MONTH, LAST_MONTH = date(2026, 11, 1), date(2026, 10, 1)
KERNEL = "meterline-notebook-test"
PLOTLY = "application/vnd.plotly.v1+json"
# appended to the explorer when the test runs it (never saved): what its estimate cell found
READ_BACK = """
import json
print("ESTIMATE " + json.dumps({c: {"this_month": str(r["this_month"]),
                                    "last_month": str(r["last_month"]),
                                    "is_estimate": r["is_estimate"]}
                                for c, r in estimate.items()}))
"""


# --------------------------------------------------------------------------- fast tier
def test_notebooks_are_kept_without_outputs():
    assert EXPLORER in NOTEBOOKS and REPO / "notebooks" / "explore_invoices.ipynb" in NOTEBOOKS
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} cell {cell.get('id')}: outputs"
                assert cell.execution_count is None, f"{path.name} cell {cell.get('id')}: count"
        assert notebook.metadata.kernelspec.name == "python3", path.name


# --------------------------------------------------------------------------- e2e
@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("notebooks")
    home = base / "home"
    done = run_meterline(["demo"], home=home, catalog=REPO / "seeds", cwd=base,
                         env={"METERLINE_NOW": DEMO_NOW}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    folder = Path(install(kernel_name=KERNEL, prefix=str(tmp_path_factory.mktemp("kernels"))))
    assert json.loads((folder / "kernel.json").read_text())["argv"][0] == sys.executable
    return KernelSpecManager(kernel_dirs=[str(folder.parent)])


def _execute(path: Path, kernels, home: Path, *, env: dict[str, str] | None = None,
             extra: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """Run every cell of ``path`` (plus ``extra``) in a fresh kernel; a cell error raises."""
    import os

    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in extra)
    kernel_env = {k: v for k, v in os.environ.items()
                  if not k.startswith(("METERLINE_", "DAGSTER_"))}
    kernel_env.update({"METERLINE_HOME": str(home), "METERLINE_NOW": DEMO_NOW, **(env or {})})
    manager = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(notebook, km=manager, timeout=180, startup_timeout=120,
                            resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute(cleanup_kc=True, env=kernel_env)
    return notebook


def _text(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    """What a cell printed and displayed as text."""
    cell = next(c for c in notebook.cells if c.get("id") == cell_id)
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for o in cell.outputs)


def _invoice_totals(home: Path) -> dict[str, dict]:
    """The SQL answer: per currency, this and last month's invoice totals (marts.fct_invoices,
    not the revenue mart the notebook reads), and whether this month is still a draft."""
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("""
            select currency,
                   coalesce(sum(total) filter (where billing_period_start = $this), 0),
                   coalesce(sum(total) filter (where billing_period_start = $last), 0),
                   bool_or(status = 'draft') filter (where billing_period_start = $this),
                   (select minor_unit from reference.iso_4217_currencies as c
                    where c.currency = i.currency)
            from marts.fct_invoices as i
            where billing_period_start in ($this, $last)
            group by currency""", {"this": THIS_MONTH, "last": LAST_MONTH}).fetchall()
    finally:
        con.close()
    return {c: {"this_month": t, "last_month": p, "is_estimate": d, "minor_unit": m}
            for c, t, p, d, m in rows}


@pytest.mark.e2e
def test_explore_invoices_runs_on_a_demo_home(demo_home, kernels):
    notebook = _execute(REPO / "notebooks" / "explore_invoices.ipynb", kernels, demo_home)
    listing = _text(notebook, "c2")  # the latest billed month: November, a draft
    assert "acme_corp" in listing and "draft" in listing
    totals = _text(notebook, "c3")  # exact totals per currency
    assert all(f"'{c}': Decimal(" in totals for c in ("USD", "EUR", "JPY"))


@pytest.mark.e2e
def test_explorer_answers_with_plots_and_its_estimate_is_the_invoices(demo_home, kernels):
    from orchestration.lib.readers import format_money

    notebook = _execute(EXPLORER, kernels, demo_home, extra=(READ_BACK,))
    assert "this month 2026-11, last month 2026-10" in _text(notebook, "setup")
    assert "the live warehouse" in _text(notebook, "fresh")
    figures = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
               if PLOTLY in o.get("data", {})]
    assert len(figures) == 7  # one per question
    printed = _text(notebook, notebook.cells[-1].id)
    estimate = json.loads(printed.split("ESTIMATE ", 1)[1])
    expected = _invoice_totals(demo_home)
    assert set(estimate) == {c for c, r in expected.items()
                             if r["this_month"] or r["last_month"]}
    shown = _text(notebook, "estimate")
    for currency, figures_of in estimate.items():
        sql = expected[currency]
        assert Decimal(figures_of["this_month"]) == sql["this_month"], currency
        assert Decimal(figures_of["last_month"]) == sql["last_month"], currency
        assert figures_of["is_estimate"] is True and sql["is_estimate"] is True, currency
        # the table shows the exact amount at the currency's minor unit
        assert format_money(sql["this_month"], sql["minor_unit"]) in shown, currency
    assert any(Decimal(f["this_month"]) for f in estimate.values()), "an estimate to compare"


@pytest.mark.e2e
def test_explorer_reads_the_snapshot_while_a_writer_holds_the_warehouse(demo_home, kernels):
    code = ("import duckdb, sys\n"
            f"con = duckdb.connect({str(demo_home / 'warehouse.duckdb')!r})\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        notebook = _execute(EXPLORER, kernels, demo_home)
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    fresh = _text(notebook, "fresh")
    assert "the readers' snapshot of" in fresh and "a run is writing" in fresh


@pytest.mark.e2e
def test_explorer_runs_on_a_month_without_revenue(demo_home, kernels):
    notebook = _execute(EXPLORER, kernels, demo_home, env={"METERLINE_PERIOD": "2026-08"})
    assert "this month 2026-08" in _text(notebook, "setup")
    assert "(nothing to plot)" in _text(notebook, "estimate")


@pytest.mark.e2e
def test_a_cell_error_fails_the_run(kernels, tmp_path):
    from nbclient.exceptions import CellExecutionError

    broken = tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]), broken)
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        _execute(broken, kernels, tmp_path)
