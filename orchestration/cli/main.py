"""`meterline`: the command line (CONTRACT.md section 6). Thin: commands that change the
warehouse run Dagster jobs on the home's instance (orchestration/cli/engine.py); the others only
read. This module is the parser and the entry point; each command lives in a module of its own.

Exit codes: 0 success; 1 a check or validation failed; 2 bad usage."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from orchestration.cli import apikey
from orchestration.cli import portal as portal_cli
from orchestration.cli.bill import cmd_bill
from orchestration.cli.commands import cmd_catalog, cmd_ingest, cmd_ui, cmd_verify
from orchestration.cli.demo import cmd_demo
from orchestration.cli.docs import cmd_docs
from orchestration.cli.explain import cmd_explain
from orchestration.cli.invoices import cmd_invoices
from orchestration.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from orchestration.cli.serve import cmd_serve, cmd_token
from orchestration.lib import readers, spark
from orchestration.lib import settings as settings_lib
from orchestration.lib.settings import UsageError

_ENVIRONMENT = """\
environment:
  METERLINE_HOME         the home: landing/, warehouse.duckdb, invoices/, dagster/ (default ./data)
  METERLINE_CATALOG_DIR  the price book CSVs (default ./seeds)
  METERLINE_GRACE_HOURS  hours after a month ends before it may be published (default 24)
  METERLINE_NOW          pin the clock to an instant, e.g. 2026-12-01T05:00:00Z (tests, replays)
  METERLINE_INGEST_REFRESH  off: `ingest` only lands (default on: it also refreshes the open
                         months' drafts, the explorers' month to date)
  METERLINE_ENGINE       where the dbt models run: duckdb (default) or spark (docs/spark.md)

exit codes: 0 success; 1 a check or validation failed (the message says which); 2 bad usage.
docs: docs/contract.md (the rules), docs/operations.md (running it)."""

COMMANDS: dict[str, tuple[str, str]] = {  # name -> (what it does, an example)
    "ingest": ("land event files (default: everything new in landing/): counts per file, "
               "quarantine by reason, skipped and unreadable files",
               "meterline ingest\n  meterline ingest landing/usage_2026-10.jsonl.gz --format json"),
    "bill": ("validate the catalog, build a month's meter usage, rated usage and draft invoices, "
             "run every reconciliation check; with --publish, publish the month when they all "
             "passed (numbered invoices and their documents)",
             "meterline bill --period 2026-10\n  meterline bill --period 2026-10 --publish"),
    "invoices": ("show a month's invoices (published ones from the ledger itself)",
                 "meterline invoices --period 2026-10 --customer acme_corp --format json"),
    "explain": ("the audit trail of an invoice's lines: meter, aggregation, quantity, the rate "
                "and tiers, the events behind it; for a level meter, the level carried in and its "
                "steps up to the quantity",
                "meterline explain --invoice INV-202610-acme_corp --line 2"),
    "verify": ("check the published ledger (rows, seals, documents) and name the first invoice "
               "and field that no longer matches; read only",
               "meterline verify\n  meterline verify --format json"),
    "catalog": ("validate the price book (every problem listed) and summarise it",
                "meterline catalog --period 2026-10"),
    "demo": ("make a sample home, generate events, ingest them, publish the latest month whose "
             "grace period is over, draft the months after it, print the invoices",
             "METERLINE_HOME=/tmp/meterline-demo meterline demo"),
    "ui": ("start the Dagster UI on the home's instance (runs, assets, checks, schedule, sensor)",
           "meterline ui --port 3000"),
    "serve": ("start the explorer pages for the operator on http://127.0.0.1:8080/operator/ "
              "(usage over time, revenue, this month's estimate, quarantine, unbilled usage); "
              "read only, from the readers' snapshot: they answer while a run writes",
              "meterline serve --port 8080"),
    "token": ("issue the operator's access token for `meterline serve` (printed once, only its "
              "hash kept in $METERLINE_HOME/access/); issuing again rotates it",
              "meterline token operator"),
    "portal": ("the customers' portal tokens: `issue CUSTOMER_ID [--expires DAYS]` prints a "
               "token and its sign-in link once (only its hash is kept), `list`, `revoke "
               "TOKEN_ID` (effective at the next request)",
               "meterline portal token issue acme_corp --expires 30\n"
               "  meterline portal token list\n  meterline portal token revoke pt_1a2b3c4d"),
    "api-key": ("the HTTP API's keys (docs/operations.md section 14): `issue --scope "
                "ingest|operator [--name TEXT]` prints a key once (only its hash is kept), "
                "`list`, `revoke KEY_ID` (effective at the next request)",
                "meterline api-key issue --scope ingest --name producer-1\n"
                "  meterline api-key list --format json\n"
                "  meterline api-key revoke key_1a2b3c4d5e6f"),
    "docs": ("write the dbt documentation site of the home's warehouse (lineage, every model's "
             "and column's description, column types) to $METERLINE_HOME/docs/; read only: it "
             "works while a run writes (from the readers' snapshot then)",
             "meterline docs"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meterline")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterline",
        description="Meterline: exact metered invoices from raw usage events.",
        epilog=_ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meterline {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func) -> argparse.ArgumentParser:
        what, example = COMMANDS[name]
        p = sub.add_parser(name, help=what,
                           description=textwrap.fill(what[0].upper() + what[1:] + ".", 88),
                           epilog=f"example:\n  {example}\n\n{_ENVIRONMENT}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    def period(p: argparse.ArgumentParser, *, required: bool, what: str) -> None:
        p.add_argument("--period", required=required, metavar="YYYY-MM",
                       help=f"{what} (a UTC calendar month, e.g. 2026-10)")

    def output(p: argparse.ArgumentParser, choices=("table", "json")) -> None:
        p.add_argument("--format", choices=list(choices), default="table",
                       help="table for people (default); json for programs, money as exact "
                       "strings" + ("; csv, one row per line" if "csv" in choices else ""))

    p = command("ingest", cmd_ingest)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders to land (default: everything new in "
                   "$METERLINE_HOME/landing/)")
    output(p)

    p = command("bill", cmd_bill)
    period(p, required=True, what="the month to bill")
    p.add_argument("--publish", action="store_true",
                   help="publish the month once every check passed: refused inside its grace "
                   "period; publishing a published month again does nothing")
    output(p)

    p = command("invoices", cmd_invoices)
    period(p, required=True, what="the month to show")
    p.add_argument("--customer", metavar="ID", help="only this customer's invoice")
    output(p, ("table", "json", "csv"))

    p = command("explain", cmd_explain)
    p.add_argument("--invoice", required=True, metavar="ID",
                   help="the invoice id (INV-YYYYMM-<customer>), as `invoices` shows it, or "
                        "the number printed on a published invoice (MLN-000001)")
    p.add_argument("--line", type=int, metavar="N", help="only this line (default: every line)")
    output(p)

    p = command("verify", cmd_verify)
    output(p)

    p = command("catalog", cmd_catalog)
    period(p, required=False, what="also check the catalog against this month's landed usage")
    output(p)

    command("demo", cmd_demo)

    p = command("ui", cmd_ui)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")

    p = command("serve", cmd_serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")

    p = command("token", cmd_token)
    p.add_argument("role", choices=["operator"],
                   help="whose token: operator (the explorer pages)")

    portal_cli.add_parser(command)

    apikey.configure(command("api-key", apikey.cmd_api_key))

    command("docs", cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster marks backfill_policy as beta on every import; a person running a command has no
    # use for it (the pins in pyproject.toml are exact).
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    spark.quiet_pyspark_pandas_warning()
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = None
    try:
        cfg = settings_lib.load()
        return args.func(args, cfg)
    except readers.WarehouseBusy as exc:  # not bad usage: the command can run again later
        print(f"meterline: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except UsageError as exc:
        print(f"meterline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("meterline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `meterline explain ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a full disk (DiskFull, ENOSPC, SQLite, DuckDB): one line
        from orchestration.lib import diskspace

        home = cfg.home if cfg is not None else Path.cwd()
        message = diskspace.disk_full_message(
            exc, home, diskspace.file_size(home / "warehouse.duckdb"))
        if message is None:
            raise
        print(f"meterline: {message}", file=sys.stderr)
        return EXIT_FAILED


def entry() -> None:
    """The `meterline` console script: main(), then the process ends at once with its code.
    When main() returns, everything the command wrote has reached the operating system: each
    DuckDB and SQLite commit is in its database file or write-ahead log (a log left behind is
    replayed by the next open, as after a kill -9), and each document is a closed file renamed
    into place. What a normal exit does that matters runs here first: the atexit callbacks
    (logging's flush of every handler, multiprocessing's release of the semaphores it
    registered: without it, its resource tracker printed a "leaked semaphore" warning at the
    end of `meterline demo`), then a flush of stdout and stderr. The rest of the interpreter's
    shutdown, which tears down the modules of Dagster, dbt and great-expectations object by
    object, does no useful work: skipping it saves about 2 s of a 1,000-event bill (15.5 s
    against 17.5 s, paired runs on 2 cores). An exception still leaves through
    the normal path, with its traceback."""
    import atexit
    import contextlib

    code = main()
    atexit._run_exitfuncs()  # what Python runs at exit before tearing the modules down
    for stream in (sys.stdout, sys.stderr):
        # `| head` closed it, or it is closed already
        with contextlib.suppress(BrokenPipeError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
