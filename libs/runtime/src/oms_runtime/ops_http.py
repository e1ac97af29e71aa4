"""The operational HTTP surface every service has: probes and metrics, in front of the service's own API.

The host always serves HTTP. Its outer app answers `/health/live`, `/health/ready` and `/metrics`
itself and hands every other path to the service's app (when it has one), so a service gets probes
and metrics without writing a line, and its OpenAPI document stays about its API.

That outer app is one pure ASGI layer (`OpsEdge`): the probes by path, the HTTP metrics and the request's
server span together. Every layer around a route costs CPU per request (a coroutine, a wrapped `send`,
the scope read again); these three were three layers, and FastAPI's own telemetry a fourth.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oms_runtime import metrics
from oms_runtime.tracing import ServerSpan

Check = Callable[[], Awaitable[Any]]
PROBE_PATHS = ("/health/live", "/health/ready", "/metrics")


@dataclass(frozen=True)
class DependencyCheck:
    name: str
    check: Check


class Readiness:
    """Checks every dependency concurrently, each with a short timeout; names the ones that failed."""

    def __init__(self, checks: Sequence[DependencyCheck], timeout_s: float = 2.0) -> None:
        self._checks = list(checks)
        self._timeout_s = timeout_s
        self.shutting_down = False
        self.starting: str | None = None
        """The start-up step the service is on (waiting for its dependency), None once it started."""

    async def problems(self) -> dict[str, str]:
        if self.shutting_down:
            # Kubernetes stops routing to a pod that is unready: say so as soon as SIGTERM arrives.
            return {"service": "shutting down"}
        if self.starting is not None:
            return {"service": f"starting: {self.starting}"}

        async def run(check: DependencyCheck) -> tuple[str, str | None]:
            try:
                await asyncio.wait_for(check.check(), self._timeout_s)
            except TimeoutError:
                return check.name, f"no answer within {self._timeout_s:g}s"
            except Exception as exc:
                return check.name, f"{type(exc).__name__}: {exc}"[:300]
            return check.name, None

        results = await asyncio.gather(*(run(c) for c in self._checks))
        return {name: problem for name, problem in results if problem is not None}


STARTING = JSONResponse(
    {"error": "unavailable", "message": "the service is starting (waiting for its database or broker)"},
    status_code=503,
    headers={"Retry-After": "1"},
)


def ops_app(
    service: str,
    readiness: Readiness,
    refresh_gauges: Callable[[], Awaitable[None]],
    service_app: Any = None,
) -> Any:
    """The ASGI app the host serves: probes, metrics, then the service's own routes."""

    async def live(_: Request) -> Response:
        # Liveness only says the event loop answers: a dependency outage must not restart the pod.
        return JSONResponse({"status": "ok", "service": service})

    async def ready(_: Request) -> Response:
        started = time.perf_counter()
        problems = await readiness.problems()
        metrics.READY.set(0 if problems else 1)
        body = {
            "status": "unready" if problems else "ok",
            "service": service,
            "problems": problems,
            "checked_in_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    async def scrape(_: Request) -> Response:
        await refresh_gauges()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    probes = Starlette(
        routes=[
            Route(PROBE_PATHS[0], live, methods=["GET"]),
            Route(PROBE_PATHS[1], ready, methods=["GET"]),
            Route(PROBE_PATHS[2], scrape, methods=["GET"]),
        ]
    )
    return OpsEdge(probes, service_app, readiness)


class OpsEdge:
    """Pure ASGI, the one layer in front of a service's app: the probes, every request counted and timed by
    its route template, and the server span of each request to the service's app.

    The probes are picked by path, not with a Mount: a Mount's pattern (`.*`) does not match a path holding
    a newline (`%0A`), which then got a plain-text 404 from outside the service's app and its error body.
    They get no span (a scrape every few seconds is not a trace anyone looks for).
    """

    def __init__(self, probes: ASGIApp, service_app: ASGIApp | None = None, readiness: Readiness | None = None) -> None:
        self._probes = probes
        self._service_app = service_app
        self._readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service_app = self._service_app
        if scope["type"] != "http":
            await (service_app or self._probes)(scope, receive, send)
            return
        traced = service_app is not None and scope["path"] not in PROBE_PATHS
        app = service_app if traced and service_app is not None else self._probes
        if traced and self._readiness is not None and self._readiness.starting is not None:
            # Its tables, producer and consumers are not there yet: what the API would do fails.
            app = STARTING
        status = 500
        error: BaseException | None = None
        started = time.perf_counter()

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        span = ServerSpan(scope) if traced else None
        try:
            await app(scope, receive, counted_send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            method = scope.get("method", "GET")
            route = metrics.route_template(scope)
            if span is not None:
                span.end(method, None if route == "unmatched" else route, status, error)
            metrics.observe_http(method, route, status, time.perf_counter() - started)
