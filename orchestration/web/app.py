"""The explorer app: ``create_app(cfg)`` builds it; each route is a few lines that read the
request's parameters, ask ``queries`` on a connection from ``source`` and render a template.

Routes (everything but /, /healthz and /static/* needs the operator's secret, gate.py):
``/operator/`` overview, ``/operator/usage``, ``/operator/revenue``, ``/operator/quarantine``,
``/operator/unbilled``, ``/operator/docs/`` (the dbt docs site `meterline docs` writes),
``/operator/login`` and ``/operator/logout``; the customer portal under ``/portal/``
(portal.py, opened by a customer's token only)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

import duckdb
import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from orchestration.lib import clock, periods
from orchestration.lib.readers import format_money, format_quantity
from orchestration.lib.settings import Settings
from orchestration.web import api, auth, charts, gate, portal, queries, source

NAV = (("/operator/", "Overview"), ("/operator/usage", "Usage"),
       ("/operator/revenue", "Revenue"), ("/operator/quarantine", "Quarantine"),
       ("/operator/unbilled", "Unbilled usage"), ("/operator/docs/", "Docs"))
MAX_LOGIN_BODY = 4096
PLOTLY_JS = "plotly.min.js"


def docs_dir(cfg: Settings) -> Path:
    """Where `meterline docs` writes the dbt docs site."""
    return cfg.home / "docs"


# --------------------------------------------------------------------------- static files
class Static:
    """The app's own files, in memory: the CSS, the chart script and plotly.js (from the
    pinned plotly package, never a CDN), each under a URL carrying its content's hash, so they
    are cached for a year and a new version is a new URL."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        folder = resources.files("orchestration.web") / "static"
        for entry in folder.iterdir():
            if entry.name.endswith((".css", ".js")):
                self.files[entry.name] = (entry.read_bytes(), _media_type(entry.name))
        self._plotly_gz: bytes | None = None
        self._lock = threading.Lock()
        self.versions = {name: hashlib.sha256(body).hexdigest()[:12]
                         for name, (body, _) in self.files.items()}
        from plotly import __version__ as plotly_version

        self.versions[PLOTLY_JS] = plotly_version

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.versions[name]}"

    def _plotly(self) -> bytes:
        if PLOTLY_JS not in self.files:
            from plotly.offline import get_plotlyjs

            self.files[PLOTLY_JS] = (get_plotlyjs().encode("utf-8"), _media_type(PLOTLY_JS))
        return self.files[PLOTLY_JS][0]

    def _plotly_gzipped(self) -> bytes:
        with self._lock:
            if self._plotly_gz is None:
                self._plotly_gz = gzip.compress(self._plotly(), compresslevel=6, mtime=0)
            return self._plotly_gz

    def response(self, request: Request) -> Response:
        name = request.path_params["name"]
        cache = {"cache-control": "public, max-age=31536000, immutable",
                 "vary": "accept-encoding"}
        if name == PLOTLY_JS:
            with self._lock:
                self._plotly()
            if "gzip" in request.headers.get("accept-encoding", ""):
                return Response(self._plotly_gzipped(), media_type=_media_type(name),
                                headers={**cache, "content-encoding": "gzip"})
        if name not in self.files:
            return PlainTextResponse("not found", status_code=404)
        body, media_type = self.files[name]
        return Response(body, media_type=media_type, headers=cache)


def _media_type(name: str) -> str:
    return "text/css; charset=utf-8" if name.endswith(".css") else \
        "text/javascript; charset=utf-8"


# --------------------------------------------------------------------------- templates
def _templates(static: Static) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("orchestration.web", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        money=format_money, quantity=format_quantity,
        month=lambda d: d.strftime("%Y-%m") if d else "",
        day=lambda d: d.isoformat() if d else "",
        utc=lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(t, datetime) else "",
        item=charts.item_label, figure=charts.daily_figure)
    env.globals.update(nav=NAV, static=static.url, plotly_js=PLOTLY_JS)
    return env


def create_app(cfg: Settings) -> Starlette:
    static = Static()
    env = _templates(static)

    def html(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("freshness", None)
        body = env.get_template(template).render(path=request.url.path, **context)
        return HTMLResponse(body, status_code=status)

    def unauthorized(request: Request, message: str | None = None) -> Response:
        issued = auth.operator_token_hash(cfg) is not None
        if message is None and gate.presented_secret(request):
            message = "That is not the current operator token (was it rotated?)."
        response = html(request, "login.html", status=401, issued=issued, message=message,
                        home=str(cfg.home))
        response.headers["www-authenticate"] = 'Bearer realm="meterline operator"'
        if request.cookies.get(auth.COOKIE):
            response.delete_cookie(auth.COOKIE, path="/operator", httponly=True,
                                   samesite="strict")
        return response

    def page(template: str):
        """A data page: ``build(request, con)`` returns its context; the connection lives for
        this request only. No data yet, or marts not built yet: 503 saying what to run."""
        def wrap(build):
            @functools.wraps(build)
            def endpoint(request: Request) -> Response:
                try:
                    with source.reading(cfg) as (con, freshness):
                        try:
                            context = build(request, con)
                        except duckdb.CatalogException as exc:  # a table not built yet
                            return html(request, "nodata.html", status=503,
                                        freshness=freshness,
                                        message="The explorer tables are not built yet "
                                                f"({str(exc).splitlines()[0]}).",
                                        hint="Bill a month with "
                                             "`meterline bill --period YYYY-MM`.")
                except source.NoData as exc:
                    return html(request, "nodata.html", status=503, message=exc.message,
                                hint=exc.hint)
                return html(request, template, freshness=freshness, **context)
            return endpoint
        return wrap

    def months() -> tuple[date, date]:
        this_month = clock.today().replace(day=1)
        return this_month, periods.previous_period(this_month)

    # ----------------------------------------------------------------------- pages
    @page("overview.html")
    def overview(request: Request, con) -> dict:
        this_month, last_month = months()
        return {"this_month": this_month, "last_month": last_month,
                "totals": queries.month_totals(con, this_month, last_month),
                "top_revenue": _by_currency(queries.top_customers_by_revenue(con)),
                "top_growth": _by_currency(
                    queries.top_customers_by_growth(con, this_month, last_month)),
                "quarantined": queries.quarantine_count(con),
                "landing": queries.landing_status(con)}

    @page("usage.html")
    def usage(request: Request, con) -> dict:
        meters = queries.usage_meters(con)
        asked = request.query_params.get("meter") or None
        meter = next((m for m in meters if m["meter_id"] == asked), meters[0] if meters else None)
        customer = request.query_params.get("customer") or None
        item = request.query_params.get("item") or None
        context = {"landing": queries.landing_status(con),
                   "meters": meters, "meter": meter, "asked_meter": asked, "customer": customer,
                   "item": item, "unbilled": queries.UNBILLED, "customers": [], "items": [],
                   "item_names": {}, "rows": [], "chart": None}
        if meter is None:
            return context
        items = queries.usage_items(con, meter["meter_id"])
        names = {i["product_item_id"]: i["item_name"] for i in items}
        rows = queries.usage_daily(con, meter["meter_id"], customer, item)
        context.update(customers=queries.usage_customers(con, meter["meter_id"]), items=items,
                       item_names=names, rows=rows,
                       chart=charts.usage_chart(rows, names, meter=meter) if rows else None)
        return context

    @page("revenue.html")
    def revenue(request: Request, con) -> dict:
        by_item = queries.revenue_by_item(con)
        return {"by_item": by_item, "by_month": queries.revenue_by_month(con),
                "charts": charts.revenue_charts(by_item)}

    @page("quarantine.html")
    def quarantine(request: Request, con) -> dict:
        reason = request.query_params.get("reason") or None
        latest = queries.quarantine_latest(con, reason)
        return {"reasons": queries.quarantine_by_reason(con), "reason": reason,
                "latest": latest}

    @page("unbilled.html")
    def unbilled(request: Request, con) -> dict:
        available = queries.unbilled_months(con)
        asked = request.query_params.get("month") or None
        month = next((m for m in available if m.strftime("%Y-%m") == asked), None)
        return {"months": available, "month": month, "asked_month": asked,
                "rows": [] if asked and month is None else queries.unbilled_usage(con, month)}

    # ----------------------------------------------------------------------- access
    async def login(request: Request) -> Response:
        if request.method == "GET":  # the gate let it through: the secret is already held
            return RedirectResponse("/operator/", status_code=303)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                return unauthorized(request, "That form was too large.")
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        secret = (fields.get("token") or [""])[0].strip()
        if not auth.is_operator_secret(cfg, secret):
            return unauthorized(request, "That is not the current operator token."
                                if secret else "Paste the operator token.")
        response = RedirectResponse("/operator/", status_code=303)
        response.set_cookie(auth.COOKIE, secret, path="/operator", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    def logout(request: Request) -> Response:
        response = RedirectResponse("/operator/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/operator", httponly=True, samesite="strict")
        return response

    def docs(request: Request) -> Response:
        root = docs_dir(cfg).resolve()
        if not (root / "index.html").is_file():
            return html(request, "docs_missing.html", status=404, folder=str(root))
        target = (root / request.path_params.get("path", "")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(root) or not target.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(target)

    # ----------------------------------------------------------------------- public
    def home(request: Request) -> Response:
        return RedirectResponse("/operator/", status_code=303)

    def healthz(request: Request) -> Response:
        try:
            with source.reading(cfg) as (_, freshness):
                return JSONResponse({"status": "ok", "data": freshness.to_dict()})
        except source.NoData as exc:
            return JSONResponse({"status": "ok", "data": None, "note": exc.message})

    routes = [
        Route("/", home), Route("/healthz", healthz),
        Route("/favicon.ico", lambda r: Response(status_code=204)),
        Route("/static/{name}", static.response),
        Route("/operator/", overview), Route("/operator/usage", usage),
        Route("/operator/revenue", revenue), Route("/operator/quarantine", quarantine),
        Route("/operator/unbilled", unbilled),
        Route("/operator/login", login, methods=["GET", "POST"]),
        Route("/operator/logout", logout),
        Route("/operator/docs", lambda r: RedirectResponse("/operator/docs/", 307)),
        Route("/operator/docs/", docs), Route("/operator/docs/{path:path}", docs),
    ]
    portal_routes, portal_unauthorized = portal.routes(cfg, env)  # /portal/: portal.py
    routes += api.routes(cfg)  # /v1/: the HTTP API (api.py), authenticating itself
    return Starlette(routes=routes + portal_routes, middleware=[
        Middleware(gate.OperatorGate, cfg=cfg, unauthorized=unauthorized,
                   portal_unauthorized=portal_unauthorized)])


def _by_currency(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["currency"], []).append(row)
    return grouped
