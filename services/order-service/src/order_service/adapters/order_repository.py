"""Orders in the event store, plus the saga's bookkeeping, all inside the caller's transaction.

A database statement costs about a millisecond all in (SQLAlchemy, asyncpg, the round trip, PostgreSQL),
which made statements most of order-service's CPU per order. So a decision reads in one statement what
it needs (`load_for_decision`: the history, and when asked the step the saga waits on and the payment
token) and writes in two: the events (the runtime's append, which also queues them for the outbox), then
the read model and the saga's step together, as data-modifying CTEs of one statement. A placement claims
its reference and keeps its payment token in one statement too (`claim_reference`).

The statements are built once, with bound parameters: building a statement per call (and its cache key)
cost more CPU than running it.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Executable,
    Select,
    String,
    Uuid,
    bindparam,
    delete,
    false,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from oms_events import Envelope, Message, MessageRegistry
from oms_events.messages import Command, OrderPlaced, OrderRefundFailed
from oms_runtime.eventstore import EventStore, StoredEvent, events_table
from oms_runtime.messaging import MessageContext
from order_service.adapters.projection import UPSERT, OrderProjection, Projection, summary_of, upsert_params
from order_service.adapters.tables import order_references, payment_tokens, saga_steps
from order_service.domain.order import Decision, Order, OrderStatus
from order_service.domain.saga import awaited_reply

STREAM_TYPE = "order"


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
        in one statement: one row per event, the step's and the token's columns beside each."""
        params = {"order_id": order_id, "stream_id": stream_id(order_id)}
        rows = (await session.execute(_load_statement(step, token), params)).mappings().all()
        history = []
        for row in rows:
            if row["version"] is None:
                continue  # the order has no stream: the one row carries only the step and token columns
            envelope = Envelope.model_validate(row["envelope"])
            history.append((row["version"], envelope, self._registry.decode(envelope)))
        loaded = LoadedOrder(Order.from_history(order_id, (message for _, _, message in history)), history)
        if history:
            loaded.order.placed_at = history[0][1].occurred_at
        first = rows[0] if rows else None
        if step and first is not None and first["command_type"] is not None:
            loaded.step = AwaitedStep(first["command_type"], first["state"], first["updated_at"])
        if token and first is not None:
            loaded.payment_token = first["token"]
        return loaded

    async def save(self, ctx: MessageContext, loaded: LoadedOrder, decision: Decision, now: datetime) -> None:
        """Records the decision's events, sends its commands and moves the saga's deadline, atomically."""
        if decision.empty:
            return
        order = loaded.order
        before = None
        if decision.events and order.status is not None:
            before = summary_of(order.order_id, order.status.value, loaded.history)
        envelopes = await ctx.record(
            self._store, stream_id(order.order_id), STREAM_TYPE, order.version, decision.events
        )
        writes: list[str] = []
        params: dict[str, Any] = {}
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
                params.update(upsert_params(summary))
        sent = [await ctx.emit(command) for command in decision.commands]
        writes.append(self._step_write(order, decision, now, params, sent[-1] if sent else None))
        await ctx.session.execute(_together(tuple(writes)), params)
        if decision.events and self._others is not None:
            assert order.status is not None
            await self._others.apply(ctx.session, order.order_id, order.status.value, recorded, version=order.version)

    def _step_write(
        self, order: Order, decision: Decision, now: datetime, params: dict[str, Any], last_sent: Envelope | None
    ) -> str:
        """What the decision does to the saga's step (its statement's name; its parameters go to `params`):
        await the last command's reply, end with the order, park, or keep waiting with a new deadline."""
        params.update(step_order_id=order.order_id, step_now=now)
        if decision.commands:
            assert last_sent is not None
            params.update(
                step_awaiting=awaited_reply(decision.commands[-1]),
                step_command_type=last_sent.type,
                step_command=last_sent.payload,  # the command as sent (its envelope holds it serialised already)
                step_deadline_at=now + self._step_timeout,
            )
            return "await_reply"
        if order.status is not None and order.status.terminal:
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
            return "park"
        params.update(step_deadline_at=now + self._step_timeout)
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
        params = {
            "channel": placed.channel.value,
            "external_reference": placed.external_reference,
            "order_id": placed.order_id,
            "token": payment_token,
        }
        row = (await session.execute(_CLAIM, params)).first()
        return (row[0], bool(row[1])) if row is not None else None

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


@cache
def _load_statement(step: bool, token: bool) -> Select[Any]:
    """Parameters `order_id`, `stream_id`. Outer joins from a one-row key, so that an order without a
    stream still gets its step and token columns (in a row without an event)."""
    key = select(bindparam("order_id", type_=Uuid).label("order_id")).subquery("k")
    columns: list[ColumnElement[Any]] = [events_table.c.version, events_table.c.envelope]
    source = key.outerjoin(events_table, events_table.c.stream_id == bindparam("stream_id"))
    if step:
        columns += [saga_steps.c.command_type, saga_steps.c.state, saga_steps.c.updated_at]
        source = source.outerjoin(saga_steps, saga_steps.c.order_id == key.c.order_id)
    if token:
        columns.append(payment_tokens.c.token)
        source = source.outerjoin(payment_tokens, payment_tokens.c.order_id == key.c.order_id)
    return select(*columns).select_from(source).order_by(events_table.c.version)


def _claim() -> CompoundSelect[Any]:
    """Parameters `channel`, `external_reference`, `order_id`, `token`."""
    claim = (
        insert(order_references)
        .values(
            channel=bindparam("channel"),
            external_reference=bindparam("external_reference"),
            order_id=bindparam("order_id"),
        )
        .on_conflict_do_nothing(constraint="pk_order_references")
        .returning(order_references.c.order_id)
        .cte("claim")
    )
    keep_token = (
        insert(payment_tokens)
        .from_select(["order_id", "token"], select(claim.c.order_id, bindparam("token", type_=String)))
        .cte("keep_token")
    )
    # The holder's row is read from the statement's snapshot, which does not hold this claim's insert.
    holder = select(order_references.c.order_id, false()).where(
        order_references.c.channel == bindparam("channel"),
        order_references.c.external_reference == bindparam("external_reference"),
    )
    return select(claim.c.order_id, true()).union_all(holder).add_cte(keep_token)


_CLAIM = _claim()


def _await_reply() -> UpdateBase:
    values = {
        "awaiting": bindparam("step_awaiting"),
        "command_type": bindparam("step_command_type"),
        "command": bindparam("step_command"),
        "attempts": 1,
        "deadline_at": bindparam("step_deadline_at"),
        "state": "waiting",
        "updated_at": bindparam("step_now"),
    }
    statement = insert(saga_steps).values(order_id=bindparam("step_order_id"), **values)
    return statement.on_conflict_do_update(index_elements=["order_id"], set_={k: statement.excluded[k] for k in values})


_STEP = saga_steps.c.order_id == bindparam("step_order_id")
_WRITES: dict[str, list[UpdateBase]] = {
    "summary": [UPSERT],
    # The step's writes, with parameters `step_order_id`, `step_now` and those they name.
    "await_reply": [_await_reply()],
    "end": [
        delete(saga_steps).where(_STEP),
        delete(payment_tokens).where(payment_tokens.c.order_id == bindparam("step_order_id")),
    ],
    "park": [update(saga_steps).where(_STEP).values(state="parked", updated_at=bindparam("step_now"))],
    "move_deadline": [
        update(saga_steps)
        .where(_STEP)
        .values(deadline_at=bindparam("step_deadline_at"), updated_at=bindparam("step_now"))
    ],
}


@cache
def _together(names: tuple[str, ...]) -> Executable:
    """The named writes as one statement: each a data-modifying CTE (PostgreSQL runs every one of them,
    referenced or not, on one snapshot; they touch different tables)."""
    writes = [w for name in names for w in _WRITES[name]]
    if len(writes) == 1:
        return writes[0]
    return select(true()).add_cte(*(w.cte(f"write_{i}") for i, w in enumerate(writes)))
