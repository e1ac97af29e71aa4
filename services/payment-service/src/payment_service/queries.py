"""What the payment API reads: one order's payment history, and the reconciliation report."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from oms_events import MessageRegistry
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from payment_service.adapters.movements import ReconciliationLine, reconciliation
from payment_service.domain.payment import Payment, stream_id


class PaymentNotFoundError(Exception):
    pass


@dataclass(frozen=True)
class HistoryEntry:
    event_id: UUID
    type: str
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class PaymentHistory:
    order_id: UUID
    payment: Payment
    entries: list[HistoryEntry]

    @property
    def status(self) -> str:
        p = self.payment
        if p.captured is not None:
            if p.refunded_minor == 0:
                return "captured"
            return "refunded" if p.refundable_minor == 0 else "partially_refunded"
        if p.decision is not None:
            return "declined"
        if p.review is not None:
            return "review_required"
        return "pending"


class PaymentQueries:
    def __init__(self, db: Database, store: EventStore, registry: MessageRegistry) -> None:
        self._db = db
        self._store = store
        self._registry = registry

    async def history(self, order_id: UUID) -> PaymentHistory:
        async with self._db.transaction() as session:
            stored = await self._store.load(session, stream_id(order_id))
        if not stored:
            raise PaymentNotFoundError(str(order_id))
        events = [self._registry.decode(s.envelope) for s in stored]
        entries = [
            HistoryEntry(s.envelope.event_id, s.envelope.type, s.envelope.occurred_at, e.model_dump(mode="json"))
            for s, e in zip(stored, events, strict=True)
        ]
        return PaymentHistory(order_id, Payment.rebuild(order_id, events), entries)

    async def reconciliation(
        self, date_from: date, date_to: date, channel: str | None, currency: str | None
    ) -> list[ReconciliationLine]:
        async with self._db.transaction() as session:
            return await reconciliation(session, date_from, date_to, channel, currency)
