"""fulfilment-service's test fixtures: a throwaway PostgreSQL schema, and loggers independent of other tests."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import fulfilment_service.handlers
import oms_runtime.messaging
from fulfilment_service.adapters.tables import metadata
from oms_runtime.db import Database
from oms_runtime.testing import stderr_logger, throwaway_schema

LOGGING_MODULES = (fulfilment_service.handlers, oms_runtime.messaging)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    """The service's tables in a schema of their own, dropped after the module; never the real schema."""
    async with throwaway_schema("test_fulfilment", metadata) as database:
        yield database


@pytest.fixture(autouse=True)
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test logs to its own stderr, whatever another test did to structlog's global configuration."""
    logger = stderr_logger()
    for module in LOGGING_MODULES:
        monkeypatch.setattr(module, "log", logger)
