"""A payment's stream and its reconciliation rows, in statements built once.

A database statement costs about a millisecond all in (SQLAlchemy, asyncpg, a round trip, PostgreSQL).
So a decision reads the payment's stream in one statement, and writes its events and the money
movements they carry (the reconciliation read model) together, as data-modifying CTEs of one more,
rows unnested from arrays so that one statement text serves any number of events. The events' unique
(stream, version) is the stream's optimistic concurrency, as in the runtime's event store: a lost race
raises ConcurrencyError, and the message is decided again in a new transaction.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope, Message
from oms_events.messages import PaymentCaptured, PaymentRefunded
from oms_runtime.eventstore import ConcurrencyError, events_table
from oms_runtime.messaging import MessageContext
from payment_service.domain.payment import STREAM_TYPE, stream_id

_LOAD = (
    select(events_table.c.envelope)
    .where(events_table.c.stream_id == bindparam("stream_id"))
    .order_by(events_table.c.version)
)

_RECORD = text(
    """
WITH appended AS (
    INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope)
    SELECT CAST(:stream_id AS text), CAST(:stream_type AS text), version, event_id, event_type, CAST(envelope AS jsonb)
    FROM unnest(CAST(:versions AS int[]), CAST(:event_ids AS uuid[]), CAST(:event_types AS text[]),
                CAST(:envelopes AS text[]))
         AS e(version, event_id, event_type, envelope)
),
moved AS (
    INSERT INTO payment_movements (event_id, order_id, kind, amount_minor, currency, channel, business_day,
                                   occurred_at)
    SELECT event_id, CAST(:order_id AS uuid), kind, amount_minor, currency, CAST(:channel AS text), business_day, occurred_at
    FROM unnest(CAST(:mv_event_ids AS uuid[]), CAST(:mv_kinds AS text[]), CAST(:mv_amounts AS bigint[]),
                CAST(:mv_currencies AS text[]), CAST(:mv_days AS date[]), CAST(:mv_occurred AS timestamptz[]))
         AS m(event_id, kind, amount_minor, currency, business_day, occurred_at)
    ON CONFLICT (event_id) DO NOTHING
)
SELECT 1
"""
)


class PaymentStore:
    async def load(self, session: AsyncSession, order_id: UUID) -> list[Envelope]:
        """The payment's stream, oldest first."""
        rows = await session.scalars(_LOAD, {"stream_id": stream_id(order_id)})
        return [Envelope.model_validate(envelope) for envelope in rows.all()]

    async def record(
        self, ctx: MessageContext, order_id: UUID, version: int, events: Sequence[Message], channel: str
    ) -> None:
        """Appends the events after `version`, queues them for publishing, and writes the movements of the
        captures and refunds among them, in one statement."""
        params: dict[str, Any] = {
            "stream_id": stream_id(order_id),
            "stream_type": STREAM_TYPE,
            "order_id": order_id,
            "channel": channel,
            "versions": [],
            "event_ids": [],
            "event_types": [],
            "envelopes": [],
            "mv_event_ids": [],
            "mv_kinds": [],
            "mv_amounts": [],
            "mv_currencies": [],
            "mv_days": [],
            "mv_occurred": [],
        }
        for number, event in enumerate(events, start=version + 1):
            envelope = await ctx.emit(event)
            params["versions"].append(number)
            params["event_ids"].append(envelope.event_id)
            params["event_types"].append(envelope.type)
            params["envelopes"].append(envelope.model_dump_json())
            if isinstance(event, PaymentCaptured | PaymentRefunded):
                params["mv_event_ids"].append(envelope.event_id)
                params["mv_kinds"].append("captured" if isinstance(event, PaymentCaptured) else "refunded")
                params["mv_amounts"].append(event.amount_minor)
                params["mv_currencies"].append(event.currency)
                params["mv_days"].append(envelope.occurred_at.date())
                params["mv_occurred"].append(envelope.occurred_at)
        try:
            await ctx.session.execute(_RECORD, params)
        except IntegrityError as exc:
            if "uq_events_stream_version" in str(exc.orig):
                raise ConcurrencyError(stream_id(order_id), version) from exc
            raise
