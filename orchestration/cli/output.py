"""What the CLI says on stderr, and its exit codes (CONTRACT.md section 6)."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def say_checks(outcome) -> None:
    """How many checks a successful run evaluated, and the non-blocking ones that failed."""
    say(f"{outcome.checks_run} checks evaluated (dbt tests and reconciliation), "
         f"{outcome.checks_run - len(outcome.warnings)} passed")
    for warning in outcome.warnings:
        say(f"warning (not blocking): {warning}")


def say_failed_run(heading: str, outcome, *, publishing: bool = False) -> None:
    """Why a run failed: its step failures, then each failed check with its figures."""
    say(f"{heading} (Dagster run {outcome.run_id}):")
    for failure in outcome.failures:
        say("  " + failure.replace("\n", "\n  "))
    if outcome.failed_checks:
        say(f"failed checks{' (nothing was published)' if publishing else ''}:")
        for check in outcome.failed_checks:
            say(f"  - {check}")
