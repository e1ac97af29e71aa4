"""What stands between a client and a service's routes: body size, credentials before the body, failures.

One pure ASGI middleware (`RequestGuard`) inside every service's FastAPI app:

- A body larger than `max_body_bytes` (the HTTP_MAX_BODY_BYTES setting, 1 MiB unless set) is refused with
  413: at once when its Content-Length says so, without reading it, and while it streams otherwise.
- Credentials are checked before the body is read: when a route first asks for its body, the route's
  `PreBodyCheck` dependencies (API keys, webhook tokens and signatures) run first, and a caller without
  valid credentials gets 401/403 without the body being read, parsed or validated. Starlette/FastAPI
  read and validate the body before any dependency runs; this puts the credentials first.
- An unexpected failure (a database or cache that does not answer) is a 503 with the API's error body,
  answered here and not re-raised. Starlette's ServerErrorMiddleware, where FastAPI puts handlers for
  `Exception`, sends the handler's answer and then re-raises; uvicorn then closes the connection under the
  client, so the next request on that keep-alive connection was reset (ECONNRESET).

Starlette has a body limit of its own (`max_body_size`), but it answers a declared oversize length in plain
text whatever the route would have said, outside the API's error body; this one answers in it.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oms_runtime.http_errors import error_response
from oms_runtime.outages import is_outage, reason

log = structlog.get_logger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class PreBodyCheck:
    """A FastAPI dependency whose `before_body` also runs before the route's body is read.

    `before_body` sees the request's headers, path and query only, and raises an HTTP error (AuthError)
    to refuse the caller. `answers` are the statuses it may answer, for the OpenAPI document.
    """

    answers: frozenset[int] = frozenset({status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN})

    async def before_body(self, request: Request) -> None:
        raise NotImplementedError


def pre_body_checks(dependant: Dependant) -> list[PreBodyCheck]:
    """Every `PreBodyCheck` among a route's dependencies, outermost first."""

    def walk(node: Dependant) -> Iterator[PreBodyCheck]:
        for sub in node.dependencies:
            if isinstance(sub.call, PreBodyCheck):
                yield sub.call
            yield from walk(sub)

    return list(dict.fromkeys(walk(dependant)))


class BodyTooLargeError(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        # The rest of the body is not read: the connection cannot carry another request after it.
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"The request body is larger than {limit} bytes.",
            headers={"Connection": "close"},
        )


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RequestGuard:
    """Pure ASGI middleware: body limit, credentials before the body, and a 503 that keeps the connection."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            refused = BodyTooLargeError(limit)
            response = error_response(refused.status_code, "body_too_large", str(refused.detail))
            response.headers.update(refused.headers or {})
            await response(scope, receive, send)
            return

        received = 0
        credentials_checked = False

        async def guarded_receive() -> Message:
            nonlocal received, credentials_checked
            if not credentials_checked:
                credentials_checked = True
                # Routing has run by now: the route about to read its body is in the scope.
                route = scope.get("route")
                if isinstance(route, APIRoute):
                    request = Request(scope)
                    for check in _checks_of(route):
                        await check.before_body(request)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, watched_send)
        except Exception as exc:
            if started:
                raise  # half an answer is out: closing the connection is all that is left
            # A dependency (database, cache) failing is the usual cause: the client may retry.
            response = error_response(
                status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "The service cannot answer now; retry later."
            )
            await response(scope, receive, send)
            # After the answer: a logger that cannot write must not cost the client its 503.
            with contextlib.suppress(Exception):
                if is_outage(exc):
                    # Expected while a dependency restarts: the client was told to retry.
                    log.warning(
                        "request answered 503: a dependency is unavailable", path=scope.get("path"), reason=reason(exc)
                    )
                else:
                    log.error("request failed", path=scope.get("path"), exc_info=exc)


# By id (routes are not hashable), with the route kept beside its checks so an id is never reused for another.
_CHECKS: dict[int, tuple[APIRoute, list[PreBodyCheck]]] = {}


def _checks_of(route: APIRoute) -> list[PreBodyCheck]:
    known = _CHECKS.get(id(route))
    if known is None or known[0] is not route:
        known = _CHECKS[id(route)] = (route, pre_body_checks(route.dependant))
    return known[1]


def route_answers(route: Any) -> set[int]:
    """The error statuses a route's credential checks may answer (for its OpenAPI operation)."""
    answers: set[int] = set()
    if isinstance(route, APIRoute):
        for check in _checks_of(route):
            answers |= check.answers
    return answers
