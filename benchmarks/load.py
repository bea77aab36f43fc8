"""Load test: the HTTP API and the portal's reads answer while a writer runs (issue 17, item 5).

    METERLINE_HOME=/tmp/loadhome .venv/bin/meterline demo
    .venv/bin/python benchmarks/load.py --home /tmp/loadhome --bill

A home of benchmarks/generate.py's events (ingested and billed, clock pinned after October) is
measured the same way with ``--catalog <its catalog> --bill --period 2026-10``.

Bounded, on 127.0.0.1, standard library only (threads and http.client):

1. starts `meterline serve` on the home (a free port), issues an operator key, an ingest key
   and a portal token for each of a few customers (revoked again at the end);
2. the GET phase: ``--clients`` threads (default 20), each with its own keep-alive
   connection, send ``--requests`` requests in all (default 2,000): the usage of this month and
   the invoices of a random customer with the operator key, and the same of a portal token's own
   customer with that token. With ``--bill`` a `meterline bill --period <this month>` starts
   just before and runs beside it (the phase says how much of it ran during the bill);
3. the POST phase: ``--post-clients`` threads (default 4) post batches of 1,000 new events for
   ``--post-seconds`` seconds (default 20): sustained events/s and bytes written. The files
   written are removed afterwards unless ``--keep-posted`` (they would land at the next ingest).

Every non-2xx answer or failed connection is an error. p50/p95/p99 are nearest-rank over every
request. The figures are printed and appended to benchmarks/RESULTS.md with the machine and the
versions (``--no-results`` to skip)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def meterline_bin() -> str:
    candidate = Path(sys.executable).with_name("meterline")
    return str(candidate) if candidate.exists() else "meterline"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class Client:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, port: int):
        self.port, self.con = port, None

    def request(self, method: str, path: str, token: str, body: bytes | None = None
                ) -> tuple[int, bytes]:
        if self.con is None:
            self.con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.con.request(method, path, body=body, headers=headers)
            response = self.con.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.con.close()
            self.con = None
            raise


def start_server(env: dict, port: int, log) -> subprocess.Popen:
    server = subprocess.Popen([meterline_bin(), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"meterline serve exited: {log.read().decode()[-2000:]}")
        try:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            con.request("GET", "/healthz")
            if con.getresponse().status == 200:
                con.close()
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("meterline serve did not answer /healthz within 60 s")


def get_phase(port: int, plan: list[tuple[str, str]], clients: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(plan)))

    def work() -> None:
        client = Client(port)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            path, token = plan[i]
            started = time.perf_counter()
            try:
                status, _ = client.request("GET", path, token)
                problem = None if status == 200 else f"{status} {path}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__} {path}"
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {"requests": len(latencies), "errors": len(errors), "error_samples": errors[:5],
            "wall_s": wall, "rps": len(latencies) / wall if wall else 0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000 if latencies else 0}


def post_phase(port: int, key: str, customers: list[str], meter: str, seconds: float,
               clients: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    files: list[str] = []
    sent = {"events": 0, "bytes": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def work(worker: int) -> None:
        client = Client(port)
        rng = random.Random(worker)
        while time.monotonic() < deadline:
            run = uuid.uuid4().hex
            events = [{"event_id": f"load-{run}-{i}", "customer_id": rng.choice(customers),
                       "meter": meter, "value": f"{rng.randint(1, 1000)}.{rng.randint(0, 999)}",
                       "timestamp": at} for i in range(1000)]
            body = json.dumps({"events": events}).encode()
            started = time.perf_counter()
            try:
                status, answer = client.request("POST", "/v1/events", key, body)
            except (OSError, http.client.HTTPException) as exc:
                status, answer = 0, str(exc).encode()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status == 202:
                    sent["events"] += 1000
                    doc = json.loads(answer)
                    files.append(doc["file"])
                else:
                    errors.append(f"{status} {answer[:200]!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {"batches": len(latencies), "errors": len(errors), "error_samples": errors[:5],
            "events": sent["events"], "wall_s": wall,
            "events_per_s": sent["events"] / wall if wall else 0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000, "files": files}


def _tail(log, size: int = 600) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-size:]


def versions() -> str:
    names = ("duckdb", "starlette", "uvicorn", "dagster", "dbt-core")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join([f"Python {platform.python_version()}", *found])


def measure(args, cfg, env: dict, plan: list, period: str, ingest_key: str,
            customers: list[str], meter: str, server_log, bill_log) -> dict:
    """The two phases against a `meterline serve` started here (and the bill beside them)."""
    port = free_port()
    server = start_server(env, port, server_log)
    bill = None
    result: dict = {}
    try:
        get_phase(port, plan[:40], 4)  # warm up (imports, first connections)
        bill_ended: list[float] = []
        if args.bill:
            bill = subprocess.Popen([meterline_bin(), "bill", "--period", period], env=env,
                                    stdout=subprocess.DEVNULL, stderr=bill_log)
            bill_started = time.monotonic()
            watcher = threading.Thread(
                target=lambda: (bill.wait(), bill_ended.append(time.monotonic())))
            watcher.start()
            time.sleep(3)  # past the bill's start-up, into its writing
        get_started = time.monotonic()
        result["get"] = get_phase(port, plan, args.clients)
        get_ended = time.monotonic()
        if bill is not None:
            watcher.join()
            overlap = min(get_ended, bill_ended[0]) - max(get_started, bill_started)
            result["bill"] = {"period": period, "exit": bill.returncode,
                              "wall_s": bill_ended[0] - bill_started,
                              "get_started_after_s": get_started - bill_started,
                              "get_share_during_bill": max(0.0, overlap)
                              / (get_ended - get_started),
                              "stderr_tail": _tail(bill_log)}
        result["post"] = post = post_phase(port, ingest_key, customers, meter,
                                           args.post_seconds, args.post_clients)
        written = sum((cfg.landing_dir / f).stat().st_size for f in post["files"])
        post["bytes_written"] = written
        post["mib_per_s"] = written / post["wall_s"] / (1 << 20) if post["wall_s"] else 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if bill is not None and bill.poll() is None:
            bill.wait()
        if not args.keep_posted:
            for f in result.get("post", {}).get("files", []):
                (cfg.landing_dir / f).unlink(missing_ok=True)
    result["server_stderr_tail"] = _tail(server_log)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="an existing, billed home")
    parser.add_argument("--catalog", type=Path, default=REPO / "seeds",
                        help="its price book (default seeds/, the demo's)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--bill", action="store_true",
                        help="run `meterline bill --period <this month>` during the GET phase")
    parser.add_argument("--period", default=None, help="the month --bill bills (YYYY-MM)")
    parser.add_argument("--post-seconds", type=float, default=20)
    parser.add_argument("--post-clients", type=int, default=4)
    parser.add_argument("--keep-posted", action="store_true",
                        help="leave the posted files in landing/api/ (they land at next ingest)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args(argv)

    import duckdb

    from orchestration.lib import clock
    from orchestration.lib.settings import UsageError, load
    from orchestration.web import api_keys, customer_tokens

    home = args.home.resolve()
    env = {**os.environ, "METERLINE_HOME": str(home),
           "METERLINE_CATALOG_DIR": str(args.catalog.resolve())}
    cfg = load(environ=env)
    if not cfg.snapshot_path.is_file():
        raise SystemExit(f"{home} has no readers' snapshot: bill it first (or run demo)")
    con = duckdb.connect(str(cfg.snapshot_path), read_only=True)
    try:
        customers = [r[0] for r in con.execute(
            "select customer_id from marts.dim_customers order by 1").fetchall()]
        landed = con.execute("select coalesce(sum(rows_landed), 0) from raw.landed_files"
                             ).fetchone()[0]
        meter = con.execute("select meter_id from catalog.meters where aggregation = 'sum' "
                            "order by 1 limit 1").fetchone()[0]
    finally:
        con.close()
    period = args.period or clock.today().strftime("%Y-%m")
    month_start = f"{period}-01"  # the usage asked for: the billed month to date

    portal = []
    for customer in customers:  # a portal token for the first few of the price book
        if len(portal) < 5:
            with contextlib.suppress(UsageError):
                portal.append(customer_tokens.issue(cfg, customer, expires_days=1))
    if not portal:
        raise SystemExit(f"no customer of {args.catalog} is in the home's marts")
    operator = api_keys.issue(cfg, "operator", "load test")
    ingest = api_keys.issue(cfg, "ingest", "load test")
    rng = random.Random(17)
    plan = []
    for _ in range(args.requests):
        what = rng.choice(("usage", "invoices"))
        if rng.random() < 0.5:
            customer, token = rng.choice(customers), operator.secret
        else:
            t = rng.choice(portal)
            customer, token = t.customer_id, t.secret
        path = f"/v1/customers/{customer}/{what}"
        plan.append((path + f"?from={month_start}" if what == "usage" else path, token))
    # the children's stderr goes to files: a pipe nobody reads could fill and stall them
    with tempfile.TemporaryFile() as server_log, tempfile.TemporaryFile() as bill_log:
        try:
            result = measure(args, cfg, env, plan, period, ingest.secret, customers, meter,
                             server_log, bill_log)
        finally:
            api_keys.revoke(cfg, operator.key.key_id)
            api_keys.revoke(cfg, ingest.key.key_id)
            for t in portal:
                customer_tokens.revoke(cfg, t.token_id)
    post = result["post"]
    post.pop("files", None)
    print(json.dumps(result, indent=2, default=str))
    if not args.no_results:
        append_results(args, result, landed, len(customers))
    return 0 if result["get"]["errors"] == 0 and post["errors"] == 0 else 1


def append_results(args, result: dict, landed: int, customers: int) -> None:
    get, post, bill = result["get"], result["post"], result.get("bill")
    cpu = os.cpu_count()
    lines = [
        "", f"## Load test (benchmarks/load.py), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"- Machine: {platform.platform()}, {cpu} cores "
        f"({len(os.sched_getaffinity(0))} usable); {versions()}",
        f"- Home: {landed:,} events landed, {customers} customers; `meterline serve` on "
        f"127.0.0.1 (one uvicorn process)",
        f"- GET phase: {args.clients} concurrent clients, {get['requests']:,} requests "
        f"(usage of {args.period or 'this month'} to date and invoices; half with an "
        f"operator key, half with portal tokens on their own customer), "
        f"{get['wall_s']:.1f} s, {get['rps']:.0f} requests/s",
    ]
    if bill:
        lines.append(
            f"- During `meterline bill --period {bill['period']}` (exit {bill['exit']}, "
            f"{bill['wall_s']:.1f} s): the GET phase started {bill['get_started_after_s']:.1f} s "
            f"into it; {bill['get_share_during_bill']:.0%} of the phase ran while it wrote")
    lines += [
        f"- Errors: {get['errors']} of {get['requests']:,}",
        f"- Latency: p50 {get['p50_ms']:.0f} ms, p95 {get['p95_ms']:.0f} ms, "
        f"p99 {get['p99_ms']:.0f} ms, max {get['max_ms']:.0f} ms",
        f"- POST /v1/events: {args.post_clients} clients, batches of 1,000 events for "
        f"{post['wall_s']:.1f} s: {post['events']:,} events in {post['batches']} batches, "
        f"{post['events_per_s']:,.0f} events/s sustained, "
        f"{post['bytes_written'] / (1 << 20):.1f} MiB written ({post['mib_per_s']:.1f} MiB/s, "
        f"each batch fsynced), batch p50 {post['p50_ms']:.0f} ms, p95 {post['p95_ms']:.0f} ms, "
        f"{post['errors']} errors",
    ]
    with args.results.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
