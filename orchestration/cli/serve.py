"""`meterline serve` (the explorer app) and `meterline token` (its access secrets).

The server reads the readers' snapshot, one short connection per request: it never takes the
writer's turn and never writes the warehouse, so it runs beside `ingest` and `bill`."""

from __future__ import annotations

import argparse
import signal

from orchestration.cli.output import EXIT_OK, say
from orchestration.lib.settings import Settings, UsageError


def cmd_token(args: argparse.Namespace, cfg: Settings) -> int:
    """Issue (or rotate) an access secret: printed once, only its hash kept in the home."""
    from orchestration.web import auth

    cfg.require_home()
    if args.role != "operator":  # argparse's choices already say so; customer tokens: later
        raise UsageError(f"no such token role: {args.role}")
    issued = auth.issue_operator_token(cfg)
    print(issued.secret)
    say(f"{'rotated' if issued.replaced else 'issued'} the operator token at {issued.issued_at}"
        f"{' (the previous one no longer works)' if issued.replaced else ''}; only its SHA-256 "
        f"is kept, in {issued.path}. It is shown this once: paste it into the login form of "
        f"`meterline serve` (or send `Authorization: Bearer <token>`).")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, cfg: Settings) -> int:
    """The explorer pages on http://HOST:PORT/operator/ until Ctrl-C."""
    import uvicorn

    from orchestration.web import auth
    from orchestration.web.app import create_app

    cfg.require_home()
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port (1-65535)")
    app = create_app(cfg)
    host = f"[{args.host}]" if ":" in args.host else args.host
    say(f"Meterline explorer on http://{host}:{args.port}/operator/ (home {cfg.home}); "
        f"reads the readers' snapshot {cfg.snapshot_path}; Ctrl-C stops it")
    if auth.operator_token_hash(cfg) is None:
        say("no operator token yet: every operator page answers 401 until you run "
            "`meterline token operator`")
    else:
        say(f"operator token issued {auth.operator_token_issued_at(cfg) or '(time unknown)'}; "
            f"log in with it (`meterline token operator` rotates it)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        say(f"note: listening on {args.host}, not only this machine: put TLS in front of it "
            f"(the operator token travels with every request)")
    # Started in the background, a process inherits SIGINT/SIGTERM as ignored: give them their
    # default handlers back, so Ctrl-C and `kill` stop the server. uvicorn catches both while it
    # runs, shuts down, then raises the signal again under these (Ctrl-C: exit 130).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", access_log=False,
        server_header=False, proxy_headers=False, lifespan="off"))
    server.run()
    return EXIT_OK
