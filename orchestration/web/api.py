"""The HTTP API under ``/v1`` (JSON; described by ``openapi.py``, served at ``/v1/openapi.json``
and ``/v1/docs``). It authenticates itself (the front door, gate.py, lets ``/v1/`` through):

- ``POST /v1/events`` with an ingest key (``mli_``, api_keys.py): a batch ``{"events": [...]}``
  of 1..1,000 events of docs/contract.md section 2 is written, whole and durably, as one JSON
  Lines file ``landing/api/YYYY/MM/DD/<sha256>.jsonl`` (a dot-named temporary file in the same
  folder, fsynced, renamed, the folder fsynced) before the 202 answer. It lands by the normal
  path (`ingest` or the landing sensor), every contract rule applied there: only the batch's
  structure is checked here. The name is the SHA-256 of the file's content, so a retried
  identical batch finds its file and writes nothing more; any other copy of an event lands as a
  duplicate (home-wide dedup by ``event_id``, never billed twice). Nothing is written on a 4xx.
- ``GET /v1/customers/{id}/usage`` and ``/invoices`` with an operator key (``mlk_``, any
  customer) or that customer's portal token (customer_tokens.py: its own id only; any other id
  is 404, the same answer as an unknown id). Read from the readers' snapshot (source.py), a
  short cursor per request, so they answer while `ingest` or `bill` writes.

Errors are ``{"error": {"code": ..., "message": ...}}``; every 401 has the same body whatever
the reason (no key, an unknown or revoked one, a portal token where only keys count)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from orchestration.lib import clock
from orchestration.lib.readers import format_money, format_quantity, quantity_or_none
from orchestration.lib.settings import Settings
from orchestration.web import api_keys, api_queries, auth, customer_tokens, openapi, source

#: events per batch, and the largest body read (a hard cap while streaming: 413 beyond)
MAX_EVENTS = 1000
MAX_BODY_BYTES = 1 << 20
#: the longest usage range one request may ask for, in days
MAX_RANGE_DAYS = 366
#: the longest customer id looked up (longer ones are not anyone's: 404)
MAX_ID_CHARS = 256
API_DIR = "api"  # under landing/: the only folder the API writes
#: every route takes every method and answers a wrong one with a JSON 405
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

log = logging.getLogger("meterline.api")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNAUTHORIZED = ("unauthorized", "Send a valid API key (or, for a customer's own data, its "
                 "portal token) as `Authorization: Bearer <key>`.")
_NOT_FOUND = ("not_found", "No such customer, or not one this key may see.")
_USAGE_PARAMS = ("from", "to", "granularity")


def error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def unauthorized() -> JSONResponse:
    return error(401, *_UNAUTHORIZED, headers={"www-authenticate": 'Bearer realm="meterline api"'})


def not_found() -> JSONResponse:
    return error(404, *_NOT_FOUND)


class BadBatch(Exception):
    """A batch refused with 400 (or ``status``): the message names the problem."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request"):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


# --------------------------------------------------------------------------- the batch
class _Object(list):
    """A JSON object as its (key, value) pairs in order, repeated keys kept: an event is
    written as it was sent (a repeated field is the landing path's `malformed_row`)."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_batch(body: bytes) -> list[_Object]:
    """The batch's events, numbers as exact ``Decimal`` / ``int`` (never a float); BadBatch
    naming the problem when it is not ``{"events": [1..MAX_EVENTS objects]}``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBatch(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_float=Decimal, parse_constant=_no_constant,
                         object_pairs_hook=_Object)
    except json.JSONDecodeError as exc:
        raise BadBatch(f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
                       ) from None
    except (ValueError, RecursionError) as exc:
        raise BadBatch(f"malformed JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, _Object):
        raise BadBatch('the body must be a JSON object {"events": [...]}')
    names = [k for k, _ in doc]
    unknown = sorted(set(names) - {"events"})
    if unknown:
        raise BadBatch(f"unknown field {unknown[0][:100]!r}: the body holds only \"events\"")
    if names.count("events") != 1:
        raise BadBatch('"events" is missing' if not names else '"events" is given twice')
    events = doc[0][1]
    if not isinstance(events, list) or isinstance(events, _Object):
        raise BadBatch('"events" must be a list of event objects')
    if not events:
        raise BadBatch('"events" is empty: send 1 to 1000 events')
    if len(events) > MAX_EVENTS:
        raise BadBatch(f'"events" holds {len(events)} events: at most {MAX_EVENTS} per batch')
    for i, event in enumerate(events):
        if not isinstance(event, _Object):
            raise BadBatch(f"events[{i}] is not an object")
    return events


def _dump(value) -> str:
    if isinstance(value, _Object):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if value is True or value is False or value is None:
        return json.dumps(value)
    if isinstance(value, int | Decimal):
        return str(value)  # the number exactly as parsed: 1.005 stays 1.005
    return json.dumps(value)  # a string, escaped to ASCII: one line, any code point


def batch_content(events: list[_Object]) -> bytes:
    """The JSON Lines file of a batch: one event per line, as sent."""
    try:
        return "".join(_dump(e) + "\n" for e in events).encode("ascii")
    except RecursionError:
        raise BadBatch("an event nests too deeply") from None


def _prepare(body: bytes) -> tuple[int, bytes]:
    events = parse_batch(body)
    return len(events), batch_content(events)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_batch(cfg: Settings, content: bytes) -> tuple[str, str, bool]:
    """Write the batch file durably: (batch id, path relative to landing/, newly written).
    A file of the same content already under landing/api/ (a retry) is not written again."""
    batch_id = hashlib.sha256(content).hexdigest()
    name = f"{batch_id}.jsonl"
    root = cfg.landing_dir / API_DIR
    if root.is_symlink():
        raise OSError(f"{root} is a symlink: the API writes only into a real folder")
    folder = root / clock.now().strftime("%Y/%m/%d")
    existing = folder / name
    if not existing.is_file():
        existing = next(root.glob(f"*/*/*/{name}"), None) if root.is_dir() else None
    if existing is not None and existing.is_file() and existing.stat().st_size == len(content):
        return batch_id, existing.relative_to(cfg.landing_dir).as_posix(), False
    created = [p for p in (folder, folder.parent, folder.parent.parent, root)
               if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    # a dot-named .tmp file: no ingest or sensor reads it (files.py ACCEPTED_SUFFIXES)
    tmp = folder / f".{batch_id}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(folder)
    for made in created:  # a new day's folder: its entry in the parent must be durable too
        _fsync_dir(made.parent)
    return batch_id, (folder / name).relative_to(cfg.landing_dir).as_posix(), True


# --------------------------------------------------------------------------- the readers
def _parse_date(name: str, text: str) -> date:
    if len(text) != 10 or not _DATE.fullmatch(text):
        raise BadBatch(f"{name} must be a date YYYY-MM-DD (UTC)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadBatch(f"{name} is not a calendar date: {text}") from None


def usage_range(request: Request) -> tuple[date, date]:
    """``from`` (inclusive) and ``to`` (exclusive) of a usage request; BadBatch naming the bad
    parameter. Default: this UTC month to date, today included."""
    params = request.query_params
    for key in params:
        if key not in _USAGE_PARAMS:
            raise BadBatch(f"unknown parameter {key[:50]!r}: use from, to, granularity")
        if len(params.getlist(key)) > 1:
            raise BadBatch(f"{key} is given more than once")
    granularity = params.get("granularity", "day")
    if granularity != "day":
        raise BadBatch("granularity must be day (the only one for now)")
    today = clock.today()
    start = _parse_date("from", params["from"]) if "from" in params else today.replace(day=1)
    end = _parse_date("to", params["to"]) if "to" in params else today + timedelta(days=1)
    if start >= end:
        raise BadBatch("from must be before to (to is exclusive)")
    if (end - start).days > MAX_RANGE_DAYS:
        raise BadBatch(f"from..to spans {(end - start).days} days: at most {MAX_RANGE_DAYS}")
    return start, end


def _usage_row(r: dict) -> dict:
    return {"date": r["usage_date"].isoformat(), "meter_id": r["meter_id"],
            "product_item_id": r["product_item_id"], "aggregation": r["aggregation"],
            "is_additive": r["is_additive"], "event_count": r["event_count"],
            "quantity": format_quantity(r["quantity"])}


def _text(value) -> str | None:
    return None if value is None else value.isoformat()


def _invoices(found: list[dict]) -> list[dict]:
    """The invoices of ``api_queries.invoice_lines``'s rows, each with its lines."""
    out: dict[str, dict] = {}
    for r in found:
        unit = r["minor_unit"]
        invoice = out.get(r["invoice_id"])
        if invoice is None:
            invoice = out[r["invoice_id"]] = {
                "invoice_id": r["invoice_id"], "invoice_number": r["invoice_number"],
                "status": r["status"], "billing_period_start": _text(r["billing_period_start"]),
                "billing_period_end": _text(r["billing_period_end"]), "currency": r["currency"],
                "subtotal": format_money(r["subtotal"], unit),
                "total": format_money(r["total"], unit), "line_count": r["line_count"],
                "issued_at": _text(r["issued_at"]),
                "usage_accrued_to": _text(r["usage_accrued_to"]), "lines": []}
        if r["line_number"] is not None:
            invoice["lines"].append({
                "line_number": r["line_number"], "line_type": r["line_type"],
                "product_item_id": r["product_item_id"], "meter_id": r["meter_id"],
                "description": r["description"],
                "usage_period_start": _text(r["usage_period_start"]),
                "usage_period_end": _text(r["usage_period_end"]),
                "quantity": quantity_or_none(r["quantity"]),
                "unit_price": quantity_or_none(r["unit_price"]),
                "tier": r["tier"], "amount": format_money(r["amount"], unit)})
    return list(out.values())


# --------------------------------------------------------------------------- the routes
def routes(cfg: Settings) -> list[Route]:
    """The API's routes, to add to the app's (app.py)."""
    document = openapi.document()
    docs_page = openapi.render_html(document)

    def secret_of(request: Request) -> str | None:
        return auth.bearer(request.headers.get("authorization"))  # never a cookie

    def methods(allowed: str, endpoint):
        async def dispatch(request: Request) -> Response:
            if request.method != allowed and not (allowed == "GET"
                                                  and request.method == "HEAD"):
                return error(405, "method_not_allowed", f"use {allowed}",
                             headers={"allow": allowed})
            return await endpoint(request)
        return dispatch

    async def post_events(request: Request) -> Response:
        key = api_keys.key_for_secret(cfg, secret_of(request))
        if key is None:
            return unauthorized()
        if key.scope != "ingest":
            return error(403, "forbidden", "This key may only read: posting events needs an "
                         "ingest key (`meterline api-key issue --scope ingest`).")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return error(415, "unsupported_media_type", "Send Content-Type: application/json.")
        too_large = error(413, "too_large", f"The body is larger than {MAX_BODY_BYTES} bytes: "
                          f"send at most {MAX_EVENTS} events per batch, in smaller batches.")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return too_large if declared.isdigit() else error(400, "bad_request",
                                                              "Content-Length is not a number")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return too_large
        try:  # parsing 1,000 events takes milliseconds: off the event loop, like the write
            count, content = await run_in_threadpool(_prepare, bytes(body))
        except BadBatch as exc:
            return error(exc.status, exc.code, exc.message)
        try:
            batch_id, name, written = await run_in_threadpool(write_batch, cfg, content)
        except OSError as exc:
            log.error("POST /v1/events: the batch was not written: %s", exc)
            return error(503, "not_written", "The batch was not written "
                         f"({exc.strerror or 'the landing folder is not usable'}): nothing of "
                         "it is kept; send it again.")
        return JSONResponse({"accepted": count, "batch_id": batch_id, "file": name,
                             "already_written": not written}, status_code=202)

    def reader(request: Request) -> tuple[str | None, Response | None]:
        """(customer id, None) when the caller may read that customer; else (None, answer)."""
        secret = secret_of(request)
        customer_id = request.path_params["customer_id"]
        key = api_keys.key_for_secret(cfg, secret)
        if key is not None:
            if key.scope != "operator":
                return None, error(403, "forbidden", "This key may only post events: reading "
                                   "needs an operator key (`meterline api-key issue --scope "
                                   "operator`) or the customer's portal token.")
        elif secret is None or len(secret) > auth.MAX_SECRET_CHARS:
            return None, unauthorized()
        else:
            own = customer_tokens.customer_for_secret(cfg, secret)
            if own is None:
                return None, unauthorized()
            if own != customer_id:
                return None, not_found()
        if len(customer_id) > MAX_ID_CHARS:
            return None, not_found()
        return customer_id, None

    def read(build):
        """Run ``build(con, customer_id, request)`` on the snapshot for an allowed caller."""
        async def endpoint(request: Request) -> Response:
            customer_id, refused = reader(request)
            if refused is not None:
                return refused
            return await run_in_threadpool(answer, request, customer_id)

        def answer(request: Request, customer_id: str) -> Response:
            try:
                # as the pages read (source.py): a cursor on the open database of the
                # snapshot file at the path when the request began
                with source.reading(cfg) as (con, freshness):
                    body = build(con, customer_id, request)
                    if body is None:  # no such customer
                        return not_found()
                    return JSONResponse({"customer_id": customer_id,
                                         "data_as_of": freshness.to_dict()["as_of"], **body})
            except BadBatch as exc:
                return error(exc.status, exc.code, exc.message)
            except source.NoData as exc:
                return error(503, "no_data", f"{exc.message} {exc.hint}")
            except duckdb.CatalogException:
                return error(503, "no_data", "The marts are not built yet: bill a month with "
                             "`meterline bill --period YYYY-MM`.")
        return endpoint

    def usage(con, customer_id: str, request: Request) -> dict | None:
        start, end = usage_range(request)
        found = api_queries.usage_daily(con, customer_id, start, end)
        if found is None:
            return None
        return {"from": start.isoformat(), "to": end.isoformat(), "granularity": "day",
                "usage": [_usage_row(r) for r in found]}

    def invoices(con, customer_id: str, request: Request) -> dict | None:
        if request.query_params:
            raise BadBatch(f"unknown parameter {next(iter(request.query_params))[:50]!r}: "
                           "this endpoint takes none")
        found = api_queries.invoice_lines(con, customer_id)
        return None if found is None else {"invoices": _invoices(found)}

    async def spec(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page)

    async def unknown(request: Request) -> Response:
        return error(404, "not_found", "No such endpoint: see /v1/docs.")

    return [
        Route("/v1/events", methods("POST", post_events), methods=ALL_METHODS),
        Route("/v1/customers/{customer_id}/usage", methods("GET", read(usage)),
              methods=ALL_METHODS),
        Route("/v1/customers/{customer_id}/invoices", methods("GET", read(invoices)),
              methods=ALL_METHODS),
        Route("/v1/openapi.json", methods("GET", spec), methods=ALL_METHODS),
        Route("/v1/docs", methods("GET", docs), methods=ALL_METHODS),
        Route("/v1/{rest:path}", unknown, methods=ALL_METHODS),
    ]
