"""What the CLI shows while a run executes: one line when each step starts and when it ends.

A Dagster logger (``meterline_progress``) that the CLI turns on for its in-process runs; it
reads step events only and writes to stderr, keeping stdout for the command's results. The UI's
runs do not use it (their run view shows every event)."""

from __future__ import annotations

import logging
import sys
import time

import dagster as dg

STEPS = {  # step key -> what it does, as a person reads it
    "landed_events": "landing new files from landing/ into raw tables",
    "price_book": "validating the whole catalog and loading it",
    "billing_models": "one dbt build: meter usage, rated usage, invoice lines, dbt tests",
    "reconciliation": "the reconciliation checks (independent Decimal pricer, raw re-derivation)",
    "publish_invoices": "publishing: ledger, seals, documents, marts",
}


class _StepHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None or not event.step_key:
            return
        step = event.step_key.split("[")[0]
        name = STEPS.get(step, step)
        kind = event.event_type_value
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
            sys.stderr.write(f"- {name} ...\n")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            took = time.monotonic() - self._started.get(step, time.monotonic())
            word = "done" if kind == "STEP_SUCCESS" else "FAILED"
            sys.stderr.write(f"  {word} in {took:.1f} s\n")
        elif kind == "STEP_SKIPPED":
            sys.stderr.write(f"- {name}: skipped (an earlier step or a blocking check failed)\n")
        else:
            return
        sys.stderr.flush()


@dg.logger(description="One line per step on stderr (the meterline CLI's progress).")
def meterline_progress(_init_context) -> logging.Logger:
    logger = logging.Logger("meterline_progress", level=logging.DEBUG)
    logger.addHandler(_StepHandler())
    return logger
