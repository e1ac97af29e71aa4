"""A burst of callers above the pool waits for its connections instead of opening and closing new ones.

SQLAlchemy closes an overflow connection as soon as it is returned; with an overflow as large as the pool,
a service under 32 concurrent HTTP clients opened a PostgreSQL backend per request above the pool (509 in
a 1,500-order bench, each with asyncpg's type introspection). Without overflow (the default) the pool's
connections are the only ones, before, during and after the burst.
"""

import asyncio
from uuid import uuid4

from sqlalchemy import text

from oms_runtime.db import Database
from oms_runtime.settings import ServiceSettings
from oms_runtime.testing import DATABASE_URL


async def _backends(db: Database, callers: int) -> set[int]:
    async def one() -> int:
        async with db.transaction() as session:
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
            await asyncio.sleep(0.02)  # hold the connection, so that the callers overlap
            return pid

    return set(await asyncio.gather(*(one() for _ in range(callers))))


async def test_a_burst_above_the_pool_reuses_the_pools_connections() -> None:
    db = Database(DATABASE_URL, schema=f"test_pool_{uuid4().hex[:8]}", pool_size=3)
    try:
        first = await _backends(db, 12)
        second = await _backends(db, 12)
        assert len(first) <= 3
        assert second == first, "the same backends serve the next burst: none was closed and opened anew"
    finally:
        await db.dispose()


async def test_an_overflow_is_a_setting_and_its_connections_are_closed_after_use() -> None:
    settings = ServiceSettings(database_url=DATABASE_URL, db_pool_size=2, db_pool_overflow=4)
    db = Database.for_service(settings, f"test-pool-{uuid4().hex[:8]}")
    try:
        first = await _backends(db, 12)
        second = await _backends(db, 12)
        assert 2 < len(first) <= 6
        assert len(second - first) > 0, "overflow connections were closed on return and opened again"
    finally:
        await db.dispose()
