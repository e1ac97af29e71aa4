"""Composition root of inventory-service: the one place where its parts are wired together."""

from datetime import timedelta

from pydantic import Field
from redis.asyncio import Redis

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.stock_repository import StockRepository
from inventory_service.adapters.tables import metadata
from inventory_service.availability import AvailabilityProjection
from inventory_service.commands import InventoryCommands
from inventory_service.domain.allocation import SourcingPreference
from inventory_service.entrypoints.consumers import consumers
from inventory_service.entrypoints.http import create_app
from inventory_service.entrypoints.planning_routes import planning_router
from inventory_service.entrypoints.sales_consumer import demand_consumer
from inventory_service.expiry import ReservationExpirer
from inventory_service.handlers import InventoryHandlers
from inventory_service.ledger import StockLedger
from inventory_service.queries import InventoryQueries
from inventory_service.seed import seed_demo_stock
from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost, run_service
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings

SERVICE = "inventory-service"


class InventorySettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8001
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role}, see oms_runtime.http_api")
    seed_demo_stock: bool = True
    reservation_ttl_s: float = Field(
        default=86_400.0,
        ge=0,
        description="A reservation not paid for within this time is released (ReservationExpired); 0 disables",
    )
    reservation_sweep_interval_s: float = Field(default=5.0, gt=0)
    sourcing_preference: SourcingPreference = Field(
        default=SourcingPreference.NEAREST,
        description="When several warehouses can serve a whole order: nearest to the address, or most_stock",
    )
    availability_key_prefix: str = Field(default="oms:inventory:availability:", min_length=1)

    def simulations(self) -> list[str]:
        return ["SEED_DEMO_STOCK=true adds made-up demo stock"] if self.seed_demo_stock else []


def ledger_for(settings: InventorySettings, repository: StockRepository) -> StockLedger:
    ttl = timedelta(seconds=settings.reservation_ttl_s) if settings.reservation_ttl_s > 0 else None
    return StockLedger(repository, EventStore(), reservation_ttl=ttl, preference=settings.sourcing_preference)


def build(settings: InventorySettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    repository = StockRepository()
    ledger = ledger_for(settings, repository)
    handlers = InventoryHandlers(ledger)
    redis = Redis.from_url(settings.redis_url)
    view = AvailabilityView(redis, settings.availability_key_prefix)
    for spec in consumers(handlers, AvailabilityProjection(view), group_id=SERVICE):
        host.add_consumer(spec)
    if settings.seed_demo_stock:
        host.on_start(lambda: seed_demo_stock(host.db, ledger, host.registry))

    # Demand forecasting: the sales history is a consumer group of its own; planning routes share the app.
    host.add_consumer(demand_consumer(SalesHistory()))
    auth = ApiKeyAuthenticator.from_json(settings.api_keys)

    commands = InventoryCommands(host.db, ledger, handlers, host.registry)
    app = create_app(
        commands,
        InventoryQueries(host.db, repository),
        view,
        host.db,
        host.registry,
        auth,
        routers=[planning_router(host.db, auth)],
        max_body_bytes=settings.http_max_body_bytes,
    )
    host.serve_http(app, settings.http_host, settings.http_port, ops_auth=auth)

    if ledger.reservation_ttl is not None:
        expirer = ReservationExpirer(
            host.db,
            ledger,
            handlers,
            host.registry,
            interval_s=settings.reservation_sweep_interval_s,
        )
        host.on_start(expirer.start)
        host.on_stop(expirer.stop)
    host.on_stop(redis.aclose)
    return host


async def serve(settings: InventorySettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = InventorySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    run_service(serve(settings), settings.event_loop)


if __name__ == "__main__":
    run()
