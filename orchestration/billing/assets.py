"""Billing assets: the validated catalog and the dbt models, per monthly partition."""


import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.billing.project import dbt_project
from orchestration.lib import catalog as catalog_lib
from orchestration.lib import clock, periods
from orchestration.resources import DUCKDB_POOL, MeterlineResource

CATALOG_TABLES = ("customers", "meters", "product_items", "rates", "rate_tiers", "commitments")

FIRST_PERIOD_ENV = "METERLINE_FIRST_PERIOD"


def first_partition_key(environ: Mapping[str, str] | None = None) -> str:
    """The first month the code location offers as a partition: METERLINE_FIRST_PERIOD (YYYY-MM,
    not before periods.PARTITION_START), else PARTITION_START.

    Unlike every other setting it is read when the definitions load, not when a run starts:
    Dagster needs the partitions definition at import time (the UI lists its keys, and every
    run and backfill is validated against it). `meterline ui` sets it to the first month with
    landed events; the CLI's runs ignore it (orchestration/lib/runner.py removes it before
    loading the definitions) so `bill --period` keeps every month from PARTITION_START."""
    import re

    from orchestration.lib.settings import UsageError

    env = os.environ if environ is None else environ
    raw = (env.get(FIRST_PERIOD_ENV) or "").strip()
    if not raw:
        return periods.PARTITION_START
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", raw) or raw < periods.PARTITION_START:
        raise UsageError(f"{FIRST_PERIOD_ENV}={raw!r} is not a month from "
                         f"{periods.PARTITION_START} on: give it as YYYY-MM, e.g. 2026-10")
    return raw


def first_landed_period(cfg) -> str | None:
    """The first month (YYYY-MM, UTC) of raw.usage_events, read-only (the snapshot if a run
    holds the warehouse); None when nothing has landed or the warehouse cannot be read."""
    from orchestration.lib import readers
    from orchestration.lib.settings import UsageError

    try:
        with readers.reader(cfg) as con:
            if not readers.table_exists(con, "raw", "usage_events"):
                return None
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


class CatalogInvalid(dg.Failure):
    """A catalog that contradicts itself stops billing before anything is priced."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["catalog", name], group_name="catalog",
                     description=f"{name}.csv from METERLINE_CATALOG_DIR, validated and typed.")
        for name in CATALOG_TABLES
    ],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=DUCKDB_POOL,
)
def price_book(context: dg.AssetExecutionContext, meterline: MeterlineResource):
    """Validate the whole catalog (every problem listed) and, only if it is clean, load it."""
    cfg = meterline.settings()
    cfg.require_catalog()
    period_start = periods.period_from_key(context.partition_key)
    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    currencies = catalog_lib.read_currencies()
    problems = catalog_lib.validate(catalog, currencies)
    with meterline.writer() as con:
        problems += catalog_lib.period_problems(con, catalog, period_start, currencies)
        if not problems:
            from orchestration.billing.publish import restatement_problems

            problems += restatement_problems(con, catalog_lib.parse(catalog, currencies),
                                             period_start)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise CatalogInvalid(
                description=f"the catalog in {cfg.catalog_dir} has {len(problems)} problem(s); "
                f"nothing was priced:\n{lines}",
                metadata={"problems": [str(p) for p in problems]},
            )
        catalog_lib.write_catalog(con, catalog)
    for name in CATALOG_TABLES:
        yield dg.MaterializeResult(asset_key=["catalog", name],
                                   metadata={"rows": len(getattr(catalog, name))})


class MeterlineTranslator(DagsterDbtTranslator):
    """Asset keys are [schema, name] and groups are the dbt folders, derived in one place."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "reference"
        fqn = dbt_resource_props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "billing"


translator = MeterlineTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=DUCKDB_POOL,
)
def billing_models(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                   meterline: MeterlineResource):
    """One `dbt build` for the month: models, seeds and data tests (they appear as asset
    checks). dbt unit tests check the SQL, not the data: the test suite runs them
    (tests/test_billing_e2e.py::test_dbt_unit_tests_pass), billing runs skip them."""
    cfg = meterline.settings()
    period_start = periods.period_from_key(context.partition_key)
    # One stable target folder per home: its runs are serialized, and dbt keeps its partial-parse
    # state there (dagster-dbt would otherwise leave a 1.4 MB folder per run).
    target = cfg.dbt_target_dir
    try:
        with _env(METERLINE_WAREHOUSE=str(cfg.warehouse_path)):
            yield from dbt.cli(
                ["build", "--exclude-resource-type", "unit_test",
                 "--vars", json.dumps({"billing_period": period_start.isoformat()})],
                context=context, target_path=target,
            ).stream()
    finally:
        meterline.refresh_snapshot()


@dg.asset(
    key=["billing", "publish_invoices"],
    group_name="publishing",
    deps=[dg.AssetKey(["staging", "stg_raw__usage_events"]),
          dg.AssetKey(["intermediate", "int_usage_rated"]),
          dg.AssetKey(["marts", "fct_meter_usage"]), dg.AssetKey(["marts", "fct_unbilled_usage"]),
          dg.AssetKey(["marts", "fct_invoices"]), dg.AssetKey(["marts", "fct_invoice_lines"])],
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=DUCKDB_POOL,
    description="Publishes the month: every blocking reconciliation check must have passed in "
    "this same run (read back from billing.reconciliation_results); then all invoices and lines "
    "are appended atomically with gap-free numbers, and the JSON and HTML documents are "
    "written. Published invoices never change.",
)
def publish_invoices(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                     meterline: MeterlineResource):
    too_wide = more_than_one_month(context)  # first: before anything reads the partition key
    if too_wide:
        raise dg.Failure(description=f"{ONE_MONTH_AT_A_TIME} ({too_wide})")
    from orchestration.billing import checks, documents, ledger, publish
    from orchestration.lib import faults

    cfg = meterline.settings()
    period_start = periods.period_from_key(context.partition_key)
    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    currencies = catalog_lib.read_currencies()
    parsed = catalog_lib.parse(catalog, currencies)
    seller = documents.read_seller(cfg.catalog_dir)
    now = clock.now()

    def render(invoices: list[dict]) -> dict[str, str]:
        return documents.render_documents(invoices, parsed=parsed, seller=seller,
                                          currencies=currencies)

    try:
        with meterline.writer() as con:
            failed: list[str] = []
            if not publish.is_published(con, period_start):
                publish.check_grace(period_start, cfg.grace_hours, now)
                failed = checks.unproved(con, context.run.run_id, period_start)
            result = publish.publish(con, parsed=parsed, period_start=period_start, now=now,
                                     grace_hours=cfg.grace_hours, failed_checks=failed,
                                     invoices_dir=cfg.invoices_dir, render=render)
    except publish.PublishRefused as refused:
        raise dg.Failure(description=refused.describe()) from None
    faults.crash_point("publish:after_commit")
    # From here on the period is published. What follows completes it and is idempotent, and
    # runs on every publish whatever a kill interrupted before: it writes every published
    # document not on disk yet (byte for byte from billing.published_documents, this period's
    # and any other's), then shows the period's published rows in the invoice marts.
    key = periods.period_key(period_start)
    written: list = []
    try:
        with meterline.writer() as con:
            pending = ledger.pending_documents(con, cfg.invoices_dir)
        for pending_period, texts in sorted(pending.items()):
            for name, text in texts.items():
                written += documents.write_files(
                    cfg.invoices_dir / periods.period_key(pending_period), {name: text})
                faults.crash_point("publish:mid_documents")
        faults.crash_point("publish:after_documents")
        with meterline.writer() as con:
            stale = publish.marts_show_drafts(con, period_start)
        if stale:  # the invoice marts show a published period's published rows
            with _env(METERLINE_WAREHOUSE=str(cfg.warehouse_path)):
                dbt.cli(["run", "--select", "fct_invoices fct_invoice_lines fct_billed_events",
                         "--vars", json.dumps({"billing_period": period_start.isoformat()})],
                        target_path=cfg.dbt_target_dir).wait()
        faults.crash_point("publish:after_marts")
    except Exception as exc:
        raise dg.Failure(description=(
            f"{key} IS published ({result.invoice_count} invoices, "
            f"{', '.join(result.invoice_numbers) or 'numbers as before'}), but completing it "
            f"failed: {exc}. Run the same publish again: it changes no invoice and finishes "
            f"the documents and marts.")) from exc
    meterline.refresh_snapshot()
    return dg.MaterializeResult(metadata={
        "already_published": result.already_published,
        "invoice_count": result.invoice_count,
        "invoice_numbers": ", ".join(result.invoice_numbers),
        "catalog_fingerprint": result.fingerprint,
        "documents_written": len(written),
    })
