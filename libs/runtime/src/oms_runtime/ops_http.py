"""The operational HTTP surface every service has: probes and metrics, in front of the service's own API.

The host always serves HTTP. Its outer app answers `/health/live`, `/health/ready` and `/metrics`
itself and hands every other path to the service's app (when it has one), so a service gets probes
and metrics without writing a line, and its OpenAPI document stays about its API.
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
from starlette.types import Receive, Scope, Send

from oms_runtime import metrics

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
    if service_app is None:
        return metrics.HttpMetricsMiddleware(probes)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        # By path, not with a Mount: a Mount's pattern (`.*`) does not match a path holding a newline
        # (`%0A`), which then got a plain-text 404 from outside the service's app and its error body.
        if scope["type"] == "http" and scope["path"] not in PROBE_PATHS:
            if readiness.starting is not None:
                # Its tables, producer and consumers are not there yet: what the API would do fails.
                await STARTING(scope, receive, send)
                return
            await service_app(scope, receive, send)
        else:
            await probes(scope, receive, send)

    return metrics.HttpMetricsMiddleware(dispatch)
