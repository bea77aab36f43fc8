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
from orchestration.lib import periods
from orchestration.resources import DUCKDB_POOL, MeterlineResource

CATALOG_TABLES = ("customers", "meters", "product_items", "rates", "rate_tiers", "commitments")

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=periods.PARTITION_START, fmt="%Y-%m", end_offset=1
)


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
    from datetime import UTC, datetime

    from orchestration.billing import checks, documents, publish

    cfg = meterline.settings()
    period_start = periods.period_from_key(context.partition_key)
    catalog = catalog_lib.load_catalog(cfg.catalog_dir)
    currencies = catalog_lib.read_currencies()
    parsed = catalog_lib.parse(catalog, currencies)
    now = datetime.now(UTC)
    try:
        with meterline.writer() as con:
            failed: list[str] = []
            if not publish.is_published(con, period_start):
                publish.check_grace(period_start, cfg.grace_hours, now)
                failed = checks.unproved(con, context.run.run_id, period_start)
            result = publish.publish(con, parsed=parsed, period_start=period_start, now=now,
                                     grace_hours=cfg.grace_hours, failed_checks=failed)
            invoices = publish.published_documents(con, period_start)
    except publish.PublishRefused as refused:
        raise dg.Failure(description=refused.describe()) from None
    # From here on the period is published. What follows completes it and is idempotent:
    # a failure says so, and running the publish again (a no-op for the invoices) finishes it.
    key = periods.period_key(period_start)
    try:
        folder = cfg.invoices_dir / key
        missing = [inv for inv in invoices if not all(
            (folder / f"{inv['invoice_id']}.{s}").exists() for s in ("json", "html"))]
        written = documents.write_documents(missing, folder=folder, parsed=parsed,
                                            seller=documents.read_seller(cfg.catalog_dir),
                                            currencies=currencies)
        with meterline.writer() as con:
            stale = con.execute("select count(*) from marts.fct_invoices where "
                                "billing_period_start = ? and status = 'draft'",
                                [period_start]).fetchone()[0]
        if stale:  # the invoice marts show a published period's published rows
            with _env(METERLINE_WAREHOUSE=str(cfg.warehouse_path)):
                dbt.cli(["run", "--select", "fct_invoices fct_invoice_lines fct_billed_events",
                         "--vars", json.dumps({"billing_period": period_start.isoformat()})],
                        target_path=cfg.dbt_target_dir).wait()
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
