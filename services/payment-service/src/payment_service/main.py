"""Composition root of payment-service: the one place where its parts are wired together."""

import asyncio
from typing import Literal

from oms_runtime.eventstore import EventStore
from oms_runtime.host import ServiceHost
from oms_runtime.logging import configure_logging
from oms_runtime.settings import ServiceSettings
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.adapters.tables import metadata
from payment_service.domain.gateway import PaymentGateway
from payment_service.entrypoints.consumers import consumers
from payment_service.handlers import PaymentHandlers

SERVICE = "payment-service"


class PaymentSettings(ServiceSettings):
    payment_gateway: Literal["simulated"] = "simulated"


def build(settings: PaymentSettings) -> ServiceHost:
    host = ServiceHost(SERVICE, settings, metadata=[metadata])
    gateway: PaymentGateway = SimulatedGateway(host.db)
    handlers = PaymentHandlers(gateway, EventStore())
    for spec in consumers(handlers, group_id=SERVICE):
        host.add_consumer(spec)
    return host


async def serve(settings: PaymentSettings) -> None:
    await build(settings).run_until_signalled()


def run() -> None:
    settings = PaymentSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()
