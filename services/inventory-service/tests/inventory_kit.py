"""What the inventory-service unit tests share: the service's parts on a throwaway schema of the real
PostgreSQL, driven through the real message processor (inbox, transaction, outbox), with a clock the
test moves."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import select, text

from inventory_service.adapters.stock_repository import StockLevel, StockRepository, Warehouse
from inventory_service.adapters.tables import metadata
from inventory_service.commands import InventoryCommands
from inventory_service.domain.allocation import SourcingPreference
from inventory_service.expiry import ReservationExpirer
from inventory_service.handlers import InventoryHandlers
from inventory_service.ledger import StockLedger
from oms_events import ContractMessage, Message, default_registry
from oms_events.messages import ReserveStock
from oms_events.values import Address, StockLine
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import HandlerHarness, throwaway_schema

REGISTRY = default_registry()

BERLIN = Warehouse("WH-BER", "Berlin", "Berlin, DE", "DE", 52.52, 13.40)
LONDON = Warehouse("WH-LON", "London", "London, GB", "GB", 51.51, -0.13)
MUNICH = Warehouse("WH-MUC", "Munich", "Munich, DE", "DE", 48.14, 11.58)


def address(country: str = "DE", postal_code: str = "10115") -> Address:
    return Address(name="Jane", line1="Main 1", city="Somewhere", postal_code=postal_code, country=country)


def reserve(
    order_id: UUID, *lines: tuple[str, int], backorder: bool = False, to: Address | None = None
) -> ReserveStock:
    return ReserveStock(
        order_id=order_id,
        lines=[StockLine(sku=sku, quantity=qty) for sku, qty in lines],
        allow_backorder=backorder,
        shipping_address=to,
    )


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Kit:
    db: Database
    clock: Clock
    repo: StockRepository
    ledger: StockLedger
    handlers: InventoryHandlers
    harness: HandlerHarness
    commands: InventoryCommands

    def expirer(self) -> ReservationExpirer:
        return ReservationExpirer(self.db, self.ledger, self.handlers, REGISTRY, interval_s=60)

    async def stock(
        self, sku: str, levels: dict[str, int], warehouses: tuple[Warehouse, ...] = (BERLIN, LONDON)
    ) -> None:
        async with self.db.transaction() as session:
            for warehouse in warehouses:
                await self.repo.upsert_warehouse(session, warehouse)
            for warehouse_id, on_hand in levels.items():
                await self.repo.seed_level(session, sku, warehouse_id, on_hand)

    async def levels(self, sku: str) -> dict[str, StockLevel]:
        async with self.db.transaction() as session:
            return {lvl.warehouse_id: lvl for lvl in await self.repo.levels(session, sku)}

    async def sent(self, key: UUID | str) -> list[ContractMessage]:
        return await self.harness.emitted_for_key(str(key))

    async def answers(self, order_id: UUID) -> list[Message]:
        return await self.harness.emitted(order_id)

    async def all_sent(self) -> list[ContractMessage]:
        async with self.db.transaction() as session:
            values = await session.scalars(select(outbox_table.c.value).order_by(outbox_table.c.id))
            return [REGISTRY.parse_any(v)[1] for v in values]

    async def status(self, order_id: UUID) -> str | None:
        async with self.db.transaction() as session:
            found = await self.repo.reservation(session, order_id)
        return found.status if found else None

    async def execute(self, sql: str, **params: object) -> None:
        async with self.db.transaction() as session:
            await session.execute(text(sql), params)


@asynccontextmanager
async def inventory_kit(
    ttl: timedelta | None = timedelta(minutes=30),
    preference: SourcingPreference = SourcingPreference.NEAREST,
    pool_size: int = 4,
) -> AsyncIterator[Kit]:
    async with throwaway_schema("test_inventory", metadata, pool_size=pool_size) as db:
        clock = Clock()
        repo = StockRepository()
        ledger = StockLedger(repo, EventStore(), reservation_ttl=ttl, preference=preference, clock=clock)
        handlers = InventoryHandlers(ledger)
        harness = HandlerHarness(db, "inventory-service", handlers.handler_map(), REGISTRY)
        commands = InventoryCommands(db, ledger, handlers, REGISTRY)
        yield Kit(db, clock, repo, ledger, handlers, harness, commands)


def new_order() -> UUID:
    return uuid4()
