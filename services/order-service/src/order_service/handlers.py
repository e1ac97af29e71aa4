"""Use cases of order-service: place an order, drive the saga on every reply, read an order."""

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import MessageRegistry
from oms_events.messages import (
    Command,
    OrderPlaced,
    PaymentCaptured,
    PaymentDeclined,
    Shipped,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from oms_runtime.outbox import Outbox
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.tables import saga_steps
from order_service.domain.order import Order, OrderStateError
from order_service.domain.saga import next_deadline_s
from order_service.domain.timeline import describe
from order_service.views import OrderLineView, OrderView, ShipmentView, TimelineEntry

log = get_logger(__name__)

SERVICE = "order-service"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlacementResult:
    order_id: UUID
    created: bool


class OrderNotFoundError(Exception):
    pass


class OrderSaga:
    """Reacts to the participants' replies: each one moves the order and sends the next command."""

    def __init__(self, repository: OrderRepository) -> None:
        self._repo = repository

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(StockReserved, self.on_stock_reserved)
        handlers.register(StockReservationFailed, self.on_stock_reservation_failed)
        handlers.register(PaymentCaptured, self.on_payment_captured)
        handlers.register(PaymentDeclined, self.on_payment_declined)
        handlers.register(StockReleased, self.on_stock_released)
        handlers.register(Shipped, self.on_shipped)
        return handlers

    async def _order(self, ctx: MessageContext, order_id: UUID) -> Order:
        order = await self._repo.load(ctx.session, order_id)
        if not order.exists:
            # Not dead-lettered silently: the runtime retries, then parks it with this reason.
            raise OrderStateError(f"reply for unknown order {order_id}")
        return order

    async def on_stock_reserved(self, ctx: MessageContext, reply: StockReserved) -> None:
        order = await self._order(ctx, reply.order_id)
        token = await self._repo.payment_token(ctx.session, reply.order_id)
        if token is None:
            log.info("stock reserved for an order past payment; ignored", status=str(order.status))
            return
        await self._repo.save(ctx, order, order.on_stock_reserved(reply, token), _now())

    async def on_stock_reservation_failed(self, ctx: MessageContext, reply: StockReservationFailed) -> None:
        order = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, order, order.on_stock_reservation_failed(reply), _now())

    async def on_payment_captured(self, ctx: MessageContext, reply: PaymentCaptured) -> None:
        order = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, order, order.on_payment_captured(reply), _now())

    async def on_payment_declined(self, ctx: MessageContext, reply: PaymentDeclined) -> None:
        order = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, order, order.on_payment_declined(reply), _now())

    async def on_stock_released(self, ctx: MessageContext, reply: StockReleased) -> None:
        order = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, order, order.on_stock_released(reply), _now())

    async def on_shipped(self, ctx: MessageContext, reply: Shipped) -> None:
        order = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, order, order.on_shipped(reply), _now())


class OrderPlacement:
    """Places orders from the API: one transaction records the order and its first command."""

    def __init__(self, db: Database, repository: OrderRepository, registry: MessageRegistry, notify: Any) -> None:
        self._db = db
        self._repo = repository
        self._registry = registry
        self._outbox = Outbox()
        self._notify = notify

    async def place(self, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        async with self._db.transaction() as session:
            existing = await self._repo.find_by_reference(session, placed.channel.value, placed.external_reference)
            if existing is not None:
                return PlacementResult(existing, created=False)
            if not await self._repo.claim_reference(session, placed):
                # Lost a race with the same submission: the winner's order is the order.
                raise _ReferenceTakenError
            await self._repo.keep_payment_token(session, placed.order_id, payment_token)
            ctx = self._context(session)
            await self._repo.save(ctx, Order(placed.order_id), Order.place(placed), _now())
        self._notify()
        log.info("order placed", order_id=str(placed.order_id), channel=placed.channel.value)
        return PlacementResult(placed.order_id, created=True)

    async def place_once(self, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        try:
            return await self.place(placed, payment_token)
        except _ReferenceTakenError:
            async with self._db.transaction() as session:
                existing = await self._repo.find_by_reference(session, placed.channel.value, placed.external_reference)
            assert existing is not None
            return PlacementResult(existing, created=False)

    def _context(self, session: AsyncSession) -> MessageContext:
        return MessageContext(
            session=session, envelope=None, producer_name=SERVICE, registry=self._registry, outbox=self._outbox
        )


class _ReferenceTakenError(Exception):
    pass


class DeadlineSweeper:
    """Re-sends a saga's command whose reply is overdue; parks the saga when re-sending is exhausted.

    The deadlines live in the database, so they survive a restart. Re-sending is safe because every
    participant answers a repeated command with its first answer.
    """

    def __init__(
        self,
        db: Database,
        registry: MessageRegistry,
        *,
        step_timeout: timedelta,
        max_attempts: int,
        interval_s: float,
        notify: Any,
    ) -> None:
        self._db = db
        self._registry = registry
        self._step_timeout = step_timeout
        self._max_attempts = max_attempts
        self._interval_s = interval_s
        self._notify = notify
        self._outbox = Outbox()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="saga-deadlines")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("saga deadline sweep failed")
            await asyncio.sleep(self._interval_s)

    async def sweep(self) -> int:
        now = _now()
        async with self._db.transaction() as session:
            rows = (
                await session.execute(
                    select(saga_steps)
                    .where(saga_steps.c.state == "waiting", saga_steps.c.deadline_at < now)
                    .order_by(saga_steps.c.deadline_at)
                    .limit(100)
                    .with_for_update(skip_locked=True)
                )
            ).mappings()
            count = 0
            for row in rows.all():
                count += 1
                await self._overdue(session, row, now)
        if count:
            self._notify()
        return count

    async def _overdue(self, session: AsyncSession, row: Any, now: datetime) -> None:
        order_id: UUID = row["order_id"]
        attempts: int = row["attempts"]
        if attempts >= self._max_attempts:
            await session.execute(
                update(saga_steps).where(saga_steps.c.order_id == order_id).values(state="stalled", updated_at=now)
            )
            log.error(
                "saga stalled: no reply after re-sending",
                order_id=str(order_id),
                awaiting=row["awaiting"],
                attempts=attempts,
            )
            return
        command_cls = self._registry.message_class(row["command_type"])
        command = command_cls.model_validate(row["command"])
        assert isinstance(command, Command)
        envelope = self._registry.wrap(command, producer=SERVICE)
        await self._outbox.add(session, command.topic, command.key, envelope)
        timeout_s = next_deadline_s(self._step_timeout.total_seconds(), attempts)
        await session.execute(
            update(saga_steps)
            .where(saga_steps.c.order_id == order_id)
            .values(attempts=attempts + 1, deadline_at=now + timedelta(seconds=timeout_s), updated_at=now)
        )
        log.warning(
            "saga reply overdue; command re-sent",
            order_id=str(order_id),
            command=row["command_type"],
            attempt=attempts + 1,
        )


def new_order_id() -> UUID:
    return uuid4()


class OrderQueries:
    def __init__(self, db: Database, repository: OrderRepository, registry: MessageRegistry) -> None:
        self._db = db
        self._repo = repository
        self._registry = registry

    async def order_view(self, order_id: UUID) -> OrderView:
        async with self._db.transaction() as session:
            stored = await self._repo.history(session, order_id)
        if not stored:
            raise OrderNotFoundError(str(order_id))
        events = [self._registry.decode(s.envelope) for s in stored]
        order = Order.from_history(order_id, events)
        placed = order.placed
        assert placed is not None
        assert order.status is not None
        return OrderView(
            order_id=order_id,
            status=order.status.value,
            channel=placed.channel.value,
            external_reference=placed.external_reference,
            customer_id=placed.customer.customer_id,
            lines=[OrderLineView(**line.model_dump()) for line in placed.lines],
            currency=placed.currency,
            total_minor=placed.total_minor,
            delivery_method=placed.delivery_method.value,
            rejection_reason=order.rejection_reason,
            shipments=[ShipmentView(**vars(s)) for s in order.shipments],
            timeline=[
                TimelineEntry(at=s.envelope.occurred_at, event=s.envelope.type, description=describe(e))
                for s, e in zip(stored, events, strict=True)
            ],
        )
