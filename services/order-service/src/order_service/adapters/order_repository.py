"""Orders in the event store, plus the saga's bookkeeping, all inside the caller's transaction.

A database statement costs a round trip and its Python, which made statements most of order-service's
CPU per order. So a decision reads in one statement what it needs (`load_for_decision`: the history, the
step the saga waits on and the payment token) and writes in two: the events (the runtime's append, which
also queues them for the outbox), then the read models and the saga's step together, as data-modifying
CTEs of one statement (a placement's sales rows among them). A placement claims its reference and keeps
its payment token in one statement too (`claim_reference`). The hot statements are asyncpg SQL sent under
the session's transaction (`order_sql`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic_core import to_json
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope, Message, MessageRegistry
from oms_events.messages import Command, OrderPlaced, OrderRefundFailed
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.eventstore import ConcurrencyError, EventStore, PendingAppends, StoredEvent
from oms_runtime.messaging import MessageContext
from order_service.adapters import order_batch, order_sql
from order_service.adapters.order_batch import OrderBatch
from order_service.adapters.projection import OrderProjection, Projection, summary_of, summary_params
from order_service.adapters.tables import order_references, saga_steps
from order_service.domain.order import Decision, Order, OrderStatus
from order_service.domain.saga import awaited_reply

STREAM_TYPE = "order"
_BATCH = "order_service.batch"
"""Where a batch transaction keeps its `OrderBatch` (the session's `info`)."""


def stream_id(order_id: UUID) -> str:
    return f"order-{order_id}"


@dataclass(frozen=True)
class AwaitedStep:
    """What the saga's metrics need of the step an order waits on."""

    command_type: str
    state: str
    updated_at: datetime


@dataclass
class LoadedOrder:
    """An order loaded to decide on: the aggregate, the stream it was built from (versions, envelopes,
    events: the read model is folded from it), and what the caller asked for beside it."""

    order: Order
    history: list[tuple[int, Envelope, Message]] = field(default_factory=list)
    step: AwaitedStep | None = None
    payment_token: str | None = None

    @classmethod
    def new(cls, order_id: UUID) -> "LoadedOrder":
        """An order that has no stream yet (about to be placed)."""
        return cls(Order(order_id))

    @property
    def timeline(self) -> list[tuple[Envelope, Message]]:
        return [(envelope, message) for _, envelope, message in self.history]


class OrderRepository:
    def __init__(
        self,
        store: EventStore,
        registry: MessageRegistry,
        step_timeout: timedelta,
        projection: OrderProjection,
        others: Projection | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._step_timeout = step_timeout
        self._projection = projection
        # Read models beside order_summaries (the sales report's), written after it.
        self._others = others

    async def history(self, session: AsyncSession, order_id: UUID) -> list[StoredEvent]:
        return await self._store.load(session, stream_id(order_id))

    async def load(self, session: AsyncSession, order_id: UUID) -> Order:
        """The order as its stream has it, to read (deciding callers use `load_for_decision`)."""
        stored = await self.history(session, order_id)
        return Order.from_history(order_id, (self._registry.decode(s.envelope) for s in stored))

    async def load_for_decision(
        self, session: AsyncSession, order_id: UUID, *, step: bool = False, token: bool = False
    ) -> LoadedOrder:
        """The order, with the step its saga waits on (`step`) and its payment token (`token`) when asked,
        in one statement: one row per event, the step's and the token's columns beside each.

        Inside a batch (`begin_batch`) the order comes from the batch, as its earlier decisions left it,
        step and token included."""
        batch: OrderBatch | None = session.info.get(_BATCH)
        if batch is not None and order_id in batch.loaded:
            cached: LoadedOrder = batch.loaded[order_id]
            return cached
        rows = await fetch_in_transaction(session, order_sql.LOAD, order_id, stream_id(order_id))
        loaded = self._loaded(order_id, rows, step=step or batch is not None, token=token or batch is not None)
        if batch is not None:
            batch.loaded[order_id] = loaded
        return loaded

    async def begin_batch(self, session: AsyncSession, order_ids: Sequence[UUID]) -> None:
        """From here to `end_batch`, this transaction's decisions share the orders and write once: the
        orders named are loaded now, in one statement (see `order_batch`)."""
        batch = OrderBatch()
        session.info[_BATCH] = batch
        wanted = list(dict.fromkeys(order_ids))
        if not wanted:
            return
        rows = await fetch_in_transaction(session, order_batch.LOAD_MANY, wanted, [stream_id(o) for o in wanted])
        by_order: dict[UUID, list[Any]] = {}
        for order_id, *row in rows:
            by_order.setdefault(order_id, []).append(row)
        for order_id in wanted:
            batch.loaded[order_id] = self._loaded(order_id, by_order.get(order_id, []), step=True, token=True)

    async def end_batch(self, session: AsyncSession) -> None:
        """Writes what the batch's decisions queued; the transaction's decisions write at once again."""
        batch: OrderBatch | None = session.info.pop(_BATCH, None)
        if batch is not None:
            await batch.write(session, self._store, self._others)

    def _loaded(self, order_id: UUID, rows: Sequence[Sequence[Any]], *, step: bool, token: bool) -> LoadedOrder:
        history = []
        for version, envelope_json, *_ in rows:
            if version is None:
                continue  # the order has no stream: the one row carries only the step and token columns
            envelope = Envelope.model_validate_json(envelope_json)
            history.append((version, envelope, self._registry.decode(envelope)))
        loaded = LoadedOrder(Order.from_history(order_id, (message for _, _, message in history)), history)
        if history:
            loaded.order.placed_at = history[0][1].occurred_at
        first = rows[0] if rows else None
        if step and first is not None and first[2] is not None:
            loaded.step = AwaitedStep(first[2], first[3], first[4])
        if token and first is not None:
            loaded.payment_token = first[5]
        return loaded

    async def save(self, ctx: MessageContext, loaded: LoadedOrder, decision: Decision, now: datetime) -> None:
        """Records the decision's events, sends its commands and moves the saga's deadline, atomically."""
        if decision.empty:
            return
        batch: OrderBatch | None = ctx.session.info.get(_BATCH)
        if batch is not None and loaded.order.version > 0:
            await self._queue(ctx, batch, loaded, decision, now)
            return
        await self._write(ctx, loaded, decision, now)

    async def place(
        self, ctx: MessageContext, loaded: LoadedOrder, decision: Decision, now: datetime, payment_token: str
    ) -> bool:
        """A new order's placement (`decision`, starting with OrderPlaced) with the claim of its reference
        and its payment token, all in one statement. False when the reference was held: the caller must
        then roll the transaction back (the writes ran, over the holder's rows) and place as `save` would."""
        placed = decision.events[0]
        assert isinstance(placed, OrderPlaced)
        assert loaded.order.version == 0
        claim = [placed.channel.value, placed.external_reference, placed.order_id, payment_token]
        claimed, appended = await self._write(ctx, loaded, decision, now, claim=claim)
        if claimed and not appended:
            raise ConcurrencyError(stream_id(placed.order_id), 0)
        return bool(claimed)

    async def _write(
        self,
        ctx: MessageContext,
        loaded: LoadedOrder,
        decision: Decision,
        now: datetime,
        *,
        claim: list[Any] | None = None,
    ) -> tuple[int, int]:
        order = loaded.order
        before = None
        if decision.events and order.status is not None:
            before = summary_of(order.order_id, order.status.value, loaded.history)
        # A placement's events are appended by its own statement (`order_sql.placing`).
        staged = PendingAppends() if claim is not None else None
        envelopes = await ctx.record(
            self._store, stream_id(order.order_id), STREAM_TYPE, order.version, decision.events, pending=staged
        )
        writes: list[str] = []
        params: list[list[Any]] = []
        placed_written = False
        if decision.events:
            first = order.version + 1
            for event in decision.events:
                order.apply(event)
            assert order.status is not None
            recorded = list(zip(envelopes, decision.events, strict=True))
            loaded.history.extend((v, e, m) for v, (e, m) in enumerate(recorded, start=first))
            # The read model changes in the same transaction as the events it is built from.
            summary = self._projection.summary_after(
                order.order_id, order.status.value, recorded, version=order.version, before=before
            )
            if summary is not None:
                writes.append("summary")
                params.append(summary_params(summary))
            placed = decision.events[0]
            if first == 1 and isinstance(placed, OrderPlaced) and self._others is not None:
                for name, values in self._others.placed_writes(envelopes[0], placed, 1):
                    writes.append(name)
                    params.append(values)
                placed_written = True
        sent = [await ctx.emit(command) for command in decision.commands]
        writes.append(self._step_write(order, decision, now, params, sent[-1] if sent else None))
        answer = (0, 0)
        if staged is None:
            await fetch_in_transaction(ctx.session, order_sql.together(tuple(writes)), *order_sql.flatten(params))
        else:
            assert claim is not None
            append = [
                staged.stream_ids[0],
                STREAM_TYPE,
                staged.versions,
                staged.event_ids,
                staged.event_types,
                staged.values,
            ]
            [row] = await fetch_in_transaction(
                ctx.session, order_sql.placing(tuple(writes)), *claim, *append, *order_sql.flatten(params)
            )
            answer = (int(row[0]), int(row[1]))
        if decision.events and self._others is not None and (len(recorded) > 1 or not placed_written):
            assert order.status is not None
            await self._others.apply(
                ctx.session,
                order.order_id,
                order.status.value,
                recorded,
                version=order.version,
                placed_written=placed_written,
            )
        return answer

    async def _queue(
        self, ctx: MessageContext, batch: OrderBatch, loaded: LoadedOrder, decision: Decision, now: datetime
    ) -> None:
        """`save` inside a batch: the same writes, queued in the batch (an order placed already)."""
        order = loaded.order
        if decision.events:
            assert order.status is not None
            before = summary_of(order.order_id, order.status.value, loaded.history)
            first = order.version + 1
            envelopes = await ctx.record(
                self._store,
                stream_id(order.order_id),
                STREAM_TYPE,
                order.version,
                decision.events,
                pending=batch.appends,
            )
            for event in decision.events:
                order.apply(event)
            assert order.status is not None
            recorded = list(zip(envelopes, decision.events, strict=True))
            loaded.history.extend((v, e, m) for v, (e, m) in enumerate(recorded, start=first))
            summary = self._projection.summary_after(
                order.order_id, order.status.value, recorded, version=order.version, before=before
            )
            if summary is not None:
                batch.summaries[order.order_id] = summary_params(summary)
            if self._others is not None:
                batch.project(order.order_id, order.status.value, recorded, order.version)
        sent = [await ctx.emit(command) for command in decision.commands]
        params: list[list[Any]] = []
        write = self._step_write(order, decision, now, params, sent[-1] if sent else None)
        batch.step(order.order_id, write, params[0])
        # The order as the next decision of the batch finds it: its step and token as now written.
        if write == "await_reply":
            loaded.step = AwaitedStep(params[0][3], "waiting", now)
        elif write == "end":
            loaded.step, loaded.payment_token = None, None
        elif loaded.step is not None:
            loaded.step = AwaitedStep(loaded.step.command_type, "parked" if write == "park" else loaded.step.state, now)

    def _step_write(
        self, order: Order, decision: Decision, now: datetime, params: list[list[Any]], last_sent: Envelope | None
    ) -> str:
        """What the decision does to the saga's step (its write's name; its parameters go to `params`):
        await the last command's reply, end with the order, park, or keep waiting with a new deadline."""
        if decision.commands:
            assert last_sent is not None
            params.append(
                [
                    order.order_id,
                    now,
                    awaited_reply(decision.commands[-1]),
                    last_sent.type,
                    # The command as sent (its envelope holds it serialised already).
                    to_json(last_sent.payload).decode(),
                    now + self._step_timeout,
                ]
            )
            return "await_reply"
        if order.status is not None and order.status.terminal:
            params.append([order.order_id])
            return "end"
        if (
            order.status in (OrderStatus.NEEDS_ATTENTION, OrderStatus.ON_HOLD, OrderStatus.BACKORDERED)
            or order.fulfilment_accepted
            # A failed partial refund waits for an operator; the order itself has no step to count down.
            or any(isinstance(event, OrderRefundFailed) for event in decision.events)
        ):
            # Parked: no more automatic re-sends until an operator acts (or releases the hold); for a
            # backorder, until stock arrives; once fulfilment took the order, until its warehouses ship it
            # (manual picking has no deadline).
            params.append([order.order_id, now])
            return "park"
        params.append([order.order_id, now, now + self._step_timeout])
        return "move_deadline"

    async def find_by_reference(self, session: AsyncSession, channel: str, external_reference: str) -> UUID | None:
        found: UUID | None = await session.scalar(
            select(order_references.c.order_id).where(
                order_references.c.channel == channel,
                order_references.c.external_reference == external_reference,
            )
        )
        return found

    async def claim_reference(
        self, session: AsyncSession, placed: OrderPlaced, payment_token: str
    ) -> tuple[UUID, bool] | None:
        """Claims the order's channel + external reference and keeps its payment token, in one statement.

        `(order id, True)` when this order took the reference (its token is kept); `(holder, False)` when
        another order held it already; None when another transaction took it while this one waited for
        it (that commit came after this statement's snapshot: a new statement sees the holder).
        """
        rows = await fetch_in_transaction(
            session,
            order_sql.CLAIM,
            placed.channel.value,
            placed.external_reference,
            placed.order_id,
            payment_token,
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

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
