"""Composition root of fulfilment-service: the one place where its parts are wired together."""

from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.adapters.tables import metadata
from fulfilment_service.domain.carriers import service_levels
from fulfilment_service.domain.dispatch import DEFAULT_CUTOFF, DispatchCalendar, WarehouseCalendars
from fulfilment_service.entrypoints.consumers import consumers
from fulfilment_service.entrypoints.http import create_app
from fulfilment_service.entrypoints.report_routes import report_router
from fulfilment_service.handlers import (
    SERVICE,
    FulfilmentConfig,
    FulfilmentHandlers,
    FulfilmentOperations,
    WarehouseMode,
)
from fulfilment_service.performance_report import PerformanceReports
from oms_runtime.host import ServiceHost, run_service
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings


class FulfilmentSettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8003
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role: ops|warehouse|carrier|channel}")
    dispatch_cutoff: time = Field(default=DEFAULT_CUTOFF, description="Daily cut-off in each warehouse's local time")
    warehouse_timezones: dict[str, str] = Field(
        default={"WH-BER": "Europe/Berlin", "WH-LON": "Europe/London"},
        description='IANA time zone per warehouse id, as JSON: {"WH-BER": "Europe/Berlin"}',
    )
    default_timezone: str = Field(default="UTC", description="Time zone of warehouses not listed")
    warehouse_modes: dict[str, WarehouseMode] = Field(
        default={}, description='Working mode per warehouse id, as JSON: {"WH-BER": "manual"}'
    )
    default_warehouse_mode: WarehouseMode = Field(
        default=WarehouseMode.AUTOMATIC, description="Mode of warehouses not listed in WAREHOUSE_MODES"
    )
    service_levels: dict[str, dict[str, Any]] = Field(
        default={},
        description='Carrier and transit time per delivery method, as JSON: {"standard": {"carrier": "DHL", '
        '"transit_business_days": 3}}; methods not listed keep their defaults',
    )
    carrier_webhook_secrets: dict[str, str] = Field(
        default={}, description='HMAC secret per carrier for signed webhook calls, as JSON: {"DHL": "..."}'
    )
    automatic_grams_per_unit: int = Field(default=500, gt=0, description="Parcel weight per unit in automatic mode")

    def simulations(self) -> list[str]:
        automatic = sorted(w for w, mode in self.warehouse_modes.items() if mode is WarehouseMode.AUTOMATIC)
        if self.default_warehouse_mode is WarehouseMode.AUTOMATIC:
            automatic.insert(0, "every warehouse not in WAREHOUSE_MODES (DEFAULT_WAREHOUSE_MODE=automatic)")
        if not automatic:
            return []
        return [
            "automatic warehouses ship at once, with made-up tracking numbers and nobody picking: "
            + ", ".join(automatic)
        ]


def calendars(settings: FulfilmentSettings) -> WarehouseCalendars:
    """Fails at start (ZoneInfoNotFoundError) on a time zone this host does not know."""
    return WarehouseCalendars(
        default=DispatchCalendar(ZoneInfo(settings.default_timezone), settings.dispatch_cutoff),
        by_warehouse={
            warehouse_id: DispatchCalendar(ZoneInfo(zone), settings.dispatch_cutoff)
            for warehouse_id, zone in settings.warehouse_timezones.items()
        },
    )


def config(settings: FulfilmentSettings) -> FulfilmentConfig:
    """Fails at start on an unknown carrier or delivery method in SERVICE_LEVELS."""
    return FulfilmentConfig(
        default_mode=settings.default_warehouse_mode,
        modes=dict(settings.warehouse_modes),
        service_levels=service_levels(settings.service_levels),
        grams_per_unit=settings.automatic_grams_per_unit,
    )


def build(settings: FulfilmentSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    fulfilment = config(settings)
    warehouse_calendars = calendars(settings)
    handlers = FulfilmentHandlers(ShipmentRepository(), warehouse_calendars, fulfilment)
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    operations = FulfilmentOperations(host.db, host.registry, handlers)
    auth = ApiKeyAuthenticator.from_json(settings.api_keys)
    app = create_app(
        operations,
        auth,
        modes=fulfilment.mode_of,
        carrier_secrets=settings.carrier_webhook_secrets,
        max_body_bytes=settings.http_max_body_bytes,
    )
    # Promised dates are the warehouse's dates: deliveries are dated in its time zone.
    reports = PerformanceReports(host.db, lambda warehouse_id: warehouse_calendars.of(warehouse_id).timezone)
    app.include_router(report_router(reports, auth))
    host.serve_http(app, settings.http_host, settings.http_port, ops_auth=auth)
    return host


async def serve(settings: FulfilmentSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = FulfilmentSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    run_service(serve(settings), settings.event_loop)


if __name__ == "__main__":
    run()
