"""Billing assets: the validated catalog and the dbt models, per monthly partition."""


import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from orchestration.billing.partitions import (
    ONE_MONTH_AT_A_TIME,
    monthly_partitions,
    more_than_one_month,
)
from orchestration.billing.project import dbt_project, dbt_run_executable
from orchestration.billing.reconciliation import expectations
from orchestration.catalog.load import write_catalog
from orchestration.catalog.model import parse
from orchestration.catalog.periods import period_problems
from orchestration.catalog.read import load_catalog, read_currencies
from orchestration.catalog.rules import validate
from orchestration.instance import DUCKDB_POOL
from orchestration.lib import clock, periods, spark
from orchestration.resources import MeterlineResource

CATALOG_TABLES = ("customers", "meters", "product_items", "rates", "rate_tiers", "commitments")

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
    catalog = load_catalog(cfg.catalog_dir)
    currencies = read_currencies()
    problems = validate(catalog, currencies)
    with meterline.writer() as con:
        problems += period_problems(con, catalog, period_start, currencies)
        if not problems:
            from orchestration.billing.publish import restatement_problems

            problems += restatement_problems(con, parse(catalog, currencies),
                                             period_start)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise CatalogInvalid(
                description=f"the catalog in {cfg.catalog_dir} has {len(problems)} problem(s); "
                f"nothing was priced:\n{lines}",
                metadata={"problems": [str(p) for p in problems]},
            )
        write_catalog(con, catalog)
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
        engine = {f"METERLINE_DUCKDB_{name.upper()}": value
                  for name, value in cfg.duckdb_config(cfg.warehouse_path).items()}
        # The period and the run's instant reach the models as environment variables read
        # while executing (macros billing_period, run_instant), not as --vars: vars that change
        # from run to run make dbt drop partial parsing and parse the whole project again
        # (about 3 s of every bill and every month-to-date refresh).
        run = {"METERLINE_BILLING_PERIOD": period_start.isoformat(),
               "METERLINE_RUN_INSTANT": clock.run_instant(context).isoformat()}
        args = ["build", "--exclude-resource-type", "unit_test"]
        if cfg.engine == "spark":
            # docs/spark.md: the models run on Spark over Parquet copies of the sources; what
            # they build is then loaded into the DuckDB warehouse (orchestration/lib/spark.py)
            with meterline.writer() as con:
                spark.export_sources(con, cfg, _source_tables())
            run |= spark.spark_environment(cfg) | {"METERLINE_ENGINE": "spark"}
            args += ["--target", "spark"]
            target = cfg.spark_home / "dbt"
        with _env(METERLINE_WAREHOUSE=str(cfg.warehouse_path), **engine, **run):
            preloading = None
            for event in dbt.cli(args, context=context, target_path=target).stream():
                # the reconciliation checks after this step need great-expectations: import it
                # while dbt works in its own process (started now; not before, when dagster-dbt's
                # own imports would compete with it)
                preloading = preloading or expectations.preload()
                yield event
        if cfg.engine == "spark":
            with meterline.writer() as con:
                imported = spark.import_marts(con, cfg)
            _build_views_on_duckdb(cfg, engine)
            context.log.info(f"loaded {len(imported)} tables built on Spark into DuckDB")
    finally:
        meterline.refresh_snapshot()


def _source_tables() -> list[tuple[str, str]]:
    """The (schema, table) of every dbt source (models/staging/_sources.yml), from the manifest."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    return sorted({(source["schema"], source["identifier"])
                   for source in manifest["sources"].values()})


def _build_views_on_duckdb(cfg, engine_env: dict[str, str]) -> None:
    """The views (staging, the invoice marts over the ledger, the usage fingerprint) on the DuckDB
    warehouse, over the tables loaded from Spark: they read the ledger when they are read, so a
    publication shows in fct_invoices at once, as on DuckDB."""
    env = {k: v for k, v in os.environ.items() if k != "METERLINE_ENGINE"}
    env |= engine_env | {"METERLINE_WAREHOUSE": str(cfg.warehouse_path)}
    command = [dbt_run_executable(), "run", "--quiet", "--select", "config.materialized:view",
               "--target", "duckdb", "--project-dir", str(dbt_project.project_dir),
               "--profiles-dir", str(dbt_project.project_dir),
               "--target-path", str(cfg.dbt_target_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise dg.Failure(f"building the views on DuckDB over Spark's tables failed:\n"
                         f"{done.stdout}\n{done.stderr}")


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
def publish_invoices(context: dg.AssetExecutionContext, meterline: MeterlineResource):
    too_wide = more_than_one_month(context)  # first: before anything reads the partition key
    if too_wide:
        raise dg.Failure(description=f"{ONE_MONTH_AT_A_TIME} ({too_wide})")
    from orchestration.billing import checks, documents, ledger, publish
    from orchestration.lib import faults

    cfg = meterline.settings()
    period_start = periods.period_from_key(context.partition_key)
    catalog = load_catalog(cfg.catalog_dir)
    currencies = read_currencies()
    parsed = parse(catalog, currencies)
    seller = documents.read_seller(cfg.catalog_dir)
    now = clock.now()

    def render(invoices: list[dict]) -> dict[str, str]:
        try:
            return documents.render_documents(invoices, parsed=parsed, seller=seller,
                                              currencies=currencies, workers=cfg.cores)
        except documents.documents_pdf.PdfUnavailable as missing:  # before anything is appended
            raise publish.PublishRefused(str(missing)) from None

    try:
        with meterline.writer() as con:
            failed: list[str] = []
            if not publish.is_published(con, period_start):
                publish.check_grace(period_start, cfg.grace_hours, now)
                failed = checks.unproved(con, context.instance, context.run.run_id,
                                         period_start, blocking_dbt_checks())
            result = publish.publish(con, parsed=parsed, period_start=period_start, now=now,
                                     grace_hours=cfg.grace_hours, failed_checks=failed,
                                     invoices_dir=cfg.invoices_dir, render=render)
    except publish.PublishRefused as refused:
        raise dg.Failure(description=refused.describe()) from None
    faults.crash_point("publish:after_commit")
    # From here on the period is published, and the invoice marts (views over the ledger and
    # the drafts) already show it. What follows completes it and is idempotent, and runs on every
    # publish whatever a kill interrupted before: it writes every published document not on
    # disk yet (byte for byte from billing.published_documents, this period's and any other's).
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
    except Exception as exc:
        raise dg.Failure(description=(
            f"{key} IS published ({result.invoice_count} invoices, "
            f"{', '.join(result.invoice_numbers) or 'numbers as before'}), but completing it "
            f"failed: {exc}. Run the same publish again: it changes no invoice and finishes "
            f"the documents.")) from exc
    meterline.refresh_snapshot()
    return dg.MaterializeResult(metadata={
        "already_published": result.already_published,
        "invoice_count": result.invoice_count,
        "invoice_numbers": ", ".join(result.invoice_numbers),
        "catalog_fingerprint": result.fingerprint,
        "documents_written": len(written),
    })


def blocking_dbt_checks() -> list[dg.AssetCheckKey]:
    """The dbt tests the publish step needs passed in its own run: every blocking asset check of
    dbt origin (dagster-dbt makes a test at severity error a blocking check) on the assets the
    publish step publishes from (its deps: the marts, rated usage and the staged events)."""
    published_from = publish_invoices.dependency_keys
    return sorted((spec.key for spec in billing_models.check_specs
                   if spec.blocking and spec.asset_key in published_from),
                  key=lambda key: key.to_user_string())
