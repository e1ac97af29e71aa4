"""Rebuilds fulfilment-service's projections (`shipment_views`, `return_views`, the performance report's
`shipment_reports`) from its event store.

    python -m fulfilment_service.rebuild_projection

Reads DATABASE_URL like the service. The tables are emptied and every shipment and return stream is
replayed into them, in one transaction that locks the tables against writers (who wait, then apply
their change on top). Writes nothing but the projections: no outbox rows, no messages.
"""

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, text

from fulfilment_service.adapters.return_repository import ReturnRepository
from fulfilment_service.adapters.shipment_repository import LoadedShipment, ShipmentRepository
from fulfilment_service.adapters.tables import metadata, return_views, shipment_reports, shipment_views
from fulfilment_service.domain import returns, shipment
from fulfilment_service.handlers import SERVICE
from oms_events import Envelope, Message, MessageRegistry, default_registry
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import configure_logging, get_logger
from oms_runtime.settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class RebuildResult:
    events: int
    shipments: int
    returns: int


async def rebuild(db: Database, registry: MessageRegistry, batch_size: int = 1000) -> RebuildResult:
    store = EventStore()
    streams: dict[str, list[tuple[Envelope, Message]]] = defaultdict(list)
    events = 0
    shipments_repository = ShipmentRepository()
    async with db.transaction() as session:
        await session.execute(text("LOCK TABLE shipment_views, return_views, shipment_reports IN EXCLUSIVE MODE"))
        for table in (shipment_views, return_views, shipment_reports):
            await session.execute(delete(table))
        position = 0
        while batch := await store.read_all(session, after_position=position, limit=batch_size):
            position = batch[-1].position
            for stored in batch:
                if stored.stream_id.startswith(("shipment-", "return-")):
                    streams[stored.stream_id].append((stored.envelope, registry.decode(stored.envelope)))
                    events += 1
        shipments = returned = 0
        for stream, recorded in streams.items():
            messages = [message for _, message in recorded]
            if stream.startswith("shipment-"):
                shipment_id = UUID(stream.removeprefix("shipment-"))
                aggregate = shipment.Shipment.rebuild(shipment_id, messages)
                # Both projections of the shipment, as a save writes them.
                await shipments_repository.project(session, LoadedShipment(aggregate, recorded))
                shipments += 1
            else:
                back = returns.Return.rebuild(UUID(stream.removeprefix("return-")), messages)
                await ReturnRepository().project(session, back)
                returned += 1
    log.info("fulfilment projections rebuilt", events=events, shipments=shipments, returns=returned)
    return RebuildResult(events=events, shipments=shipments, returns=returned)


async def rebuild_with(settings: ServiceSettings) -> RebuildResult:
    db = Database.for_service(settings, SERVICE)
    try:
        await db.create_schema(metadata)
        return await rebuild(db, default_registry())
    finally:
        await db.dispose()


def main() -> None:
    settings = ServiceSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    result = asyncio.run(rebuild_with(settings))
    print(json.dumps({"events": result.events, "shipments": result.shipments, "returns": result.returns}))


if __name__ == "__main__":
    main()
