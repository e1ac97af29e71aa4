"""Reservations that were not paid for in time are released (ReservationExpired), so that stock held by an
order that stalls (on hold, abandoned, a payment that never answers) goes back on sale.

A sweeper looks for overdue reservations every few seconds; each one is released in a transaction of its
own, locked with SKIP LOCKED so that several replicas never expire the same reservation twice.
"""

from inventory_service.adapters.reservation_statements import lock_if_overdue, overdue_reservations
from inventory_service.handlers import InventoryHandlers
from inventory_service.ledger import StockLedger
from oms_events import MessageRegistry
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.periodic import PeriodicTask
from oms_runtime.use_cases import local_context

log = get_logger(__name__)

SERVICE = "inventory-service"


class ReservationExpirer:
    def __init__(
        self,
        db: Database,
        ledger: StockLedger,
        handlers: InventoryHandlers,
        registry: MessageRegistry,
        *,
        interval_s: float,
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._handlers = handlers
        self._registry = registry
        self._loop = PeriodicTask("reservation-expiry", self.sweep, interval_s=interval_s)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> int:
        """Expires every overdue reservation; returns how many."""
        now = self._ledger.clock()
        async with self._db.transaction() as session:
            overdue = await overdue_reservations(session, now)
        expired = 0
        for order_id in overdue:
            async with self._db.transaction() as session:
                if not await lock_if_overdue(session, order_id, now):
                    continue  # paid, released or being expired by another replica meanwhile
                ctx = local_context(session, SERVICE, self._registry)
                await self._handlers.expire(ctx, order_id)
            expired += 1
        return expired
