"""Use cases of order-service: place an order, drive the saga on every reply, read an order."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import ContractViolationError, Envelope, Message, MessageRegistry
from oms_events.messages import (
    Command,
    FulfilmentCancelled,
    FulfilmentFailed,
    ItemsRestocked,
    OrderIntakeRejected,
    OrderPlaced,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    ReservationExpired,
    ReturnAuthorised,
    ReturnInspected,
    ReturnReceived,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentInTransit,
    ShipmentOutForDelivery,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipmentReturnedToSender,
    Shipped,
    StockBackordered,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    SubmitOrder,
)
from oms_events.values import Channel, FieldProblem, OrderSubmission, order_id_for
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from oms_runtime.metrics import record_saga_step
from oms_runtime.outbox import Outbox
from oms_runtime.periodic import PeriodicTask
from oms_runtime.tracing import current_trace_context, new_trace
from oms_runtime.use_cases import UseCaseRunner, local_context
from order_service.adapters.order_repository import LoadedOrder, OrderRepository
from order_service.adapters.tables import saga_steps
from order_service.domain.order import Decision, Order, OrderStateError, Step
from order_service.domain.saga import next_deadline_s
from order_service.views import OrderView, PendingStepView, SagaView, order_view

log = get_logger(__name__)

SERVICE = "order-service"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlacementResult:
    order_id: UUID
    created: bool
    placed: LoadedOrder | None = None
    """The order this placement created, as recorded (None when the reference had an order already)."""


class OrderNotFoundError(Exception):
    pass


def _api_context(session: AsyncSession, registry: MessageRegistry) -> MessageContext:
    """The context of work that starts at an API call or a timer: no message caused it."""
    return local_context(session, SERVICE, registry)


R = TypeVar("R", bound=Message)


class OrderSaga:
    """Reacts to the participants' replies: each one moves the order and sends the next command."""

    def __init__(self, repository: OrderRepository, hold_above_minor: int = 0) -> None:
        self._repo = repository
        self._hold_above_minor = hold_above_minor

    @property
    def repository(self) -> OrderRepository:
        return self._repo

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(StockReserved, self.on_stock_reserved)
        # Every other reply: load the order, let it decide, save the decision.
        handlers.register(StockReservationFailed, self._reacting(Order.on_stock_reservation_failed))
        handlers.register(PaymentCaptured, self._reacting(Order.on_payment_captured))
        handlers.register(PaymentDeclined, self._reacting(Order.on_payment_declined))
        handlers.register(PaymentReviewRequired, self._reacting(Order.on_payment_review_required))
        handlers.register(StockReleased, self._reacting(Order.on_stock_released))
        handlers.register(Shipped, self._reacting(Order.on_shipped))
        handlers.register(PaymentRefunded, self._reacting(Order.on_payment_refunded))
        handlers.register(PaymentRefundFailed, self._reacting(Order.on_payment_refund_failed))
        handlers.register(StockBackordered, self._reacting(Order.on_stock_backordered))
        handlers.register(ReservationExpired, self._reacting(Order.on_reservation_expired))
        handlers.register(FulfilmentFailed, self._reacting(Order.on_fulfilment_failed))
        handlers.register(FulfilmentCancelled, self._reacting(Order.on_fulfilment_cancelled))
        handlers.register(ShipmentCancellationRefused, self._reacting(Order.on_cancellation_refused))
        handlers.register(ReturnAuthorised, self._reacting(Order.on_return_authorised))
        handlers.register(ReturnReceived, self._reacting(Order.on_return_received))
        handlers.register(ReturnInspected, self._reacting(Order.on_return_inspected))
        handlers.register(ItemsRestocked, self._reacting(Order.on_items_restocked))
        # A shipment's progress, for the order's tracking view.
        for progress in (
            ShipmentCreated,
            ShipmentPickingStarted,
            ShipmentPicked,
            ShipmentPacked,
            ShipmentCancelled,
            ShipmentInTransit,
            ShipmentOutForDelivery,
            ShipmentDelivered,
            ShipmentDeliveryFailed,
            ShipmentReturnedToSender,
        ):
            handlers.register(progress, self._on_progress)
        handlers.batch_scope = _SagaBatch(self._repo)
        return handlers

    async def _on_progress(self, ctx: MessageContext, reply: Message) -> None:
        # An automatic warehouse's steps before Shipped are not recorded (Order.on_shipment_progress): they
        # are skipped here without loading the order, which keeps load runs as cheap as before.
        if getattr(reply, "mode", None) == "automatic":
            return
        loaded = await self._order(ctx, reply.order_id)
        await self._repo.save(ctx, loaded, loaded.order.on_shipment_progress(reply), _now())

    def _reacting(self, decide: Callable[[Order, R], Decision]) -> Callable[[MessageContext, R], Awaitable[None]]:
        async def react(ctx: MessageContext, reply: R) -> None:
            loaded = await self._order(ctx, reply.order_id, step=True)
            _observe_step(loaded, reply)
            await self._repo.save(ctx, loaded, decide(loaded.order, reply), _now())

        return react

    async def _order(
        self, ctx: MessageContext, order_id: UUID, *, step: bool = False, token: bool = False
    ) -> LoadedOrder:
        loaded = await self._repo.load_for_decision(ctx.session, order_id, step=step, token=token)
        if not loaded.order.exists:
            # Not dead-lettered silently: the runtime retries, then parks it with this reason.
            raise OrderStateError(f"reply for unknown order {order_id}")
        return loaded

    async def on_stock_reserved(self, ctx: MessageContext, reply: StockReserved) -> None:
        loaded = await self._order(ctx, reply.order_id, step=True, token=True)
        _observe_step(loaded, reply)
        order, token = loaded.order, loaded.payment_token
        if token is None:
            log.info("stock reserved for an order past payment; ignored", status=str(order.status))
            return
        await self._repo.save(ctx, loaded, order.on_stock_reserved(reply, token, self._hold_above_minor), _now())


class _SagaBatch:
    """The replies of one batch share their orders and write once (`order_service.adapters.order_batch`)."""

    def __init__(self, repository: OrderRepository) -> None:
        self._repo = repository

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None:
        await self._repo.begin_batch(
            session,
            [
                m.order_id
                for m in messages
                # An automatic warehouse's progress is not recorded (`_on_progress`): no need to load for it.
                if isinstance(getattr(m, "order_id", None), UUID) and getattr(m, "mode", None) != "automatic"
            ],
        )

    async def end(self, session: AsyncSession) -> None:
        await self._repo.end_batch(session)


def _observe_step(loaded: LoadedOrder, reply: Message) -> None:
    """Metrics hook: the reply ends the step the saga waits on (latency since its command was sent)."""
    step = loaded.step
    if step is None or step.state != "waiting":
        return
    record_saga_step(step.command_type, reply.message_type, (_now() - step.updated_at).total_seconds())


class OrderCommands:
    """Cancels and operator actions from the API, each one transaction like a saga reply."""

    def __init__(self, db: Database, repository: OrderRepository, registry: MessageRegistry) -> None:
        self._repo = repository
        # A saga reply for the same order may commit first: then decide again on the new state.
        self._use_cases = UseCaseRunner(db, registry, SERVICE)

    async def _act(
        self,
        order_id: UUID,
        decide: Callable[[LoadedOrder, AsyncSession], Awaitable[Decision]],
        *,
        token: bool = False,
    ) -> None:
        async def use_case(ctx: MessageContext) -> None:
            loaded = await self._repo.load_for_decision(ctx.session, order_id, token=token)
            if not loaded.order.exists:
                raise OrderNotFoundError(str(order_id))
            decision = await decide(loaded, ctx.session)
            await self._repo.save(ctx, loaded, decision, _now())

        await self._use_cases.run(use_case)

    async def cancel(self, order_id: UUID, reason: str, requested_by: str) -> None:
        async def decide(loaded: LoadedOrder, _: AsyncSession) -> Decision:
            return loaded.order.request_cancel(reason, requested_by)

        await self._act(order_id, decide)
        log.info("order cancellation requested", order_id=str(order_id), requested_by=requested_by)

    async def operator_action(
        self, order_id: UUID, action: str, operator: str, note: str, refund: str | None = None
    ) -> None:
        async def decide(loaded: LoadedOrder, session: AsyncSession) -> Decision:
            parked = await self._repo.parked_command(session, order_id) if action == "retry" else None
            return loaded.order.operator_action(action, operator, note, parked, refund)

        await self._act(order_id, decide)
        log.info("operator action", order_id=str(order_id), action=action, operator=operator, refund=refund)

    async def request_return(
        self, order_id: UUID, return_id: UUID, wanted: dict[str, int], reason: str, requested_by: str
    ) -> None:
        async def decide(loaded: LoadedOrder, _: AsyncSession) -> Decision:
            return loaded.order.request_return(return_id, wanted, reason, requested_by)

        await self._act(order_id, decide)
        log.info("return requested", order_id=str(order_id), return_id=str(return_id), requested_by=requested_by)

    async def put_on_hold(self, order_id: UUID, reason: str, held_by: str) -> None:
        async def decide(loaded: LoadedOrder, _: AsyncSession) -> Decision:
            return loaded.order.put_on_hold(reason, held_by)

        await self._act(order_id, decide)
        log.info("order put on hold", order_id=str(order_id), held_by=held_by)

    async def release_hold(self, order_id: UUID, released_by: str, note: str) -> None:
        async def decide(loaded: LoadedOrder, _: AsyncSession) -> Decision:
            # Kept until the order is final, for the capture that the release sends.
            return loaded.order.release_hold(released_by, note, loaded.payment_token)

        await self._act(order_id, decide, token=True)
        log.info("order hold released", order_id=str(order_id), released_by=released_by)


def order_placed(submission: OrderSubmission, order_id: UUID) -> OrderPlaced:
    """The first event of an order, from a submission that passed the shared validation."""
    return OrderPlaced(
        order_id=order_id,
        channel=submission.channel,
        external_reference=submission.external_reference,
        customer=submission.customer,
        lines=submission.lines,
        currency=submission.currency,
        total_minor=submission.total_minor,
        shipping_address=submission.shipping_address,
        delivery_method=submission.delivery_method,
        billing_address=submission.billing_address,
        allow_backorder=submission.allow_backorder,
    )


class PlacementRecorder:
    """Places an order inside the caller's transaction; the one placement logic of HTTP and intake.

    A channel + external reference that already has an order (placed by either path) refers to that
    order and places nothing.
    """

    def __init__(self, repository: OrderRepository) -> None:
        self._repo = repository

    async def place(self, ctx: MessageContext, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        claimed = await self._repo.claim_reference(ctx.session, placed, payment_token)
        if claimed is None:
            # Lost a race with the same submission: the winner's order is the order. Under READ
            # COMMITTED the claim waited for the winner's commit, so a new read sees its row.
            existing = await self._repo.find_by_reference(ctx.session, placed.channel.value, placed.external_reference)
            if existing is None:
                raise _ReferenceTakenError
            return PlacementResult(existing, created=False)
        holder, created = claimed
        if not created:
            return PlacementResult(holder, created=False)
        loaded = LoadedOrder.new(placed.order_id)
        await self._repo.save(ctx, loaded, Order.place(placed), _now())
        return PlacementResult(placed.order_id, created=True, placed=loaded)

    async def place_new(self, ctx: MessageContext, placed: OrderPlaced, payment_token: str) -> PlacementResult | None:
        """The placement of an order whose reference is expected to be new, in one statement (the claim,
        the events, the read models and the saga's step); None when the reference was held: the caller
        rolls the transaction back and places with `place`, which answers with the holder."""
        loaded = LoadedOrder.new(placed.order_id)
        if await self._repo.place(ctx, loaded, Order.place(placed), _now(), payment_token):
            return PlacementResult(placed.order_id, created=True, placed=loaded)
        return None


class OrderPlacement:
    """Places orders from the API: one transaction of its own records the order and its first command."""

    def __init__(self, db: Database, repository: OrderRepository, registry: MessageRegistry) -> None:
        self._db = db
        self._repo = repository
        self._registry = registry
        self._recorder = PlacementRecorder(repository)

    async def place(self, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        # Most submissions are new: one statement places them. A resubmission (its reference held) rolls
        # that back and is answered by the claim alone, in a second transaction.
        try:
            async with self._db.transaction() as session:
                found = await self._recorder.place_new(self._context(session), placed, payment_token)
                if found is None:
                    raise _ReferenceHeldError
            result = found
        except _ReferenceHeldError:
            async with self._db.transaction() as session:
                result = await self._recorder.place(self._context(session), placed, payment_token)
        if result.created:
            log.info("order placed", order_id=str(placed.order_id), channel=placed.channel.value)
        return result

    async def place_once(self, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        try:
            return await self.place(placed, payment_token)
        except _ReferenceTakenError:
            async with self._db.transaction() as session:
                existing = await self._repo.find_by_reference(session, placed.channel.value, placed.external_reference)
            assert existing is not None
            return PlacementResult(existing, created=False)

    def _context(self, session: AsyncSession) -> MessageContext:
        return _api_context(session, self._registry)


class _ReferenceTakenError(Exception):
    pass


class _ReferenceHeldError(Exception):
    """The reference of a placement expected to be new had an order: roll back, place with the claim alone."""


class OrderIntake:
    """Orders submitted on the intake topic (`SubmitOrder`), placed in the consumer's transaction.

    Submissions that fail validation never reach `on_submit_order`: the runtime calls
    `on_invalid_submission`, which answers the sender with `OrderIntakeRejected`, and dead-letters them.
    """

    def __init__(self, repository: OrderRepository) -> None:
        self._recorder = PlacementRecorder(repository)

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(SubmitOrder, self.on_submit_order)
        return handlers

    async def on_submit_order(self, ctx: MessageContext, submission: SubmitOrder) -> None:
        result = await self._recorder.place(
            ctx, order_placed(submission, submission.order_id), submission.payment_token
        )
        if result.created:
            log.info("order placed from intake", order_id=str(result.order_id), channel=submission.channel.value)
        else:
            log.info(
                "intake submission refers to an existing order; nothing placed",
                order_id=str(result.order_id),
                submitted_order_id=str(submission.order_id),
                channel=submission.channel.value,
                external_reference=submission.external_reference,
            )

    async def on_invalid_submission(
        self, ctx: MessageContext, envelope: Envelope, error: ContractViolationError
    ) -> None:
        payload = envelope.payload
        channel = _text(payload.get("channel"))
        reference = _text(payload.get("external_reference"))
        order_id = _rejection_order_id(payload, channel, reference, envelope.correlation_id)
        if order_id is None:
            log.warning("invalid intake submission without an order id to answer to", reason=error.reason)
            return
        errors = error.errors or [FieldProblem(field="(root)", message=error.reason)]
        await ctx.emit(
            OrderIntakeRejected(order_id=order_id, channel=channel, external_reference=reference, errors=errors)
        )
        log.warning(
            "intake submission rejected",
            order_id=str(order_id),
            channel=channel,
            external_reference=reference,
            fields=[e.field for e in errors],
        )


def _text(value: object, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _rejection_order_id(
    payload: dict[str, Any], channel: str | None, reference: str | None, correlation_id: str
) -> UUID | None:
    """The id the sender keyed its submission by; else the one it should have; else the envelope's."""
    submitted = _uuid(payload.get("order_id"))
    if submitted is not None:
        return submitted
    if channel in {c.value for c in Channel} and reference is not None:
        return order_id_for(channel, reference)
    return _uuid(correlation_id)


_OVERDUE = (
    select(saga_steps.c.order_id)
    .where(saga_steps.c.state == "waiting", saga_steps.c.deadline_at < bindparam("now"))
    .order_by(saga_steps.c.deadline_at)
    .limit(100)
)


class DeadlineSweeper:
    """Re-sends a saga's command whose reply is overdue; parks the saga when re-sending is exhausted.

    The deadlines live in the database, so they survive a restart. Re-sending is safe because every
    participant answers a repeated command with its first answer.
    """

    def __init__(
        self,
        db: Database,
        repository: OrderRepository,
        registry: MessageRegistry,
        *,
        step_timeout: timedelta,
        max_attempts: int,
        interval_s: float,
    ) -> None:
        self._db = db
        self._repo = repository
        self._registry = registry
        self._step_timeout = step_timeout
        self._max_attempts = max_attempts
        self._outbox = Outbox()
        self._loop = PeriodicTask("saga-deadlines", self.sweep, interval_s=interval_s)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self, now: datetime | None = None) -> int:
        """Re-sends or compensates every step overdue at `now` (the clock, unless a test moves time)."""
        now = now or _now()
        # Every second, mostly finding nothing: one statement outside a transaction (no BEGIN and COMMIT
        # round trips); each overdue step is then handled in a transaction of its own, locked.
        async with self._db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            overdue = (await autocommit.scalars(_OVERDUE, {"now": now})).all()
        handled = 0
        for order_id in overdue:
            try:
                async with self._db.transaction() as session:
                    row = (
                        (
                            await session.execute(
                                select(saga_steps)
                                .where(
                                    saga_steps.c.order_id == order_id,
                                    saga_steps.c.state == "waiting",
                                    saga_steps.c.deadline_at < now,
                                )
                                .with_for_update(skip_locked=True)
                            )
                        )
                        .mappings()
                        .first()
                    )
                    if row is not None:
                        await self._overdue(session, row, now)
                        handled += 1
            except ConcurrencyError:
                continue  # a reply for this order just committed: the next sweep sees the new state
        return handled

    async def _overdue(self, session: AsyncSession, row: Any, now: datetime) -> None:
        # No request or message starts this work, so without a span of its own the re-sent command (or the
        # compensation after the last one) would carry no trace context and the participants' handling of
        # it would start unrelated traces. The saga row keeps no trace context: a new trace, with the order id.
        with new_trace(
            f"{row['command_type']} overdue",
            row["order_id"],
            {"oms.saga.command": row["command_type"], "oms.saga.attempts": row["attempts"]},
        ):
            await self._handle_overdue(session, row, now)

    async def _handle_overdue(self, session: AsyncSession, row: Any, now: datetime) -> None:
        order_id: UUID = row["order_id"]
        attempts: int = row["attempts"]
        command_cls = self._registry.message_class(row["command_type"])
        command = command_cls.model_validate(row["command"])
        assert isinstance(command, Command)
        if attempts >= self._max_attempts:
            # Every re-send went unanswered: compensate, or park the order for an operator.
            loaded = await self._repo.load_for_decision(session, order_id)
            order = loaded.order
            ctx = _api_context(session, self._registry)
            decision = order.on_step_timed_out(Step(row["command_type"]), attempts, command)
            record_saga_step(row["command_type"], "timed_out", (now - row["updated_at"]).total_seconds())
            if decision.empty:
                await session.execute(delete(saga_steps).where(saga_steps.c.order_id == order_id))
                return
            await self._repo.save(ctx, loaded, decision, now)
            log.error(
                "saga step timed out",
                order_id=str(order_id),
                step=row["command_type"],
                attempts=attempts,
                status=str(order.status),
            )
            return
        envelope = self._registry.wrap(command, producer=SERVICE, trace_context=current_trace_context())
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
        timeline = [(s.envelope, self._registry.decode(s.envelope)) for s in stored]
        return order_view(Order.from_history(order_id, (event for _, event in timeline)), timeline)

    async def saga_view(self, order_id: UUID) -> SagaView:
        """The step the saga waits on (command, sends, deadline), read in one statement; an order
        without one is told from an unknown order by its stream."""
        async with self._db.transaction() as session:
            row = (await session.execute(select(saga_steps).where(saga_steps.c.order_id == order_id))).first()
            if row is None and not await self._repo.history(session, order_id):
                raise OrderNotFoundError(str(order_id))
        step = None
        if row is not None:
            step = PendingStepView(
                awaiting=row.awaiting,
                command=row.command_type,
                attempts=row.attempts,
                deadline_at=row.deadline_at,
                state=row.state,
                updated_at=row.updated_at,
            )
        return SagaView(order_id=order_id, pending_step=step)
