"""The customer portal (`meterline serve`, /portal/): a customer signed in with its own token
sees its month to date, the estimate of its open invoice, its invoices with their lines and
documents, and the audit trail of a line. Routes thin; SQL in portal_queries.py.

The customer comes from the session only: the gate (gate.py) checks the cookie on every request
through customer_tokens and puts the customer's id in ``request.state``; no page reads a
customer id from the URL, and every id a URL carries (an invoice, a line, a page of events) is
looked up within that customer's rows: anything else answers 404, the same as an id that does
not exist.

Sign-in: the form posts the token (``/portal/login``); the link `meterline portal token issue`
prints carries it in the URL fragment (``/portal/login#token=mlp_...``), which browsers never
send to a server, and static/portal-login.js posts it through the same form (no inline script:
the CSP forbids them), so the token never sits in a request line, a log or the history. The
session cookie holds the token itself (HttpOnly, SameSite=Strict, Path=/portal): the sign-in's
POST is same-site, so Strict costs nothing. Failed sign-ins are limited per client address
(SignInLimiter): 429 with Retry-After."""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import deque
from datetime import date
from urllib.parse import parse_qs

import duckdb
import jinja2
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from orchestration.lib import clock, periods
from orchestration.lib.readers import format_quantity
from orchestration.lib.settings import Settings
from orchestration.web import charts, customer_tokens, gate, source
from orchestration.web import portal_queries as q

MAX_LOGIN_BODY = 4096
#: the longest invoice id worth looking up (a real one is INV-YYYYMM-<customer id>)
MAX_ID_CHARS = 200
_LINE_NUMBER = re.compile(r"[0-9]{1,6}")
_PAGE = re.compile(r"[0-9]{1,4}")
DOCUMENT_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8"}


class SignInLimiter:
    """Failed sign-ins per client address in a sliding window (``per_client`` in
    ``window_s``), and over every address (``overall``, against many addresses guessing at
    once). Past either limit every sign-in is refused, right tokens too, until the window
    slides: 429 with the seconds to wait. In memory: a restart forgets it."""

    def __init__(self, per_client: int = 10, overall: int = 100, window_s: float = 60.0):
        self.per_client, self.overall, self.window_s = per_client, overall, window_s
        self._by_client: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            self._trim(self._all, now)
            mine = self._by_client.get(client)
            if mine is not None:
                self._trim(mine, now)
                if not mine:
                    del self._by_client[client]
            waits = []
            if mine and len(mine) >= self.per_client:
                waits.append(mine[0] + self.window_s - now)
            if len(self._all) >= self.overall:
                waits.append(self._all[0] + self.window_s - now)
            return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._by_client.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._by_client) > 10_000:  # many addresses: forget the quietest
                self._by_client = {k: v for k, v in self._by_client.items() if v
                                   and v[-1] > now - self.window_s}


def item_chart(usage: dict, days: list[dict]) -> dict:
    """One line: the item's figure per UTC day this month (exact decimal strings)."""
    title = (f"{charts.item_label(usage['product_item_id'], usage['item_name'])}: "
             f"{charts.daily_figure(usage['aggregation'])}")
    return {"data": [{"type": "scatter", "mode": "lines+markers",
                      "name": charts.item_label(usage["product_item_id"], usage["item_name"]),
                      "x": [d["usage_date"].isoformat() for d in days],
                      "y": [format_quantity(d["quantity"]) for d in days],
                      "hovertemplate": "%{x}: %{y}<extra></extra>"}],
            "layout": {"title": {"text": title}, "height": 320,
                       "margin": {"l": 70, "r": 20, "t": 50, "b": 50},
                       "xaxis": {"type": "date", "title": {"text": "UTC day"}},
                       "yaxis": {"title": {"text": usage["unit"] or ""}, "rangemode": "tozero"},
                       "showlegend": False},
            "config": charts.CONFIG}


def routes(cfg: Settings, env: jinja2.Environment,
           limiter: SignInLimiter | None = None) -> tuple[list[Route], object]:
    """The portal's routes and the gate's 401 answer for them."""
    limiter = limiter or SignInLimiter()

    def html(request: Request, template: str, status: int = 200, **context) -> Response:
        context.setdefault("freshness", None)
        context.setdefault("signed_in", False)
        body = env.get_template(template).render(path=request.url.path, **context)
        return HTMLResponse(body, status_code=status)

    def sign_in_form(request: Request, status: int, message: str | None = None,
                     headers: dict | None = None) -> Response:
        response = html(request, "portal_login.html", status=status, message=message)
        response.headers.update(headers or {})
        if request.cookies.get(gate.PORTAL_COOKIE):
            _clear(response)
        return response

    def unauthorized(request: Request) -> Response:
        """The gate's answer to a portal page without a valid session: the same body for a
        missing, wrong, expired or revoked token, and nothing about any customer."""
        return sign_in_form(request, 401)

    def not_found(request: Request) -> Response:
        return html(request, "portal_notfound.html", status=404, signed_in=True)

    def page(template: str):
        """A portal page: ``build(request, con, customer_id)`` returns its context or a
        Response (404, 400); the connection lives for this request only."""
        def wrap(build):
            @functools.wraps(build)
            def endpoint(request: Request) -> Response:
                customer_id = request.state.customer_id  # the gate's, from the session
                try:
                    with source.reading(cfg) as (con, freshness):
                        try:
                            context = build(request, con, customer_id)
                        except duckdb.CatalogException:  # a table not built yet
                            return html(request, "portal_nodata.html", status=503,
                                        signed_in=True, freshness=freshness)
                except source.NoData:
                    return html(request, "portal_nodata.html", status=503, signed_in=True)
                if isinstance(context, Response):
                    return context
                return html(request, template, freshness=freshness, signed_in=True, **context)
            return endpoint
        return wrap

    def own_invoice(request: Request, con, customer_id: str) -> dict | None:
        invoice_id = request.path_params["invoice_id"]
        if len(invoice_id) > MAX_ID_CHARS:
            return None
        return q.invoice(con, customer_id, invoice_id)

    # ----------------------------------------------------------------------- pages
    @page("portal_overview.html")
    def overview(request: Request, con, customer_id: str):
        """The open months, newest first (this month, and last month while its invoice is
        not published, lib/periods.py open_months): usage per item with a daily chart, and
        the draft invoice's estimate line by line."""
        today = clock.today()
        published = {i["billing_period_start"] for i in q.invoices(con, customer_id)
                     if i["status"] == "published"}
        months = []
        for month in reversed(periods.open_months(today, published)):
            usage = q.month_usage(con, customer_id, month)
            daily = q.month_daily(con, customer_id, month)
            estimate = q.open_estimate(con, customer_id, month)
            if month != today.replace(day=1) and not usage and estimate is None:
                continue
            figures = []
            for n, item in enumerate(usage):
                days = [d for d in daily if d["product_item_id"] == item["product_item_id"]
                        and d["meter_id"] == item["meter_id"]]
                figures.append((f"usage-figure-{month:%Y-%m}-{n}", item_chart(item, days)))
            months.append({
                "month": month, "is_current": month == today.replace(day=1), "usage": usage,
                "figures": figures, "estimate": estimate,
                "lines": q.lines(con, customer_id, estimate["invoice_id"]) if estimate else []})
        return {"customer": q.customer(con, customer_id) or {"customer_id": customer_id},
                "months": months, "has_figures": any(m["figures"] for m in months)}

    @page("portal_invoices.html")
    def invoices(request: Request, con, customer_id: str):
        return {"customer": q.customer(con, customer_id) or {"customer_id": customer_id},
                "invoices": q.invoices(con, customer_id)}

    @page("portal_invoice.html")
    def invoice(request: Request, con, customer_id: str):
        found = own_invoice(request, con, customer_id)
        if found is None:
            return not_found(request)
        return {"invoice": found, "lines": q.lines(con, customer_id, found["invoice_id"]),
                "documents": _documents(cfg, found)}

    @page("portal_line.html")
    def line(request: Request, con, customer_id: str):
        found = own_invoice(request, con, customer_id)
        number = request.path_params["line_number"]
        if found is None or not _LINE_NUMBER.fullmatch(number):
            return not_found(request)
        row = q.line(con, customer_id, found["invoice_id"], int(number))
        if row is None:
            return not_found(request)
        context = {"invoice": found, "line": row, "meter": None, "item_quantity": None,
                   "summary": None, "rate": None, "events": [], "page": 1, "pages": 0,
                   "per_page": q.EVENTS_PER_PAGE}
        if row["product_item_id"] is None:  # a commitment top-up or true-up
            return context
        summary = q.line_events_summary(con, customer_id, found["invoice_id"], row)
        pages = -(-summary["shown"] // q.EVENTS_PER_PAGE)
        asked = request.query_params.get("page", "1")
        if not _PAGE.fullmatch(asked):
            return html(request, "portal_notfound.html", status=400, signed_in=True,
                        message="That is not a page number.")
        page_number = int(asked)
        if page_number < 1 or (page_number > max(pages, 1)):
            return not_found(request)
        context.update(
            meter=q.line_meter(con, row["product_item_id"], row["meter_id"]),
            item_quantity=q.item_quantity(con, customer_id, found["invoice_id"], row),
            summary=summary, rate=q.rate(con, row["rate_id"]) if row["rate_id"] else None,
            events=q.line_events(con, customer_id, found["invoice_id"], row, page_number),
            page=page_number, pages=pages)
        return context

    def document(ext: str):
        def endpoint(request: Request) -> Response:
            customer_id = request.state.customer_id
            try:
                with source.reading(cfg) as (con, _):
                    found = own_invoice(request, con, customer_id)
            except (source.NoData, duckdb.CatalogException):
                found = None
            path = _documents(cfg, found).get(ext) if found else None
            if path is None:
                return not_found(request)
            return FileResponse(path, media_type=DOCUMENT_TYPES[ext],
                                filename=path.name, content_disposition_type="attachment")
        return endpoint

    # ----------------------------------------------------------------------- access
    async def login(request: Request) -> Response:
        if request.method == "GET":
            if customer_tokens.customer_for_secret(cfg, gate.portal_secret(request)):
                return RedirectResponse("/portal/", status_code=303)
            return sign_in_form(request, 200)
        if _from_elsewhere(request):  # a sign-in posted from another site's page: login CSRF
            return sign_in_form(request, 403, "Sign in from this site's own page.")
        client = request.client.host if request.client else "unknown"
        wait = limiter.retry_after(client)
        if wait is not None:
            return sign_in_form(request, 429, f"Too many sign-in attempts: try again in "
                                f"{wait} s.", headers={"retry-after": str(wait)})
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                limiter.failed(client)
                return sign_in_form(request, 401, "That form was too large.")
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        secret = (fields.get("token") or [""])[0].strip()
        if customer_tokens.customer_for_secret(cfg, secret) is None:
            limiter.failed(client)
            return sign_in_form(request, 401, "That token does not open the portal."
                                if secret else "Paste your access token.")
        response = RedirectResponse("/portal/", status_code=303)
        response.set_cookie(gate.PORTAL_COOKIE, secret, path="/portal", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    def logout(request: Request) -> Response:
        response = RedirectResponse("/portal/login", status_code=303)
        _clear(response)
        return response

    table = [
        Route("/portal", lambda r: RedirectResponse("/portal/", status_code=307)),
        Route("/portal/", overview), Route("/portal/invoices", invoices),
        Route("/portal/invoices/{invoice_id}", invoice),
        Route("/portal/invoices/{invoice_id}/document.json", document("json")),
        Route("/portal/invoices/{invoice_id}/document.html", document("html")),
        Route("/portal/invoices/{invoice_id}/lines/{line_number}", line),
        Route("/portal/login", login, methods=["GET", "POST"]),
        Route("/portal/logout", logout),
        Route("/portal/{rest:path}", lambda r: PlainTextResponse("not found", 404)),
    ]
    return table, unauthorized


def _from_elsewhere(request: Request) -> bool:
    """A browser says the request comes from another site: ``Sec-Fetch-Site`` other than
    same-origin, or an ``Origin`` that is not this server's. (Under the pages' Referrer-Policy
    no-referrer a browser sends ``Origin: null`` even for its own form, so null is not a
    verdict; Sec-Fetch-Site is.) A program sending neither is not a browser to protect."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return True
    origin = request.headers.get("origin")
    return bool(origin) and origin != "null" and \
        origin != f"{request.url.scheme}://{request.url.netloc}"


def _clear(response: Response) -> None:
    response.delete_cookie(gate.PORTAL_COOKIE, path="/portal", httponly=True, samesite="strict")


def _documents(cfg: Settings, invoice: dict | None) -> dict:
    """The published documents of one of the customer's invoices that exist on disk, by type:
    the file name is derived from the invoice row (never from the URL's text) and must resolve
    inside the home's invoices folder."""
    if not invoice or invoice["status"] != "published":
        return {}
    root = cfg.invoices_dir.resolve()
    start: date = invoice["billing_period_start"]
    found = {}
    for ext in DOCUMENT_TYPES:
        path = (root / f"{start:%Y-%m}" / f"{invoice['invoice_id']}.{ext}").resolve()
        if path.is_relative_to(root) and path.is_file():
            found[ext] = path
    return found
