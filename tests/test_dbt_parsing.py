"""dbt parses the project once per home, not once per run (issue 14: a small bill's fixed cost).

The billing step gives dbt the month and the run's instant as environment variables read while
executing (macros billing_period, run_instant), never as --vars: vars that change make dbt drop
partial parsing and parse all of the project again. The tests' `where:` configs, rendered when
dbt parses, hold a `__billing_period__` placeholder that get_where_subquery resolves per run.
Here two months are billed in one home, the second without parsing: its tests filter its own
month, and none keeps the placeholder. Real CLI, Dagster, dbt and DuckDB."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_month_to_date import CUR, FIRST, PREV, _cli, _land, home  # noqa: F401

pytestmark = pytest.mark.e2e


def _last_dbt_run(target: Path) -> list[str]:
    """The messages dbt logged in its latest invocation in this home."""
    messages = [json.loads(line)["info"]["msg"] for line in
                (target / "dbt.log").read_text().splitlines() if line.startswith("{")]
    starts = [i for i, msg in enumerate(messages) if msg.startswith("running dbt with")]
    return messages[starts[-1]:]


def _filtered_periods(target: Path) -> dict[str, int]:
    """How often each billed-period literal filters a compiled test of the latest run."""
    found: dict[str, int] = {}
    for sql in (target / "run").rglob("*.sql"):
        text = sql.read_text()
        assert "__billing_period__" not in text, sql
        if "dbt_subquery" in text:
            for day in re.findall(r"billing_period_start = cast\('([0-9-]+)' as date\)", text):
                found[day] = found.get(day, 0) + 1
    return found


def test_a_second_months_bill_skips_parsing_and_tests_its_own_month(home):  # noqa: F811
    _land(home, "first.jsonl", FIRST)
    _cli(home, "ingest")
    target = home / "home" / "dagster" / "dbt"

    _cli(home, "bill", "--period", PREV)
    assert set(_filtered_periods(target)) == {f"{PREV}-01"}

    _cli(home, "bill", "--period", CUR)
    log = _last_dbt_run(target)
    assert any("no changes found, skipping parsing" in msg for msg in log), log[:12]
    assert not any("Unable to do partial parsing" in msg for msg in log), log[:12]
    periods = _filtered_periods(target)
    assert set(periods) == {f"{CUR}-01"} and sum(periods.values()) > 10, periods
