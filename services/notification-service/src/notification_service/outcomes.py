"""How a message's attempt ends, as a change of its send-log row: `sent` with `NotificationSent`,
`failed` with `NotificationFailed`, or `pending` again after a backoff (and `failed` once the attempts
ran out). The published events are queued on the caller's transaction, so a row and its event commit
together (the runtime writes a transaction's outbox rows in one INSERT at its commit)."""

import dataclasses
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from notification_service.adapters.repository import Delivery, DeliveryChange
from notification_service.domain.notifications import CHANNEL_EMAIL, CHANNEL_SMS
from oms_events import Message, MessageRegistry
from oms_events.messages import NotificationFailed, NotificationSent
from oms_runtime.outbox import Outbox


class OutcomeRecorder:
    def __init__(
        self,
        registry: MessageRegistry,
        *,
        producer_name: str,
        max_attempts: int,
        retry_base_s: float,
        retry_max_s: float,
    ) -> None:
        self._registry = registry
        self._producer_name = producer_name
        self.max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._outbox = Outbox()

    def backoff(self, attempts: int) -> timedelta:
        """The wait before the next attempt: the base, doubling per attempt made, capped."""
        return timedelta(seconds=min(self._retry_max_s, self._retry_base_s * 2 ** max(0, attempts - 1)))

    async def sent(
        self, session: Any, row: Delivery, sending: DeliveryChange, provider_message_id: str, now: datetime
    ) -> DeliveryChange:
        await self._emit(
            session,
            NotificationSent(
                order_id=row.order_id,
                notification_id=row.notification_id,
                kind=row.kind,
                channel=CHANNEL_EMAIL if row.channel == CHANNEL_EMAIL else CHANNEL_SMS,
                recipient_masked=row.recipient_masked,
            ),
            row.source_event_id,
        )
        return dataclasses.replace(
            sending,
            status="sent",
            provider_message_id=provider_message_id[:300],
            sent_at=now,
            lease_until=None,
            error=None,
        )

    async def failed(
        self, session: Any, row: Delivery, current: DeliveryChange, reason_code: str, error: str
    ) -> DeliveryChange:
        """`failed` for good, and `NotificationFailed`."""
        await self._emit(
            session,
            NotificationFailed(
                order_id=row.order_id,
                notification_id=row.notification_id,
                kind=row.kind,
                channel=CHANNEL_EMAIL if row.channel == CHANNEL_EMAIL else CHANNEL_SMS,
                recipient_masked=row.recipient_masked,
                reason_code=reason_code,
                reason=error[:500],
                attempts=current.attempts,
            ),
            row.source_event_id,
        )
        return dataclasses.replace(
            current, status="failed", status_reason=reason_code, error=error[:2000], lease_until=None
        )

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    async def retry_or_give_up(
        self,
        session: Any,
        row: Delivery,
        current: DeliveryChange,
        error: str,
        now: datetime,
        *,
        reason_code: str = "gave_up",
    ) -> DeliveryChange:
        """Back to `pending` after the backoff; `failed` (`reason_code`) once the attempts ran out."""
        if self.gives_up(current.attempts):
            return await self.failed(
                session, row, current, reason_code, f"{current.attempts} attempts failed; last: {error}"
            )
        return dataclasses.replace(
            current,
            status="pending",
            due_at=now + self.backoff(current.attempts),
            lease_until=None,
            error=error[:2000],
        )

    async def _emit(self, session: Any, message: Message, source_event_id: UUID) -> None:
        envelope = self._registry.wrap(message, producer=self._producer_name)
        envelope = envelope.model_copy(update={"causation_id": source_event_id})
        await self._outbox.add(session, message.topic, message.key, envelope)
