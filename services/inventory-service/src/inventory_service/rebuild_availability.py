"""Rebuilds the availability view (Redis) from inventory-service's event store.

    python -m inventory_service.rebuild_availability

Reads DATABASE_URL, REDIS_URL and AVAILABILITY_KEY_PREFIX like the service; safe while it runs (the view
keeps the newest level per warehouse). Writes nothing but the view: no commands, no events.
"""

import asyncio
import json

from redis.asyncio import Redis

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.availability import RebuildResult, rebuild_view
from inventory_service.main import SERVICE, InventorySettings
from oms_events import default_registry
from oms_runtime.db import Database
from oms_runtime.logging import configure_logging


async def rebuild_with(settings: InventorySettings) -> RebuildResult:
    db = Database.for_service(settings, SERVICE)
    redis = Redis.from_url(settings.redis_url)
    try:
        return await rebuild_view(db, AvailabilityView(redis, settings.availability_key_prefix), default_registry())
    finally:
        await redis.aclose()
        await db.dispose()


def main() -> None:
    settings = InventorySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    result = asyncio.run(rebuild_with(settings))
    print(json.dumps({"levels": result.levels, "cleared": result.cleared}))


if __name__ == "__main__":
    main()
