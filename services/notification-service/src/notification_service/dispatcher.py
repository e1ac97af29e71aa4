"""The dispatcher: sends the due messages of the send log, a round at a time.

A round, with its transactions (each one statement per kind of write, whatever the round's size):
1. Claim, in one transaction: the due rows (up to a batch, the longest due first; rows another worker
   holds are skipped) with their contacts and the customers' preferences, in one query. Each row is
   decided there: opted out since it was planned -> `suppressed`; an SMS in the customer's quiet hours
   -> `deferred` to their end; an email whose earlier attempt died between hand-over and recording ->
   `unconfirmed` (never sent twice); otherwise rendered and put in its order's line. The first message
   of every order is marked `sending` (attempts + 1, a lease, the locale and Message-ID used); the
   others get a lease only: claimed for this round, still `pending`.
2. Send the marked messages, orders side by side (up to `concurrency`), then record their outcomes in
   one transaction (`sent` + `NotificationSent`, `failed` + `NotificationFailed`, or `pending` with a
   backoff), which also marks the next message of every order `sending`; and so on until the round's
   lines are empty. One order's messages thus go one after the other, in the order they became due,
   and a message is `sending` only from just before its hand-over to the recording of its outcome.
3. The round's rows are all settled: the next round starts at once if this one was full, else when the
   consumer commits new rows (it wakes the dispatcher), at the poll interval (retries, quiet hours,
   leases that ended) or when support asks for a resend; each of these `gather_s` (0.2 s) later, so
   that what other commits bring meanwhile goes in the same round: a round costs the same two
   transactions for one message as for fifty.

A process that dies with a row `sending` leaves it so; when its lease ends it is claimed again: an SMS
is sent again with the same idempotency key (and locale), and the provider answers with the first
message instead of sending a second; an email becomes `unconfirmed` (it went out at most once). A row
that was claimed but not yet sending is simply due again when its lease ends. A service that stops
lets the messages in hand finish and gives the rest of the round back at once.
"""

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from notification_service.adapters.email_sender import EmailRejectedError, EmailSender, EmailSendError, OutgoingEmail
from notification_service.adapters.repository import Delivery, DeliveryChange, NotificationRepository
from notification_service.adapters.sms_sender import SmsRejectedError, SmsSender, SmsSendError
from notification_service.adapters.templates import TemplateRenderer
from notification_service.claims import ClaimDecider, Job, log_fields
from notification_service.domain.notifications import CHANNEL_SMS
from notification_service.handlers import Clock, utc_now
from notification_service.outcomes import OutcomeRecorder
from oms_events import MessageRegistry
from oms_runtime.db import Database
from oms_runtime.logging import get_logger, mask_text
from oms_runtime.periodic import PeriodicTask

log = get_logger(__name__)

RETRYABLE_STATUSES = frozenset({"failed", "unconfirmed", "undelivered"})


class RetryNotAllowedError(Exception):
    """Only a message that failed, or whose delivery is unknown, may be sent again by hand."""


@dataclass(frozen=True)
class _Sent:
    provider_message_id: str
    replayed: bool = False


@dataclass(frozen=True)
class _Refused:
    reason_code: str
    error: str


@dataclass(frozen=True)
class _Failed:
    error: str


_Outcome = _Sent | _Refused | _Failed


class Dispatcher:
    """Sends due messages from the send log; retries with backoff; defers SMS in quiet hours."""

    def __init__(
        self,
        db: Database,
        repository: NotificationRepository,
        renderer: TemplateRenderer,
        email: EmailSender,
        sms: SmsSender,
        registry: MessageRegistry,
        *,
        producer_name: str,
        message_id_domain: str,
        clock: Clock = utc_now,
        max_attempts: int = 6,
        retry_base_s: float = 5.0,
        retry_max_s: float = 900.0,
        lease_s: float = 120.0,
        poll_interval_s: float = 0.5,
        gather_s: float = 0.2,
        batch_size: int = 50,
        concurrency: int = 8,
        stop_wait_s: float = 15.0,
    ) -> None:
        self._db = db
        self._repo = repository
        self._email = email
        self._sms = sms
        self._clock = clock
        self._lease = timedelta(seconds=lease_s)
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._stop_wait_s = stop_wait_s
        self._stopping = False
        self._recorder = OutcomeRecorder(
            registry,
            producer_name=producer_name,
            max_attempts=max_attempts,
            retry_base_s=retry_base_s,
            retry_max_s=retry_max_s,
        )
        self._decider = ClaimDecider(renderer, self._recorder, message_id_domain=message_id_domain, lease=self._lease)
        self._loop = PeriodicTask(
            "notification-dispatcher",
            self._round,
            interval_s=poll_interval_s,
            # A full round may have left more due: go on at once rather than after the interval.
            again_while_busy=True,
            # Woken by a commit, wait a little before claiming: the messages committed meanwhile go in
            # the same round. Below saturation every commit brings a message or two, and a round of
            # one message cost as much as a round of many (two transactions, a relay publish).
            settle_s=gather_s,
            failure_pause_s=1.0,
        )

    # ------------------------------------------------------------ the loop

    def wake(self) -> None:
        """New rows are committed (or one is due again): run a round now."""
        self._loop.wake()

    async def start(self) -> None:
        self._stopping = False
        await self._loop.start()

    async def stop(self) -> None:
        """Lets the messages in hand finish and be recorded (up to `stop_wait_s`), gives the rest of
        the round back, and ends the loop; past the wait, the round is cancelled."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._loop.stop(drain=True), self._stop_wait_s)
        except TimeoutError:
            log.warning("dispatcher round still sending at stop; cancelled", waited_s=self._stop_wait_s)
            await self._loop.stop()

    async def _round(self) -> bool:
        return await self.run_once() >= self._batch_size

    def backoff(self, attempts: int) -> timedelta:
        return self._recorder.backoff(attempts)

    async def run_once(self) -> int:
        """One round (see the module's docstring); returns how many rows it claimed."""
        if self._stopping:
            return 0
        now = self._clock()
        async with self._db.transaction() as session:
            claimed = await self._repo.claim_due(session, now, self._batch_size)
            if not claimed:
                return 0
            changes, lines = await self._decider.decide(session, claimed, now)
            steps = _steps(lines)
            if steps:
                changes += [job.sending for job in steps[0]]
                # Claimed for this round: a lease, and nothing else changes until the message's turn.
                changes += [
                    dataclasses.replace(DeliveryChange.of(job.row), lease_until=now + self._lease)
                    for job in _later(steps, 0)
                ]
            await self._repo.apply(session, changes, now)
        await self._run_steps(steps)
        return len(claimed)

    async def _run_steps(self, steps: list[list[Job]]) -> None:
        for index, step in enumerate(steps):
            try:
                outcomes = await self._send_all(step)
            except asyncio.CancelledError:
                await asyncio.shield(self._release(_later(steps, index)))
                raise
            going_on = index + 1 < len(steps) and not self._stopping
            now = self._clock()
            try:
                async with self._db.transaction() as session:
                    recorded = [await self._record(session, job, outcome, now) for job, outcome in outcomes]
                    marked = []
                    if going_on:
                        for job in steps[index + 1]:
                            job.sending = dataclasses.replace(job.sending, lease_until=now + self._lease)
                            marked.append(job.sending)
                    await self._repo.apply(session, recorded + marked, now)
            except asyncio.CancelledError:
                await asyncio.shield(self._release(_later(steps, index)))
                raise
            for (job, outcome), change in zip(outcomes, recorded, strict=True):
                self._log_outcome(job, outcome, change)
            if not going_on:
                await self._release(_later(steps, index))
                return

    async def _release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        async with self._db.transaction() as session:
            await self._repo.release(session, [job.row.notification_id for job in jobs], self._clock())
        log.info("notification round given back", messages=len(jobs))

    # ------------------------------------------------------------ sending and recording

    async def _send_all(self, step: Sequence[Job]) -> list[tuple[Job, _Outcome]]:
        slots = asyncio.Semaphore(self._concurrency)

        async def one(job: Job) -> tuple[Job, _Outcome]:
            async with slots:
                return job, await self._send(job)

        return list(await asyncio.gather(*(one(job) for job in step)))

    async def _send(self, job: Job) -> _Outcome:
        try:
            if isinstance(job.message, OutgoingEmail):
                return _Sent((await self._email.send(job.message)).provider_message_id)
            receipt = await self._sms.send(job.message)
            return _Sent(receipt.provider_message_id, receipt.replayed)
        except (EmailRejectedError, SmsRejectedError) as exc:
            return _Refused(exc.reason_code, str(exc))
        except (EmailSendError, SmsSendError) as exc:
            return _Failed(str(exc))
        except Exception as exc:  # a sender's bug: retried like a transient failure, and logged
            log.exception("sender failed unexpectedly", **log_fields(job.row))
            return _Failed(f"{type(exc).__name__}: {mask_text(str(exc))}")

    async def _record(self, session: Any, job: Job, outcome: _Outcome, now: datetime) -> DeliveryChange:
        if isinstance(outcome, _Sent):
            return await self._recorder.sent(session, job.row, job.sending, outcome.provider_message_id, now)
        if isinstance(outcome, _Refused):
            return await self._recorder.failed(session, job.row, job.sending, outcome.reason_code, outcome.error)
        return await self._recorder.retry_or_give_up(session, job.row, job.sending, outcome.error, now)

    def _log_outcome(self, job: Job, outcome: _Outcome, change: DeliveryChange) -> None:
        fields = log_fields(job.row)
        if isinstance(outcome, _Sent):
            if outcome.replayed:
                log.info("provider already had this message (idempotency key); not sent twice", **fields)
            log.info(
                "notification sent",
                notification_id=str(job.row.notification_id),
                provider_message_id=outcome.provider_message_id,
                **fields,
            )
        elif isinstance(outcome, _Refused):
            log.warning(
                "notification refused for good; not retrying", reason=outcome.reason_code, error=outcome.error, **fields
            )
        elif change.status == "failed":
            log.warning(
                "notification failed on every attempt; giving up",
                attempts=change.attempts,
                error=outcome.error,
                **fields,
            )
        else:
            log.warning(
                "notification failed; will retry",
                attempt=change.attempts,
                due_at=change.due_at.isoformat(),
                error=outcome.error,
                **fields,
            )

    # ------------------------------------------------------------ support and the provider

    async def resend(self, notification_id: UUID, requested_by: str) -> Delivery | None:
        """Queues a failed, unconfirmed or undelivered message to be sent again now (an operator's call:
        an unconfirmed email may then arrive twice, with the same Message-ID). None: no such message."""
        now = self._clock()
        async with self._db.transaction() as session:
            row = await self._repo.get(session, notification_id, for_update=True)
            if row is None:
                return None
            if row.status not in RETRYABLE_STATUSES:
                raise RetryNotAllowedError(f"the message is {row.status}")
            values: dict[str, Any] = {
                "status": "pending",
                "status_reason": "resend_requested",
                "attempts": 0,
                "due_at": now,
                "lease_until": None,
                "resends": row.resends + 1,
            }
            await self._repo.update(session, row.notification_id, now, **values)
        log.info(
            "notification to be sent again",
            kind=row.kind,
            channel=row.channel,
            recipient=row.recipient_masked,
            previous_status=row.status,
            requested_by=requested_by,
        )
        self.wake()
        return dataclasses.replace(row, **values, updated_at=now)

    async def record_sms_report(
        self, provider_message_id: str, delivered: bool, error_code: str | None
    ) -> Delivery | None:
        """The provider's delivery report of an SMS: `sent` becomes `delivered`, or `undelivered` (then
        published as `NotificationFailed`). None when no SMS has that provider id (yet: a report can
        overtake the recording of the send, and providers retry a report that is not acknowledged).
        A second report of a settled message changes nothing."""
        now = self._clock()
        async with self._db.transaction() as session:
            if delivered:
                # Nearly every report: one statement when the message is `sent`, a second only when not.
                marked = await self._repo.mark_delivered(session, CHANNEL_SMS, provider_message_id, now)
                if marked is not None:
                    return marked
            row = await self._repo.by_provider_id(session, CHANNEL_SMS, provider_message_id)
            if row is None or row.status != "sent":
                return row
            if delivered:  # it became `sent` since (another transaction recorded it meanwhile)
                await self._repo.update(session, row.notification_id, now, status="delivered", delivered_at=now)
                return dataclasses.replace(row, status="delivered", delivered_at=now)
            reason = f"the provider could not deliver it ({error_code or 'no code'})"
            failed = await self._recorder.failed(session, row, DeliveryChange.of(row), "undelivered", reason)
            await self._repo.apply(session, [dataclasses.replace(failed, status="undelivered")], now)
        log.warning("SMS not delivered", kind=row.kind, recipient=row.recipient_masked, error_code=error_code)
        return dataclasses.replace(row, status="undelivered", status_reason="undelivered")


def _steps(lines: dict[UUID, list[Job]]) -> list[list[Job]]:
    """Step k: the k-th message of every order's line (one order's messages go one after the other)."""
    depth = max((len(line) for line in lines.values()), default=0)
    return [[line[k] for line in lines.values() if len(line) > k] for k in range(depth)]


def _later(steps: list[list[Job]], index: int) -> list[Job]:
    """The jobs of the steps after `index`."""
    return [job for step in steps[index + 1 :] for job in step]
