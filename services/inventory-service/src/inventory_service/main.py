"""Composition root of inventory-service: the one place where its parts are wired together."""

import asyncio

from fastapi import FastAPI
from pydantic import Field

from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.stock_repository import StockRepository
from inventory_service.adapters.tables import metadata
from inventory_service.entrypoints.consumers import consumers
from inventory_service.entrypoints.planning_routes import planning_router
from inventory_service.entrypoints.sales_consumer import demand_consumer
from inventory_service.handlers import InventoryHandlers
from inventory_service.seed import seed_demo_stock
from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost
from oms_runtime.http_api import ApiKeyAuthenticator, install_error_handlers
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings

SERVICE = "inventory-service"


class InventorySettings(ServiceSettings):
    seed_demo_stock: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 8001
    api_keys: str = Field(default="[]", description="JSON list of {name, key, role}; planning needs ops keys")


def build(settings: InventorySettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    repository = StockRepository()
    handlers = InventoryHandlers(repository, EventStore())
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    if settings.seed_demo_stock:
        host.on_start(lambda: seed_demo_stock(host.db, repository))

    # --- demand forecasting: the sales history consumer and the planning routes ---
    host.add_consumer(demand_consumer(SalesHistory()))
    app = FastAPI(title="inventory-service")
    install_error_handlers(app)
    app.include_router(planning_router(host.db, ApiKeyAuthenticator.from_json(settings.api_keys)))
    host.serve_http(app, settings.http_host, settings.http_port)
    # --- end of demand forecasting ---
    return host


async def serve(settings: InventorySettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = InventorySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()
