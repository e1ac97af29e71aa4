"""The delivery loop: claim due deliveries, POST them, record each attempt; in every replica.

A round: (1) claim, in one transaction, up to `concurrency` due deliveries of enabled subscriptions whose
subject has no earlier pending delivery (so one order's events reach a subscriber in order), each with a
lease and its attempt counted; (2) POST them side by side; (3) record, in one transaction, each attempt
in the log and its outcome: `delivered` after a 2xx, else retried with backoff and jitter until the
delivery's window ends (`failed`), and the endpoint disabled when it has failed without a success for
WEBHOOK_DISABLE_AFTER_S.

A delivery is marked delivered only after its 2xx, in (3). If the process dies between the 2xx and (3),
the lease ends and the delivery is sent again with the same `webhook-id`: the one at-least-once case,
which receivers absorb by deduplicating on `webhook-id`. A process that dies before sending loses
nothing either: the lease ends and the delivery is claimed again. A stopping service finishes the round
in hand (bounded by the timeout) and claims no more.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.webhooks.domain import RetryPolicy, TargetRefusedError, after_failure, signed_headers
from notification_service.webhooks.repository import ClaimedDelivery, WebhookRepository
from oms_events.cloudevents import STRUCTURED_CONTENT_TYPE
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.periodic import PeriodicTask

log = get_logger(__name__)

Clock = Callable[[], datetime]

_ERROR_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class AttemptResult:
    started_at: datetime
    duration_ms: int
    http_status: int | None
    error: str | None
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


class WebhookSender:
    def __init__(
        self,
        db: Database,
        repository: WebhookRepository,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        *,
        clock: Clock,
        lease_s: float,
        concurrency: int,
        poll_interval_s: float,
        any_subscriptions: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._any_subscriptions = any_subscriptions
        self._repository = repository
        self._client = client
        self._policy = policy
        self._clock = clock
        self._lease = timedelta(seconds=lease_s)
        self._concurrency = concurrency
        self._stopping = False
        self._task = PeriodicTask(
            "webhook-deliveries",
            self.round,
            interval_s=poll_interval_s,
            again_while_busy=True,
            settle_s=0.05,
            failure_pause_s=1.0,
        )

    def wake(self) -> None:
        self._task.wake()

    async def start(self) -> None:
        self._stopping = False
        await self._task.start()

    async def stop(self) -> None:
        """Finishes the round in hand (its attempts are recorded), claims nothing more."""
        self._stopping = True
        await self._task.stop(drain=True)

    async def close(self) -> None:
        await self._client.aclose()

    async def round(self) -> int:
        """One round; how many deliveries it attempted (a full round is followed by the next at once)."""
        if self._stopping or not self._any_subscriptions():
            # No subscription, no delivery (a subscription's deliveries go with it): no query while idle.
            return 0
        now = self._clock()
        async with self._db.transaction() as session:
            claimed = await self._repository.claim(session, now, now + self._lease, self._concurrency)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._attempt(c) for c in claimed))
        now = self._clock()
        async with self._db.transaction() as session:
            for item, result in zip(claimed, results, strict=True):
                await self._record(session, item, result, now)
        # Busy: the next round at once (a delivery may have let the next event of its subject go).
        return len(claimed)

    async def _attempt(self, claimed: ClaimedDelivery) -> AttemptResult:
        webhook_id = str(claimed.event_id)
        started_at = self._clock()
        started = time.perf_counter()
        headers = {
            "content-type": STRUCTURED_CONTENT_TYPE,
            **signed_headers(claimed.secret, webhook_id, int(time.time()), claimed.body),
        }

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            response = await self._client.post(claimed.url, content=claimed.body, headers=headers)
        except TargetRefusedError as exc:
            return AttemptResult(started_at, took(), None, f"refused: {exc}", refused=True)
        except httpx.TimeoutException as exc:
            return AttemptResult(started_at, took(), None, f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return AttemptResult(started_at, took(), None, f"{type(exc).__name__}: {exc}"[:500])
        except Exception as exc:
            # Whatever else an attempt meets is this attempt's failure, recorded and retried like one.
            log.warning("webhook attempt failed unexpectedly", error=f"{type(exc).__name__}: {exc}")
            return AttemptResult(started_at, took(), None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return AttemptResult(started_at, took(), response.status_code, None)
        # The start of the receiver's answer helps its owner; never more (it is the receiver's text).
        snippet = response.text[:_ERROR_BODY_CHARS].replace("\n", " ")
        return AttemptResult(started_at, took(), response.status_code, f"HTTP {response.status_code}: {snippet}")

    async def _record(
        self, session: AsyncSession, claimed: ClaimedDelivery, result: AttemptResult, now: datetime
    ) -> None:
        outcome_name = "delivered" if result.delivered else ("refused" if result.refused else "failed")
        await self._repository.record_attempt(
            session,
            claimed,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            outcome=outcome_name,
            http_status=result.http_status,
            error=result.error,
        )
        fields = {
            "delivery_id": str(claimed.id),
            "subscription_id": str(claimed.subscription_id),
            "webhook_id": str(claimed.event_id),
            "attempt": claimed.attempt,
            "http_status": result.http_status,
            "duration_ms": result.duration_ms,
        }
        if result.delivered:
            assert result.http_status is not None
            await self._repository.mark_delivered(
                session, claimed, now=now, http_status=result.http_status, duration_ms=result.duration_ms
            )
            log.info("webhook delivered", **fields)
            return
        outcome = after_failure(
            self._policy,
            attempt=claimed.attempt,
            now=now,
            give_up_at=claimed.give_up_at,
            failing_since=claimed.failing_since,
        )
        error = result.error or "failed"
        await self._repository.mark_failed(
            session,
            claimed,
            outcome,
            http_status=result.http_status,
            duration_ms=result.duration_ms,
            error=error,
            now=now,
        )
        if outcome.give_up:
            log.warning("webhook delivery given up", error=error, **fields)
        else:
            log.info(
                "webhook delivery failed; will retry",
                error=error,
                next_attempt_at=str(outcome.next_attempt_at),
                **fields,
            )
        if outcome.disable_endpoint:
            log.warning(
                "webhook endpoint disabled after failing too long", failing_since=str(outcome.failing_since), **fields
            )
