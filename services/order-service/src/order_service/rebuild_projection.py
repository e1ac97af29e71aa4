"""Rebuilds order-service's read models (`order_summaries`, the sales rows) from its event store.

    python -m order_service.rebuild_projection [--batch-size N]

Reads DATABASE_URL like the service. Safe while the service runs: writers of order events wait for
the rebuild's commit, readers see the old rows until then. Writes nothing but the read models: no
commands, no outbox rows, no emails or payments.
"""

import argparse
import asyncio
import json

from oms_events import default_registry
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings
from order_service.adapters.projection import RebuildResult, projection_metadata, rebuild
from order_service.adapters.read_models import read_models

SERVICE = "order-service"


async def rebuild_with(settings: ServiceSettings, batch_size: int) -> RebuildResult:
    db = Database.for_service(settings, SERVICE)
    try:
        await db.create_schema(projection_metadata)
        models = read_models()
        return await rebuild(
            db,
            EventStore(),
            default_registry(),
            batch_size=batch_size,
            projection=models.summaries,
            others=models.others,
        )
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m order_service.rebuild_projection", description=__doc__)
    parser.add_argument("--batch-size", type=int, default=1000, help="events read per query (default 1000)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    settings = ServiceSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    result = asyncio.run(rebuild_with(settings, args.batch_size))
    print(json.dumps({"events": result.events, "orders": result.orders, "skipped": result.skipped}))


if __name__ == "__main__":
    main()
