"""What every page shares: the signed-in session, rendering with the reader's formats, messages for failures.

A request without a valid session gets the sign-in page (a redirect, or `HX-Redirect` for htmx), never
data. A service that refuses the session's key (401) ends the session the same way.
"""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from oms_console.formatting import Formatter
from oms_console.services import ServiceError, Services
from oms_console.sessions import COOKIE_NAME, Session, SessionStore

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

ORDER_STATUSES = (
    "placed",
    "awaiting_payment",
    "on_hold",
    "backordered",
    "confirmed",
    "partially_shipped",
    "shipped",
    "releasing_stock",
    "rejected",
    "cancelling",
    "cancelled",
    "needs_attention",
)
CHANNELS = ("web", "marketplace", "phone", "store")
STATUS_TONES = {
    "shipped": "good",
    "confirmed": "good",
    "partially_shipped": "good",
    "delivered": "good",
    "completed": "good",
    "refunded": "good",
    "redriven": "good",
    "captured": "good",
    "needs_attention": "bad",
    "rejected": "bad",
    "failed": "bad",
    "pending": "warn",
    "on_hold": "warn",
    "backordered": "warn",
    "cancelling": "warn",
    "releasing_stock": "warn",
    "refund_failed": "bad",
    "cancelled": "muted",
    "discarded": "muted",
    "skipped": "muted",
}


def tone(status: object) -> str:
    """The colour class of a status (shown with its words, never colour alone)."""
    return STATUS_TONES.get(str(status), "neutral")


templates.env.globals["tone"] = tone


class SignInRequiredError(Exception):
    """No valid session (or the services no longer take its key): the sign-in page instead."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "")
        self.reason = reason


@dataclass(frozen=True)
class Ui:
    sessions: SessionStore
    services: Services
    secure_cookie: bool

    def session(self, request: Request) -> Session:
        session = self.sessions.find(request.cookies.get(COOKIE_NAME))
        if session is None:
            raise SignInRequiredError()
        return session

    def render(
        self, request: Request, session: Session | None, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        fmt = Formatter(session.locale, session.tz) if session else Formatter("en_GB", "UTC")
        return templates.TemplateResponse(
            request,
            template,
            {
                "session": session,
                "fmt": fmt,
                "query": lambda **params: urlencode({k: v for k, v in params.items() if v not in (None, "")}),
                **context,
            },
            status_code=status_code,
        )

    async def attempt(self, session: Session, call: Awaitable[T]) -> tuple[T | None, ServiceError | None]:
        """A call's answer, or the failure to show in its place; a refused key ends the session."""
        try:
            return await call, None
        except ServiceError as exc:
            if exc.status == 401:
                self.sessions.end(session)
                raise SignInRequiredError("The services no longer accept this key. Sign in again.") from None
            return None, exc

    async def gather(self, session: Session, *calls: Awaitable[Any]) -> list[tuple[Any, ServiceError | None]]:
        return list(await asyncio.gather(*(self.attempt(session, c) for c in calls)))


def sign_in_redirect(request: Request, reason: str | None = None) -> Response:
    target = "/signin" + (f"?{urlencode({'reason': reason})}" if reason else "")
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
