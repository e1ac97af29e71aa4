"""Runtime tests run against the real PostgreSQL (and Kafka where named), each in a throwaway schema."""

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from sqlalchemy import text

from oms_runtime.db import Database
from oms_runtime.eventstore import runtime_metadata

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database(DATABASE_URL, schema=f"test_runtime_{uuid4().hex[:10]}")
    await database.create_schema(runtime_metadata)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{database.schema}" CASCADE'))
        await database.dispose()
