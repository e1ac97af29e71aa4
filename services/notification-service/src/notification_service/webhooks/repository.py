"""Reading and writing the webhook tables; every method runs in the caller's transaction."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.webhooks.domain import DeliveryStatus, FailureOutcome, SubscriptionStatus
from notification_service.webhooks.tables import attempts, deliveries, subscriptions


@dataclass(frozen=True, slots=True)
class Subscription:
    id: UUID
    url: str
    event_types: tuple[str, ...]
    description: str
    status: SubscriptionStatus
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    """A delivery as the log shows it (without the body: the receiver has it)."""

    id: UUID
    seq: int
    event_id: UUID
    event_type: str
    subject: str
    status: DeliveryStatus
    attempts: int
    redeliveries: int
    next_attempt_at: datetime | None
    last_http_status: int | None
    last_duration_ms: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery handed to the sender for one attempt, with what it needs to send it."""

    id: UUID
    subscription_id: UUID
    event_id: UUID
    attempt: int
    body: bytes
    give_up_at: datetime | None
    url: str
    secret: str
    failing_since: datetime | None


_SUBSCRIPTION_COLUMNS = [c for c in subscriptions.c if c.name != "secret"]

# Due rows of enabled subscriptions whose subject has no earlier pending row (in order per subscription
# and subject; rows another sender holds are skipped, and so are the rows queued behind them).
_CLAIM = text(
    """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.status = 'enabled'
    WHERE d.status = 'pending' AND d.next_attempt_at <= CAST(:now AS timestamptz)
      AND (d.lease_until IS NULL OR d.lease_until <= CAST(:now AS timestamptz))
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries e
          WHERE e.subscription_id = d.subscription_id AND e.subject = d.subject
            AND e.status = 'pending' AND e.seq < d.seq
      )
    ORDER BY d.next_attempt_at, d.seq
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, lease_until = CAST(:lease_until AS timestamptz),
    last_attempt_at = CAST(:now AS timestamptz)
FROM due, webhook_subscriptions s
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.subscription_id, d.event_id, d.attempts, d.body, d.give_up_at, s.url, s.secret, s.failing_since
"""
)

_QUEUE_FOR_EVENT = text(
    """
INSERT INTO webhook_deliveries
    (id, subscription_id, event_id, event_type, subject, body, status, next_attempt_at, created_at)
SELECT gen_random_uuid(), s.id, CAST(:event_id AS uuid), CAST(:event_type AS varchar), CAST(:subject AS varchar),
       CAST(:body AS bytea), 'pending', CAST(:now AS timestamptz), CAST(:now AS timestamptz)
FROM webhook_subscriptions s
WHERE CAST(:event_type AS varchar) = ANY(s.event_types) AND s.created_at <= CAST(:occurred_at AS timestamptz)
ON CONFLICT (subscription_id, event_id) DO NOTHING
RETURNING id
"""
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        event_types=tuple(row.event_types),
        description=row.description,
        status=SubscriptionStatus(row.status),
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class WebhookRepository:
    # ------------------------------------------------------------ subscriptions

    async def create(
        self,
        session: AsyncSession,
        *,
        url: str,
        event_types: list[str],
        secret: str,
        description: str,
        created_by: str,
        now: datetime,
    ) -> Subscription:
        row = (
            await session.execute(
                insert(subscriptions)
                .values(
                    id=uuid4(),
                    url=url,
                    event_types=event_types,
                    secret=secret,
                    description=description,
                    status=SubscriptionStatus.ENABLED.value,
                    created_by=created_by,
                    created_at=now,
                )
                .returning(*_SUBSCRIPTION_COLUMNS)
            )
        ).one()
        return _subscription(row)

    async def get(self, session: AsyncSession, subscription_id: UUID) -> Subscription | None:
        row = (
            await session.execute(select(*_SUBSCRIPTION_COLUMNS).where(subscriptions.c.id == subscription_id))
        ).one_or_none()
        return _subscription(row) if row is not None else None

    async def all(self, session: AsyncSession) -> list[Subscription]:
        rows = await session.execute(select(*_SUBSCRIPTION_COLUMNS).order_by(subscriptions.c.created_at))
        return [_subscription(r) for r in rows]

    async def delete(self, session: AsyncSession, subscription_id: UUID) -> bool:
        result = await session.execute(
            delete(subscriptions).where(subscriptions.c.id == subscription_id).returning(subscriptions.c.id)
        )
        return result.one_or_none() is not None

    async def enable(self, session: AsyncSession, subscription_id: UUID, now: datetime) -> Subscription | None:
        """Enabled again: the failure clock starts over, and what waited is due now (with a fresh window)."""
        row = (
            await session.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id)
                .values(
                    status=SubscriptionStatus.ENABLED.value, failing_since=None, disabled_at=None, disabled_reason=None
                )
                .returning(*_SUBSCRIPTION_COLUMNS)
            )
        ).one_or_none()
        if row is None:
            return None
        await session.execute(
            update(deliveries)
            .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == DeliveryStatus.PENDING.value)
            .values(next_attempt_at=now, give_up_at=None)
        )
        return _subscription(row)

    async def wanted_types(self, session: AsyncSession) -> frozenset[str]:
        rows = await session.execute(select(func.unnest(subscriptions.c.event_types)).distinct())
        return frozenset(r[0] for r in rows)

    # ------------------------------------------------------------ deliveries

    async def queue_event(
        self,
        session: AsyncSession,
        *,
        event_id: UUID,
        event_type: str,
        subject: str,
        occurred_at: datetime,
        body: bytes,
        now: datetime,
    ) -> int:
        """A delivery for every subscription that wants the event and existed when it occurred; how many."""
        result = await session.execute(
            _QUEUE_FOR_EVENT,
            {
                "event_id": event_id,
                "event_type": event_type,
                "subject": subject,
                "occurred_at": occurred_at,
                "body": body,
                "now": now,
            },
        )
        return len(result.all())

    async def claim(
        self, session: AsyncSession, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        rows = await session.execute(_CLAIM, {"now": now, "lease_until": lease_until, "limit": limit})
        return [
            ClaimedDelivery(
                id=r.id,
                subscription_id=r.subscription_id,
                event_id=r.event_id,
                attempt=r.attempts,
                body=r.body,
                give_up_at=r.give_up_at,
                url=r.url,
                secret=r.secret,
                failing_since=r.failing_since,
            )
            for r in rows
        ]

    async def record_attempt(
        self,
        session: AsyncSession,
        claimed: ClaimedDelivery,
        *,
        started_at: datetime,
        duration_ms: int,
        outcome: str,
        http_status: int | None,
        error: str | None,
    ) -> None:
        await session.execute(
            insert(attempts).values(
                delivery_id=claimed.id,
                attempt=claimed.attempt,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=outcome,
                http_status=http_status,
                error=error,
            )
        )

    async def mark_delivered(
        self, session: AsyncSession, claimed: ClaimedDelivery, *, now: datetime, http_status: int, duration_ms: int
    ) -> None:
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == claimed.id)
            .values(
                status=DeliveryStatus.DELIVERED.value,
                delivered_at=now,
                lease_until=None,
                give_up_at=None,
                last_http_status=http_status,
                last_duration_ms=duration_ms,
                last_error=None,
            )
        )
        await session.execute(
            update(subscriptions)
            .where(subscriptions.c.id == claimed.subscription_id, subscriptions.c.failing_since.is_not(None))
            .values(failing_since=None)
        )

    async def mark_failed(
        self,
        session: AsyncSession,
        claimed: ClaimedDelivery,
        outcome: FailureOutcome,
        *,
        http_status: int | None,
        duration_ms: int,
        error: str,
        now: datetime,
    ) -> None:
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == claimed.id)
            .values(
                status=(DeliveryStatus.FAILED if outcome.give_up else DeliveryStatus.PENDING).value,
                next_attempt_at=outcome.next_attempt_at if outcome.next_attempt_at is not None else now,
                give_up_at=outcome.give_up_at,
                lease_until=None,
                last_http_status=http_status,
                last_duration_ms=duration_ms,
                last_error=error,
            )
        )
        values: dict[str, Any] = {"failing_since": func.coalesce(subscriptions.c.failing_since, outcome.failing_since)}
        if outcome.disable_endpoint:
            values |= {
                "status": SubscriptionStatus.DISABLED.value,
                "disabled_at": now,
                "disabled_reason": f"failing since {outcome.failing_since.isoformat()}; last error: {error}"[:1000],
            }
        await session.execute(update(subscriptions).where(subscriptions.c.id == claimed.subscription_id).values(values))

    async def redeliver(self, session: AsyncSession, subscription_id: UUID, delivery_id: UUID, now: datetime) -> str:
        """Queues a settled delivery again: `queued`, `pending` (it is not settled yet) or `not_found`."""
        row = (
            await session.execute(
                select(deliveries.c.status).where(
                    deliveries.c.id == delivery_id, deliveries.c.subscription_id == subscription_id
                )
            )
        ).one_or_none()
        if row is None:
            return "not_found"
        if row.status == DeliveryStatus.PENDING.value:
            return "pending"
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=now,
                give_up_at=None,
                lease_until=None,
                redeliveries=deliveries.c.redeliveries + 1,
            )
        )
        return "queued"

    async def log(
        self, session: AsyncSession, subscription_id: UUID, *, before_seq: int | None, limit: int
    ) -> list[DeliveryEntry]:
        """The subscription's deliveries, newest first, each with its attempts (oldest first)."""
        query = select(*[c for c in deliveries.c if c.name != "body"]).where(
            deliveries.c.subscription_id == subscription_id
        )
        if before_seq is not None:
            query = query.where(deliveries.c.seq < before_seq)
        rows = (await session.execute(query.order_by(deliveries.c.seq.desc()).limit(limit))).all()
        by_delivery: dict[UUID, list[Attempt]] = {r.id: [] for r in rows}
        if rows:
            for a in await session.execute(
                select(attempts).where(attempts.c.delivery_id.in_(list(by_delivery))).order_by(attempts.c.id)
            ):
                by_delivery[a.delivery_id].append(
                    Attempt(a.attempt, a.started_at, a.duration_ms, a.outcome, a.http_status, a.error)
                )
        return [
            DeliveryEntry(
                id=r.id,
                seq=r.seq,
                event_id=r.event_id,
                event_type=r.event_type,
                subject=r.subject,
                status=DeliveryStatus(r.status),
                attempts=r.attempts,
                redeliveries=r.redeliveries,
                next_attempt_at=r.next_attempt_at if r.status == DeliveryStatus.PENDING.value else None,
                last_http_status=r.last_http_status,
                last_duration_ms=r.last_duration_ms,
                last_error=r.last_error,
                delivered_at=r.delivered_at,
                created_at=r.created_at,
                attempt_log=tuple(by_delivery[r.id]),
            )
            for r in rows
        ]
