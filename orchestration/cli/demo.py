"""`meterline demo`: a sample home billed end to end, on any day of the month."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from orchestration.cli.invoices import print_invoices
from orchestration.cli.output import EXIT_FAILED, say, say_checks, say_failed_run
from orchestration.lib import clock, periods
from orchestration.lib.settings import Settings, UsageError

DEMO_MARKER = ".meterline-demo"
DEMO_CATALOG = Path(__file__).resolve().parents[2] / "seeds"


def demo_months(now: datetime, grace_hours: int) -> tuple[date, list[date], list[date]]:
    """The demo's calendar at ``now``: (the month it publishes, the months after it that it
    drafts, every month it generates events for). It publishes the latest month whose grace
    period is over, drafts the months after it that have started before today 00:00 UTC, and
    generates one more month of history before the published one. On any day of the month."""
    current = now.date().replace(day=1)
    published = periods.previous_period(current)
    while now < periods.grace_ends_at(published, grace_hours):
        published = periods.previous_period(published)
    drafts, month = [], periods.next_period(published)
    while month <= current and datetime(month.year, month.month, 1, tzinfo=UTC) < \
            datetime(now.year, now.month, now.day, tzinfo=UTC):
        drafts.append(month)
        month = periods.next_period(month)
    return published, drafts, [periods.previous_period(published), published, *drafts]


def cmd_demo(args: argparse.Namespace, cfg: Settings) -> int:
    """Make a sample home (or reuse one it made), generate events for the demo price book (up to
    today 00:00 UTC), ingest them, publish the latest month whose grace period is over, draft the
    months after it, and print the published invoices. Re-running the same day changes nothing:
    the generated files are identical, so ingest skips them, and billing is idempotent."""
    from orchestration.catalog.read import load_catalog
    from orchestration.cli import demo_events
    from orchestration.cli.engine import run_job

    home = cfg.home
    if home.exists() and any(home.iterdir()) and not (home / DEMO_MARKER).exists():
        raise UsageError(f"{home} is not empty and was not made by `meterline demo`: "
                         f"point METERLINE_HOME at a new directory")
    (home / "landing").mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("made by meterline demo\n")
    cfg = Settings(home=home, catalog_dir=DEMO_CATALOG, grace_hours=cfg.grace_hours)
    now = clock.now()
    today = now.date()
    published, drafts, months = demo_months(now, cfg.grace_hours)
    say(f"demo home {home}, demo price book {DEMO_CATALOG}")
    catalog = load_catalog(DEMO_CATALOG)
    with tempfile.TemporaryDirectory(prefix="meterline-demo-") as scratch:
        files = demo_events.generate_events(Path(scratch), catalog, months, until=today)
        # landed files are never modified: a file already in landing/ is left as it is
        new = [f for f in files if not (cfg.landing_dir / f.name).exists()]
        for path in new:
            shutil.copyfile(path, cfg.landing_dir / path.name)
    say(f"generated {len(files)} event files for {', '.join(map(periods.period_key, months))}"
         f" ({len(new)} new in landing/)")
    started = clock.now()
    outcome = run_job(cfg, "ingest_job", run_config={
        "ops": {"landed_events": {"config": {"paths": []}}}})
    if not outcome.success:
        say_failed_run("demo ingest failed", outcome)
        return EXIT_FAILED
    from orchestration.ingestion.report import format_report

    say(format_report(outcome.metadata["raw/usage_events"]["report"]))
    key = periods.period_key(published)
    say(f"publishing {key} (its grace period is over) ...")
    outcome = run_job(cfg, "publish_job", partition_key=key)
    if not outcome.success:
        say_failed_run(f"demo publishing of {key} failed", outcome, publishing=True)
        return EXIT_FAILED
    say_checks(outcome)
    say(f"published; documents in {cfg.invoices_dir / key}")
    for month in drafts:
        mkey = periods.period_key(month)
        mtd = periods.is_month_to_date(month, now=clock.now())
        opens = periods.grace_ends_at(month, cfg.grace_hours).isoformat(timespec="minutes")
        why = "month to date" if mtd else f"its grace period runs until {opens}"
        say(f"billing {mkey} as a draft ({why}) ...")
        outcome = run_job(cfg, "billing_job", partition_key=mkey)
        if not outcome.success:
            say_failed_run(f"demo billing of {mkey} failed", outcome)
            return EXIT_FAILED
        say(f"drafted {mkey}: `meterline invoices --period {mkey}` shows it; publish it with "
             f"`meterline bill --period {mkey} --publish` once its grace period is over")
    say(f"done in {(clock.now() - started).total_seconds():.1f} s")
    return print_invoices(cfg, published, None, "table")
