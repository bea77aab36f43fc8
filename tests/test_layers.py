"""The layering of docs/architecture.md holds: no import runs upward or sideways between the
domains, and there is no circle (tests/import_graph.py), and no module outgrows its room."""

from __future__ import annotations

from pathlib import Path

from tests import import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_no_upward_import_and_no_circle():
    edges = import_graph.graph()
    assert "orchestration.definitions" in edges and "orchestration.cli.main" in edges
    assert import_graph.problems(edges) == []


def test_the_checker_sees_an_upward_import():
    edges = {"orchestration.lib.clock": {"orchestration.cli.main"},
             "orchestration.cli.main": {"orchestration.lib.clock"}}
    found = import_graph.problems(edges)
    assert any(p.startswith("upward or sideways: orchestration.lib.clock") for p in found)
    assert any(p.startswith("circle:") for p in found)


def test_no_module_over_about_400_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (ROOT / "orchestration").rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > 420} == {}
