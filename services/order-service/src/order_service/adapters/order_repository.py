"""Orders in the event store, plus the saga's bookkeeping, all inside the caller's transaction."""

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import MessageRegistry
from oms_events.messages import Command, OrderPlaced, OrderRefundFailed
from oms_runtime.eventstore import EventStore, StoredEvent
from oms_runtime.messaging import MessageContext
from order_service.adapters.projection import Projection
from order_service.adapters.tables import order_references, payment_tokens, saga_steps
from order_service.domain.order import Decision, Order, OrderStatus
from order_service.domain.saga import awaited_reply

STREAM_TYPE = "order"


def stream_id(order_id: UUID) -> str:
    return f"order-{order_id}"


class OrderRepository:
    def __init__(
        self, store: EventStore, registry: MessageRegistry, step_timeout: timedelta, projection: Projection
    ) -> None:
        self._store = store
        self._registry = registry
        self._step_timeout = step_timeout
        self._projection = projection

    async def history(self, session: AsyncSession, order_id: UUID) -> list[StoredEvent]:
        return await self._store.load(session, stream_id(order_id))

    async def load(self, session: AsyncSession, order_id: UUID) -> Order:
        stored = await self.history(session, order_id)
        return Order.from_history(order_id, (self._registry.decode(s.envelope) for s in stored))

    async def save(self, ctx: MessageContext, order: Order, decision: Decision, now: datetime) -> None:
        """Records the decision's events, sends its commands and moves the saga's deadline, atomically."""
        if decision.empty:
            return
        envelopes = await ctx.record(
            self._store, stream_id(order.order_id), STREAM_TYPE, order.version, decision.events
        )
        for event in decision.events:
            order.apply(event)
        if decision.events:
            assert order.status is not None
            # The read model changes in the same transaction as the events it is built from.
            await self._projection.apply(
                ctx.session,
                order.order_id,
                order.status.value,
                list(zip(envelopes, decision.events, strict=True)),
                version=order.version,
            )
        for command in decision.commands:
            await ctx.emit(command)
        if decision.commands:
            await self._await_reply(ctx.session, order.order_id, decision.commands[-1], now)
        elif order.status is not None and order.status.terminal:
            await ctx.session.execute(delete(saga_steps).where(saga_steps.c.order_id == order.order_id))
            await ctx.session.execute(delete(payment_tokens).where(payment_tokens.c.order_id == order.order_id))
        elif (
            order.status in (OrderStatus.NEEDS_ATTENTION, OrderStatus.ON_HOLD, OrderStatus.BACKORDERED)
            or order.fulfilment_accepted
            # A failed partial refund waits for an operator; the order itself has no step to count down.
            or any(isinstance(event, OrderRefundFailed) for event in decision.events)
        ):
            # Parked: no more automatic re-sends until an operator acts (or releases the hold); for a
            # backorder, until stock arrives; once fulfilment took the order, until its warehouses ship it
            # (manual picking has no deadline).
            await ctx.session.execute(
                update(saga_steps).where(saga_steps.c.order_id == order.order_id).values(state="parked", updated_at=now)
            )
        else:
            await ctx.session.execute(
                update(saga_steps)
                .where(saga_steps.c.order_id == order.order_id)
                .values(deadline_at=now + self._step_timeout, updated_at=now)
            )

    async def _await_reply(self, session: AsyncSession, order_id: UUID, command: Command, now: datetime) -> None:
        values = {
            "awaiting": awaited_reply(command),
            "command_type": command.message_type,
            "command": command.model_dump(mode="json"),
            "attempts": 1,
            "deadline_at": now + self._step_timeout,
            "state": "waiting",
            "updated_at": now,
        }
        await session.execute(
            insert(saga_steps)
            .values(order_id=order_id, **values)
            .on_conflict_do_update(index_elements=["order_id"], set_=values)
        )

    async def find_by_reference(self, session: AsyncSession, channel: str, external_reference: str) -> UUID | None:
        found: UUID | None = await session.scalar(
            select(order_references.c.order_id).where(
                order_references.c.channel == channel,
                order_references.c.external_reference == external_reference,
            )
        )
        return found

    async def claim_reference(self, session: AsyncSession, placed: OrderPlaced) -> bool:
        """False when another order already holds this channel + external reference."""
        result = await session.execute(
            insert(order_references)
            .values(
                channel=placed.channel.value, external_reference=placed.external_reference, order_id=placed.order_id
            )
            .on_conflict_do_nothing(constraint="pk_order_references")
            .returning(order_references.c.order_id)
        )
        return result.first() is not None

    async def keep_payment_token(self, session: AsyncSession, order_id: UUID, token: str) -> None:
        await session.execute(insert(payment_tokens).values(order_id=order_id, token=token))

    async def payment_token(self, session: AsyncSession, order_id: UUID) -> str | None:
        token: str | None = await session.scalar(
            select(payment_tokens.c.token).where(payment_tokens.c.order_id == order_id)
        )
        return token

    async def saga_step(self, session: AsyncSession, order_id: UUID) -> dict[str, object] | None:
        row = (await session.execute(select(saga_steps).where(saga_steps.c.order_id == order_id))).mappings().first()
        return dict(row) if row else None

    async def parked_command(self, session: AsyncSession, order_id: UUID) -> Command | None:
        """The command of the step an order waits on, as it was sent, to send again."""
        row = (
            await session.execute(
                select(saga_steps.c.command_type, saga_steps.c.command).where(saga_steps.c.order_id == order_id)
            )
        ).first()
        if row is None:
            return None
        command = self._registry.message_class(row.command_type).model_validate(row.command)
        return command if isinstance(command, Command) else None
