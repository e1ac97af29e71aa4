"""The console's web app: sign-in, the pages (orders, stuck orders, dead letters, reports) and their assets.

Server-rendered HTML (Jinja2) with htmx for the operator actions, charts drawn by Chart.js in the
browser from data the page carries; every script and style is served from here (`static/`), and the
Content-Security-Policy allows nothing else, so no page loads anything from the internet.
"""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oms_console import routes_ops, routes_orders, routes_reports
from oms_console.formatting import locale_from_header
from oms_console.services import ServiceError, Services
from oms_console.sessions import COOKIE_NAME, SessionStore
from oms_console.settings import ConsoleSettings
from oms_console.web import HERE, SignInRequiredError, Ui, sign_in_redirect

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Headers on every answer: only our own assets, no framing, no referrer, pages never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class SameOriginPosts:
    """A POST from another site's page is refused before it reaches a form (the CSRF token checks the
    rest): the browser names the page's origin, and it must be the console's own. Sign-in too, so no
    other page can sign a browser in with a key of its choosing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope.get("headers", []))
            origin = headers.get(b"origin", b"").decode(errors="replace")
            host = headers.get(b"host", b"").decode(errors="replace")
            if origin and origin != "null" and urlsplit(origin).netloc != host:
                response = Response("Cross-site request refused.", status_code=403, media_type="text/plain")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The console; `transport` replaces the network in tests."""
    secret = settings.console_session_secret.get_secret_value() if settings.console_session_secret else None
    ui = Ui(
        SessionStore(
            secret or secrets.token_urlsafe(32),
            ttl_s=settings.console_session_ttl_s,
            idle_s=settings.console_idle_timeout_s,
        ),
        Services(settings.service_urls(), timeout_s=settings.console_request_timeout_s, transport=transport),
        settings.console_secure_cookie,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await ui.services.close()

    app = FastAPI(title="OMS ops console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ui = ui
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequiredError)
    async def sign_in_required(request: Request, exc: SignInRequiredError) -> Response:
        return sign_in_redirect(request, exc.reason)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        ui.session(request)
        return RedirectResponse("/orders", status_code=303)

    @app.get("/signin", include_in_schema=False)
    async def sign_in_page(request: Request, reason: str | None = None) -> Response:
        return ui.render(request, None, "signin.html", message=reason)

    @app.post("/signin", include_in_schema=False)
    async def sign_in(
        request: Request,
        api_key: Annotated[str, Form(max_length=500)] = "",
        operator: Annotated[str, Form(max_length=100)] = "",
        tz: Annotated[str, Form(max_length=64)] = "UTC",
    ) -> Response:
        api_key, operator = api_key.strip(), operator.strip()
        if not api_key or not operator:
            return ui.render(
                request, None, "signin.html", 401, message="Give your name and an API key.", operator=operator
            )
        try:
            # Only ops keys may see stuck orders: the one question that tells an ops key from the rest.
            await ui.services.get("order-service", "/orders/stuck", api_key, limit=1)
        except ServiceError as exc:
            message = {
                401: "That key is not valid.",
                403: "That key is not an ops key; the console needs one.",
            }.get(exc.status or 0, exc.message)
            return ui.render(request, None, "signin.html", 401, message=message, operator=operator)
        locale = locale_from_header(request.headers.get("accept-language"))
        _, cookie = ui.sessions.create(api_key, operator, locale, tz)
        response = RedirectResponse("/orders", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=int(settings.console_session_ttl_s),
            httponly=True,
            samesite="strict",
            secure=ui.secure_cookie,
            path="/",
        )
        return response

    @app.post("/signout", include_in_schema=False)
    async def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        session = ui.session(request)
        if session.csrf_ok(csrf_token):
            ui.sessions.end(session)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(routes_orders.router(ui))
    app.include_router(routes_ops.router(ui))
    app.include_router(routes_reports.router(ui))
    app.add_middleware(SameOriginPosts)
    app.add_middleware(SecurityHeaders)
    return app
