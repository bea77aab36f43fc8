"""`meterline portal token issue|list|revoke`: the customers' access tokens for the portal
(`meterline serve`, /portal/) and the API, kept as hashes (orchestration/web/customer_tokens.py)."""

from __future__ import annotations

import argparse
import json

from orchestration.cli.output import EXIT_FAILED, EXIT_OK, say
from orchestration.lib.settings import Settings, UsageError

#: where the sign-in link points (`meterline serve`'s default address)
DEFAULT_BASE = "http://127.0.0.1:8080"


def sign_in_link(secret: str, base: str = DEFAULT_BASE) -> str:
    """The link carrying the token in its fragment: a browser never sends a fragment to the
    server, the sign-in page's script posts it (docs/operations.md section 13)."""
    return f"{base}/portal/login#token={secret}"


def cmd_portal(args: argparse.Namespace, cfg: Settings) -> int:
    from orchestration.web import customer_tokens

    cfg.require_home()
    if args.action == "issue":
        issued = customer_tokens.issue(cfg, args.customer_id, expires_days=args.expires)
        print(issued.secret)
        print(sign_in_link(issued.secret))
        say(f"issued portal token {issued.token_id} for customer {issued.customer_id} at "
            f"{issued.issued_at}, "
            f"{'expires ' + issued.expires_at if issued.expires_at else 'no expiry'}; only its "
            f"SHA-256 is kept, in {customer_tokens.tokens_path(cfg)}. The token and its sign-in "
            f"link (above) are shown this once: give them to the customer. "
            f"`meterline portal token revoke {issued.token_id}` locks it out.")
        return EXIT_OK
    if args.action == "list":
        tokens = customer_tokens.list_tokens(cfg)
        if args.format == "json":
            print(json.dumps({"tokens": tokens}, indent=2))
            return EXIT_OK
        if not tokens:
            say("no portal tokens issued yet: `meterline portal token issue CUSTOMER_ID`")
            return EXIT_OK
        cols = ("token_id", "customer_id", "status", "issued_at", "expires_at", "revoked_at")
        cells = [[str(t[c] or "-") for c in cols] for t in tokens]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        return EXIT_OK
    if args.action == "revoke":
        if customer_tokens.revoke(cfg, args.token_id):
            say(f"revoked portal token {args.token_id}: it opens nothing from the next request")
            return EXIT_OK
        known = {t["token_id"] for t in customer_tokens.list_tokens(cfg)}
        if args.token_id in known:
            say(f"portal token {args.token_id} was already revoked")
            return EXIT_OK
        say(f"no portal token {args.token_id!r}: `meterline portal token list` shows them")
        return EXIT_FAILED
    raise UsageError(f"no such portal action: {args.action}")


def add_parser(command) -> None:
    """The `portal` command's nested parsers (``command`` is main.build_parser's helper)."""
    p = command("portal", cmd_portal)
    objects = p.add_subparsers(dest="object", required=True, metavar="OBJECT")
    token = objects.add_parser("token", help="the customers' portal tokens")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = actions.add_parser("issue", help="issue a token for a customer (printed once)")
    issue.add_argument("customer_id", metavar="CUSTOMER_ID",
                       help="a customer of the price book (customers.csv)")
    issue.add_argument("--expires", type=int, metavar="DAYS",
                       help="days until the token stops working (default: no expiry)")
    listing = actions.add_parser("list", help="every token: id, customer, status, times "
                                 "(never a secret or hash)")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    revoke = actions.add_parser("revoke", help="revoke a token: it stops working at the next "
                                "request")
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="the id `list` shows (pt_...)")
