"""`meterline api-key issue|list|revoke`: the HTTP API's keys (orchestration/web/api_keys.py).

``issue --scope ingest|operator [--name TEXT]`` prints the new secret once on stdout (only its
SHA-256 is kept in $METERLINE_HOME/access/api_keys.json); ``list`` shows every key but its
secret; ``revoke KEY_ID`` stops a key at the server's next request."""

from __future__ import annotations

import argparse
import json

from orchestration.cli.output import EXIT_OK, say
from orchestration.lib.settings import Settings, UsageError


def configure(p: argparse.ArgumentParser) -> None:
    """The sub-commands of `meterline api-key`."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = sub.add_parser("issue", help="issue a key (printed once; only its hash is kept)")
    issue.add_argument("--scope", required=True, choices=["ingest", "operator"],
                       help="ingest: may only POST /v1/events; operator: may only read "
                       "(GET /v1/customers/...)")
    issue.add_argument("--name", default="", help="a label for `list` (e.g. the producer)")
    listing = sub.add_parser("list", help="every key: id, name, scope, issued, revoked")
    listing.add_argument("--format", choices=["table", "json"], default="table",
                         help="table for people (default); json for programs")
    revoke = sub.add_parser("revoke", help="revoke a key: refused from the next request")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `list` shows it")


def cmd_api_key(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.web import api_keys

    cfg.require_home()
    if args.action == "issue":
        issued = api_keys.issue(cfg, args.scope, args.name)
        print(issued.secret)
        may = ("POST /v1/events" if args.scope == "ingest"
               else "read GET /v1/customers/{id}/usage and /invoices of any customer")
        say(f"issued {args.scope} key {issued.key.key_id}"
            f"{f' ({issued.key.name})' if issued.key.name else ''} at {issued.key.issued_at}: "
            f"it may {may}. It is shown this once; only its SHA-256 is kept, in {issued.path}. "
            f"Send it as `Authorization: Bearer <key>`; "
            f"`meterline api-key revoke {issued.key.key_id}` stops it.")
        return EXIT_OK
    if args.action == "list":
        keys = [k.public() for k in api_keys.load_keys(cfg)]
        if args.format == "json":
            print(json.dumps({"keys": keys}, indent=2))
            return EXIT_OK
        if not keys:
            say("no API keys yet: `meterline api-key issue --scope ingest|operator`")
            return EXIT_OK
        header = ("key_id", "scope", "name", "issued_at", "revoked_at")
        table = [header] + [tuple(k[c] or "" for c in header) for k in keys]
        widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        return EXIT_OK
    if args.action == "revoke":
        key = api_keys.revoke(cfg, args.key_id)
        say(f"revoked {key.key_id} ({key.scope}) at {key.revoked_at}: the server refuses it "
            f"from its next request")
        return EXIT_OK
    raise UsageError(f"no such action: {args.action}")
