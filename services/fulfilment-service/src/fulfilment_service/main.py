"""Composition root of fulfilment-service: the one place where its parts are wired together."""

import asyncio
from datetime import time
from zoneinfo import ZoneInfo

from pydantic import Field

from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.adapters.tables import metadata
from fulfilment_service.domain.dispatch import DEFAULT_CUTOFF, DispatchCalendar, WarehouseCalendars
from fulfilment_service.entrypoints.consumers import consumers
from fulfilment_service.handlers import FulfilmentHandlers
from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings

SERVICE = "fulfilment-service"


class FulfilmentSettings(ServiceSettings):
    dispatch_cutoff: time = Field(default=DEFAULT_CUTOFF, description="Daily cut-off in each warehouse's local time")
    warehouse_timezones: dict[str, str] = Field(
        default={"WH-BER": "Europe/Berlin", "WH-LON": "Europe/London"},
        description='IANA time zone per warehouse id, as JSON: {"WH-BER": "Europe/Berlin"}',
    )
    default_timezone: str = Field(default="UTC", description="Time zone of warehouses not listed")


def calendars(settings: FulfilmentSettings) -> WarehouseCalendars:
    """Fails at start (ZoneInfoNotFoundError) on a time zone this host does not know."""
    return WarehouseCalendars(
        default=DispatchCalendar(ZoneInfo(settings.default_timezone), settings.dispatch_cutoff),
        by_warehouse={
            warehouse_id: DispatchCalendar(ZoneInfo(zone), settings.dispatch_cutoff)
            for warehouse_id, zone in settings.warehouse_timezones.items()
        },
    )


def build(settings: FulfilmentSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    handlers = FulfilmentHandlers(ShipmentRepository(), EventStore(), calendars(settings))
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    return host


async def serve(settings: FulfilmentSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = FulfilmentSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()
