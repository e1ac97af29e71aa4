"""The request guard every service's app has: credentials before the body, a body limit, a 503 that leaves
the keep-alive connection usable, short 422s, and OpenAPI documents that list every error answer."""

import asyncio
import http.client
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import PlainText
from oms_runtime.http_api import API_KEYS_ADAPTER, ApiKeyAuthenticator, Principal, Role, ServiceApi, same_secret
from oms_runtime.testing import stderr_logger

KEY = "guard-key-0123456789"
LIMIT = 4096


class Pick(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(gt=0, le=10)
    note: PlainText = Field(default="", max_length=100)


def service_app() -> ServiceApi:
    auth = ApiKeyAuthenticator(API_KEYS_ADAPTER.validate_python([{"name": "wh", "key": KEY, "role": "warehouse"}]))
    app = ServiceApi(title="guarded", max_body_bytes=LIMIT)
    staff = auth.dependency(roles=frozenset({Role.WAREHOUSE}))

    @app.post("/picks")
    async def pick(body: Pick, principal: Annotated[Principal, Depends(staff)]) -> dict[str, str]:
        return {"by": principal.name}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database went away")

    @app.get("/ok/{n}")
    async def ok(n: int) -> dict[str, int]:
        return {"n": n}

    return app


@pytest.fixture(autouse=True)
def quiet_guard_log(monkeypatch: pytest.MonkeyPatch) -> None:
    import oms_runtime.http_guard

    monkeypatch.setattr(oms_runtime.http_guard, "log", stderr_logger())


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


class Body:
    """A request body streamed in chunks that remembers whether anyone read it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        for chunk in self.chunks:
            yield chunk


async def test_credentials_are_checked_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    body = Body([b'{"what": "the route expects is none of your business"}'])
    refused = await client.post("/picks", content=body, headers={"Content-Type": "application/json"})
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated")
    assert refused.json()["fields"] == []  # nothing about the body it expects
    assert not body.read
    wrong_role_body = Body([b"{}"])
    wrong = await client.post("/picks", content=wrong_role_body, headers={"X-API-Key": "nope-0123456789abcdef"})
    assert wrong.status_code == 401
    assert not wrong_role_body.read
    # With the key, the same body is read and validated.
    checked = await client.post("/picks", json={"what": 1}, headers={"X-API-Key": KEY})
    assert checked.status_code == 422


async def test_a_body_past_the_limit_is_413_by_its_length_or_as_it_streams(client: httpx.AsyncClient) -> None:
    declared = Body([b"x" * (LIMIT + 1)])
    by_length = await client.post(
        "/picks", content=declared, headers={"X-API-Key": KEY, "Content-Length": str(LIMIT + 1)}
    )
    assert (by_length.status_code, by_length.json()["error"]) == (413, "body_too_large")
    assert by_length.headers["connection"] == "close"
    assert not declared.read
    # Chunked, no length: refused once the limit is passed, whoever sends it.
    for headers in ({"X-API-Key": KEY}, {}):
        streamed = await client.post("/picks", content=Body([b"x" * 1024] * 8), headers=headers)
        assert streamed.status_code in (413, 401)
    streamed = await client.post("/picks", content=Body([b"x" * 1024] * 8), headers={"X-API-Key": KEY})
    assert (streamed.status_code, streamed.json()["error"]) == (413, "body_too_large")
    within = await client.post("/picks", json={"quantity": 1, "note": "n" * 50}, headers={"X-API-Key": KEY})
    assert within.status_code == 200


async def test_a_422_names_at_most_fifty_fields_and_says_how_many_more(client: httpx.AsyncClient) -> None:
    body = {"quantity": 1, **{f"k{i}": 1 for i in range(300)}}
    started = time.perf_counter()
    response = await client.post("/picks", json=body, headers={"X-API-Key": KEY})
    assert time.perf_counter() - started < 2
    assert response.status_code == 422
    assert len(response.json()["fields"]) == 50
    assert response.json()["message"].endswith("and 250 more")


async def test_nul_in_a_text_field_is_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/picks", json={"quantity": 1, "note": "a\x00b"}, headers={"X-API-Key": KEY})
    assert response.status_code == 422
    [field] = response.json()["fields"]
    assert (field["field"], field["type"]) == ("note", "text_not_storable")
    assert "a\x00b" not in response.text  # the value is never repeated


def test_same_secret_compares_any_text() -> None:
    assert same_secret("sha256=abc", "sha256=abc")
    assert not same_secret("ÿé", "sha256=abc")  # hmac.compare_digest raises TypeError on non-ASCII str
    assert not same_secret(None, "x")


def test_every_operation_documents_its_error_answers_with_the_error_body() -> None:
    document = service_app().openapi()
    operations = {(path, method): op for path, ops in document["paths"].items() for method, op in ops.items()}
    assert sorted(operations["/picks", "post"]["responses"]) == ["200", "400", "401", "403", "413", "422", "503"]
    assert sorted(operations["/ok/{n}", "get"]["responses"]) == ["200", "422", "503"]
    assert sorted(operations["/boom", "get"]["responses"]) == ["200", "503"]
    for operation in operations.values():
        for code, answer in operation["responses"].items():
            if int(code) >= 400:
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert {"ErrorBody", "FieldError"} <= document["components"]["schemas"].keys()


# ---------------------------------------------------------------- on a real server


@pytest.fixture
def server() -> Iterator[int]:
    """The app under uvicorn on a free port, in a thread (the way the host serves it)."""
    config = uvicorn.Config(
        service_app(), host="127.0.0.1", port=0, log_level="warning", log_config=None, lifespan="off"
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    [socket] = served.servers[0].sockets
    yield int(socket.getsockname()[1])
    served.should_exit = True
    thread.join(10)


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


def test_a_failed_request_leaves_the_keep_alive_connection_usable(server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        # Each failure, then the next request on the same connection (it was reset after a 503).
        assert _exchange(connection, "GET", "/boom") == (
            503,
            {
                "error": "unavailable",
                "message": "The service cannot answer now; retry later.",
                "fields": [],
            },
        )
        assert _exchange(connection, "GET", "/ok/1") == (200, {"n": 1})
        assert _exchange(connection, "POST", "/picks", {"quantity": 99})[0] == 422
        assert _exchange(connection, "GET", "/ok/2") == (200, {"n": 2})
        assert _exchange(connection, "GET", "/ok/not-a-number")[0] == 422
        assert _exchange(connection, "GET", "/boom")[0] == 503
        assert _exchange(connection, "POST", "/picks", {"quantity": 1}) == (200, {"by": "wh"})
    finally:
        connection.close()


async def test_a_large_unauthenticated_body_is_not_read_on_a_real_server(server: int) -> None:
    # 10 MB announced, nothing but the headers sent: the answer comes at once.
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        writer.write(
            b"POST /picks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 413")
    finally:
        writer.close()
