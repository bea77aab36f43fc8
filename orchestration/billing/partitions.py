"""The months Dagster bills: the monthly partitions of every billing asset, where they start,
and the guard that keeps a publish to one month."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import dagster as dg

from orchestration.lib import periods, readers, snapshot
from orchestration.lib.settings import UsageError

FIRST_PERIOD_ENV = "METERLINE_FIRST_PERIOD"


def first_partition_key(environ: Mapping[str, str] | None = None) -> str:
    """The first month the code location offers as a partition: METERLINE_FIRST_PERIOD (YYYY-MM,
    not before periods.PARTITION_START), else PARTITION_START.

    Unlike every other setting it is read when the definitions load, not when a run starts:
    Dagster needs the partitions definition at import time (the UI lists its keys, and every
    run and backfill is validated against it). `meterline ui` sets it to the first month with
    landed events; the CLI's runs ignore it (orchestration/cli/engine.py removes it before
    loading the definitions) so `bill --period` keeps every month from PARTITION_START."""
    env = os.environ if environ is None else environ
    raw = (env.get(FIRST_PERIOD_ENV) or "").strip()
    if not raw:
        return periods.PARTITION_START
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", raw) or raw < periods.PARTITION_START:
        raise UsageError(f"{FIRST_PERIOD_ENV}={raw!r} is not a month from "
                         f"{periods.PARTITION_START} on: give it as YYYY-MM, e.g. 2026-10")
    return raw


def first_landed_period(cfg) -> str | None:
    """The first month (YYYY-MM, UTC) of raw.usage_events, read-only (if a run holds the
    warehouse, the first month of marts.fct_meter_usage in the snapshot); None when nothing
    has landed or the warehouse cannot be read."""
    try:
        with readers.reader(cfg) as con:
            if snapshot.is_snapshot(con):  # no events in it: the first month with meter usage
                if not readers.table_exists(con, "marts", "fct_meter_usage"):
                    return None
                first = con.execute("select strftime(min(billing_period_start), '%Y-%m') "
                                    "from marts.fct_meter_usage").fetchone()[0]
            elif not readers.table_exists(con, "raw", "usage_events"):
                return None
            else:
                first = con.execute("select strftime(min(event_at), '%Y-%m') "
                                    "from raw.usage_events").fetchone()[0]
    except UsageError:  # no warehouse yet, or busy with no snapshot
        return None
    return max(first, periods.PARTITION_START) if first else None


monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=first_partition_key(), fmt="%Y-%m", end_offset=1
)

ONE_MONTH_AT_A_TIME = ("publish one month at a time: meterline bill --period YYYY-MM --publish, "
                       "or launch publish_job for a single partition")


def _backfill_months(context: dg.AssetExecutionContext, backfill_id: str) -> set[str] | None:
    """The partition keys a backfill targets (None: unknown, e.g. the backfill is gone)."""
    backfill = context.instance.get_backfill(backfill_id)
    if backfill is None:
        return None
    if not backfill.is_asset_backfill:  # a job backfill: the launch dialog's partitions
        return set(backfill.partition_names or [])
    try:
        data = backfill.asset_backfill_data or backfill.get_asset_backfill_data(
            context.repository_def.asset_graph)
    except Exception:  # a backfill of definitions that changed since: do not guess
        return None
    return {key for subset in data.target_subset.partitions_subsets_by_asset_key.values()
            for key in subset.get_partition_keys()}


def more_than_one_month(context: dg.AssetExecutionContext) -> str | None:
    """Why this publish step must not run, if its run covers more than one month: a partition
    range (a single-run backfill), or one run of a backfill of several months (with
    BackfillPolicy.multi_run(1) each such run has one partition and the tag dagster/backfill).
    Every run of such a backfill is refused, so the backfill publishes no month at all."""
    if context.has_partition_key_range:
        keys = context.partition_key_range
        if keys.start != keys.end:
            return f"this run covers {keys.start} to {keys.end}; nothing was published"
    backfill_id = context.run.tags.get("dagster/backfill")
    if backfill_id:
        months = _backfill_months(context, backfill_id)
        if months is None or len(months) > 1:
            scope = (f"{len(months)} months ({min(months)} to {max(months)})" if months
                     else "an unknown set of months")
            return (f"this run is part of backfill {backfill_id}, which covers {scope}; "
                    f"nothing was published")
    return None
