"""The command line tells the truth about itself (issue 12, item 13): `--version`, `--help` with
option descriptions and an example on every command, `--format json` where a command prints
data, and dbt's messages without colour codes."""

from __future__ import annotations

import json

import pytest

from orchestration import instance as meterline_instance
from orchestration.cli import main as cli
from orchestration.lib.settings import load
from tests.conftest import REPO


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip().startswith("meterline 0.")


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"meterline {command}" in text and "example:" in text and "METERLINE_HOME" in text
    assert "exit codes:" in text


@pytest.mark.parametrize("command", ["ingest", "bill", "invoices", "explain", "verify",
                                     "catalog"])
def test_commands_that_print_data_offer_json(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    formats = next(a for a in sub._actions if a.dest == "format")
    assert "json" in formats.choices and formats.help


def test_catalog_as_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    monkeypatch.setenv("METERLINE_CATALOG_DIR", str(REPO / "seeds"))
    assert cli.main(["catalog", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["problems"] == [] and doc["rows"]["customers"] >= 10


def test_bad_catalog_as_json_lists_every_problem(tmp_path, monkeypatch, capsys):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for path in (REPO / "seeds").glob("*.csv"):
        (catalog / path.name).write_text(path.read_text())
    rates = catalog / "rates.csv"
    rates.write_text(rates.read_text() + "r_bad,nope,,USD,per_unit,abc,,,2026-01-01,\n")
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    monkeypatch.setenv("METERLINE_CATALOG_DIR", str(catalog))
    assert cli.main(["catalog", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and len(doc["problems"]) >= 2
    assert any("r_bad" in problem for problem in doc["problems"])


def test_dbt_runs_without_colour_codes(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_USE_COLORS", raising=False)
    # prepare_instance sets these in the environment: monkeypatch restores them afterwards
    monkeypatch.setenv("METERLINE_HOME", str(tmp_path))
    monkeypatch.setenv("METERLINE_CATALOG_DIR", str(REPO / "seeds"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    meterline_instance.prepare_instance(load())
    import os

    assert os.environ["DBT_USE_COLORS"] == "false"
    assert meterline_instance.ANSI.sub("", "\x1b[31mDatabase Error\x1b[0m in model x") == \
        "Database Error in model x"


def test_a_lock_message_names_the_process():
    text = ("IO Error: Could not set lock on file \"/h/warehouse.duckdb\": Conflicting lock is "
            "held in /usr/bin/python3.11 (PID 4242) by user root.")
    said = meterline_instance.describe_lock_holder(text)
    assert said and "process 4242" in said and "kill 4242" in said
    assert meterline_instance.describe_lock_holder("Catalog Error: no such table") is None
