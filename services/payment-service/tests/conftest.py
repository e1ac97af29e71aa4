"""payment-service's test fixtures: a throwaway PostgreSQL schema, and loggers independent of other tests."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import oms_runtime.messaging
import payment_service.adapters.retrying_gateway
import payment_service.adapters.simulated_gateway
import payment_service.handlers
from oms_runtime.db import Database
from oms_runtime.testing import stderr_logger, throwaway_schema
from payment_service.adapters.tables import gateway_metadata, metadata

LOGGING_MODULES = (
    payment_service.handlers,
    payment_service.adapters.simulated_gateway,
    payment_service.adapters.retrying_gateway,
    oms_runtime.messaging,
)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    """The service's tables in a schema of their own, dropped after the module; never the real schema."""
    async with throwaway_schema("test_payment", metadata, gateway_metadata) as database:
        yield database


@pytest.fixture(autouse=True)
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test logs to its own stderr, whatever another test did to structlog's global configuration."""
    logger = stderr_logger()
    for module in LOGGING_MODULES:
        monkeypatch.setattr(module, "log", logger)
