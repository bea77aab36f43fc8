"""The app's front door (an ASGI middleware): closed unless proven open.

Every path answers 401 without the operator's secret but the few public ones (``/``, which only
redirects, ``/healthz``, ``/favicon.ico`` (empty), ``/static/*``, and the login form's POST,
which checks the secret itself): a page added later is closed until someone opens it on
purpose. ``/portal/*`` is the customers' room, opened by a customer's portal token (the session
cookie the sign-in sets, checked through customer_tokens on every request) and by nothing else:
the operator's token does not open it, a customer's token opens nothing outside it; its sign-in
(``/portal/login``, GET form and POST) and sign-out are public. ``/v1/*`` (the API) passes
untouched: its routes authenticate themselves. It also puts the security headers on every
response: no caching of operator or portal pages, no framing, no sniffing, and a
Content-Security-Policy that lets a page load nothing but the app's own files
(the charts draw from the plotly.js the app serves)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestration.lib.settings import Settings
from orchestration.web import auth, customer_tokens

STATIC_PREFIX = "/static/"
PUBLIC_PREFIXES = (STATIC_PREFIX, "/v1/")
PORTAL_PREFIX = "/portal/"
PORTAL_PUBLIC_PATHS = frozenset({"/portal/login", "/portal/logout"})
#: the portal's session cookie (HttpOnly, SameSite=Strict, Path=/portal): the token itself
PORTAL_COOKIE = "meterline_portal"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/favicon.ico"})
LOGIN_PATH = "/operator/login"
DOCS_PREFIX = "/operator/docs/"

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# dbt's docs site is one page of inline scripts and styles: allowed its own, and still nothing
# from outside this server
DOCS_CSP = ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def is_public(path: str, method: str) -> bool:
    return (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
            or (path == LOGIN_PATH and method == "POST"))


def is_portal(path: str) -> bool:
    return path == "/portal" or path.startswith(PORTAL_PREFIX)


def portal_secret(request: Request) -> str | None:
    """The portal token a request carries: the session cookie only."""
    return request.cookies.get(PORTAL_COOKIE)


def presented_secret(request: Request) -> str | None:
    """The secret a request carries: an ``Authorization: Bearer`` header, else the cookie."""
    return auth.bearer(request.headers.get("authorization")) or request.cookies.get(auth.COOKIE)


class OperatorGate:
    """401 (``unauthorized(request)``'s response) unless the path is public or the request
    carries the operator's current secret; the file is read on every request (a rotation takes
    effect at once)."""

    def __init__(self, app: ASGIApp, *, cfg: Settings,
                 unauthorized: Callable[[Request], Response],
                 portal_unauthorized: Callable[[Request], Response] | None = None):
        self.app, self.cfg, self.unauthorized = app, cfg, unauthorized
        self.portal_unauthorized = portal_unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = _security_headers(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in headers if k not in present]
            await send(message)

        if is_portal(path):
            if path not in PORTAL_PUBLIC_PATHS:
                request = Request(scope)
                customer = customer_tokens.customer_for_secret(self.cfg, portal_secret(request))
                if customer is None or self.portal_unauthorized is None:
                    response = (self.portal_unauthorized or self.unauthorized)(request)
                    await response(scope, receive, send_with_headers)
                    return
                # the one place a portal page learns its customer: never from the URL
                scope.setdefault("state", {})["customer_id"] = customer
            await self.app(scope, receive, send_with_headers)
            return
        if not is_public(path, scope["method"]):
            request = Request(scope)
            if not auth.is_operator_secret(self.cfg, presented_secret(request)):
                response = self.unauthorized(request)
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def _security_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"),
               (b"cross-origin-opener-policy", b"same-origin"),
               (b"content-security-policy",
                (DOCS_CSP if path.startswith(DOCS_PREFIX) else PAGE_CSP).encode())]
    if not path.startswith(STATIC_PREFIX):
        headers.append((b"cache-control", b"no-store"))
    return headers
