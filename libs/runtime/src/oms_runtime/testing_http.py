"""Test support for every service's HTTP edge: the app the service really serves, with dependencies that
never answer.

A service is built from its composition root (`oms_runtime.composition`) with a database, cache and broker
on a port where nothing listens. A request that the edge refuses gets its 4xx; a request that gets past
the edge reaches a dependency and is a 503. So a test that sends a bad value and expects 422 naming the
field, and sends the same request with a good value and expects 503, proves that the edge, not the
database, stopped the bad one: without the check, the bad value would reach the database too.
"""

import copy
import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog

from oms_runtime.composition import built_service

if TYPE_CHECKING:
    import httpx

NOWHERE: Mapping[str, Any] = {
    "database_url": "postgresql+asyncpg://oms:oms@127.0.0.1:1/oms",
    "redis_url": "redis://127.0.0.1:1/0",
    "kafka_bootstrap_servers": "127.0.0.1:1",
}
"""Dependencies on a port where nothing listens: every attempt fails at once."""


@asynccontextmanager
async def edge_client(service: str, **settings: Any) -> AsyncIterator["httpx.AsyncClient"]:
    """A client of the service's own app (built, never started), its dependencies `NOWHERE`.

    Logs are plain JSON lines on the current stderr meanwhile: structlog's development default renders
    every 503's traceback with its local variables, which takes seconds each."""
    import httpx

    before = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    try:
        async with built_service(service, **{**NOWHERE, **settings}) as host:
            transport = httpx.ASGITransport(app=host.service_app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
                yield client
    finally:
        structlog.configure(**before)


def named_fields(response: "httpx.Response") -> list[str]:
    """The fields a 422 names; fails with the answer when it is not a 422 in the error body."""
    assert response.status_code == 422, f"{response.status_code} {response.text[:500]}"
    body = response.json()
    assert body["error"] == "validation_failed", body
    return [f["field"] for f in body["fields"]]


def reached_a_dependency(response: "httpx.Response") -> bool:
    """True for the 503 a request gets when it passed the edge and found the database (or cache) away."""
    return response.status_code == 503 and response.json().get("error") == "unavailable"


def changed(body: Mapping[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A copy of the body with the value at the dotted path `field` (`lines.0.quantity`) replaced."""
    result = copy.deepcopy(dict(body))
    *parents, last = field.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return result


def json_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Request arguments for a JSON body that may hold lone surrogates (escaped, as JSON encoders send them;
    httpx's own encoder would fail on them)."""
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}
