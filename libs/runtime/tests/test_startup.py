"""A service started while its database (or broker) is down waits for it instead of exiting: its probes
answer at once, readiness says which start-up step it waits on, its API answers 503, and it becomes ready
by itself once the dependency is back."""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from oms_runtime.host import ServiceHost
from oms_runtime.settings import ServiceSettings
from oms_runtime.startup import until_reachable
from oms_runtime.testing import free_port

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")


async def test_a_step_is_retried_until_its_dependency_answers() -> None:
    calls = 0

    async def connect() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError(111, "Connect call failed")

    assert await until_reachable("database schema", connect, "test-service", initial_wait_s=0.01) == 3
    assert calls == 3


async def test_a_programming_error_ends_the_start_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise TypeError("not a dependency problem")

    with pytest.raises(TypeError):
        await until_reachable("producer", broken, "test-service", initial_wait_s=0.01)
    assert calls == 1


async def test_a_cancelled_start_is_not_retried() -> None:
    async def waits() -> None:
        await asyncio.sleep(30)

    task = asyncio.create_task(until_reachable("consumers", waits, "test-service", initial_wait_s=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


@asynccontextmanager
async def forwarder(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """A TCP proxy on `port` to `target`: the database 'comes back' when it starts listening."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_a_host_started_before_its_database_becomes_ready_when_the_database_is_back() -> None:
    real = make_url(DATABASE_URL)
    proxy_port = free_port()
    settings = ServiceSettings(
        database_url=real.set(port=proxy_port).render_as_string(hide_password=False),
        kafka_create_topics=False,
        db_connect_timeout_s=1.0,
        readiness_timeout_s=1.0,
    )
    host = ServiceHost("payment-service", settings)
    app = FastAPI()

    @app.get("/things")
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    http_port = free_port()
    host.serve_http(app, "127.0.0.1", http_port)
    starting = asyncio.create_task(host.start())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
            for _ in range(100):
                try:
                    ready = await http.get("/health/ready")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert ready.status_code == 503
            assert ready.json()["problems"]["service"] == "starting: database schema"
            assert (await http.get("/health/live")).status_code == 200
            api = await http.get("/things")
            assert api.status_code == 503
            assert api.headers["retry-after"] == "1"
            assert api.json()["error"] == "unavailable"
            await asyncio.sleep(1.5)  # a few failed attempts: the host is still there, waiting
            assert not starting.done()

            async with forwarder(proxy_port, (real.host or "127.0.0.1", real.port or 5432)):
                await asyncio.wait_for(starting, 30)
                assert (await http.get("/health/ready")).status_code == 200
                assert (await http.get("/things")).json() == {"ok": "yes"}
                await host.stop()
    finally:
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await host.stop()
