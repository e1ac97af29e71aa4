"""What becomes of a row the dispatcher claimed, decided in the claiming transaction.

Not sent: an email whose earlier attempt died between hand-over and recording becomes `unconfirmed`
(it may have gone out: never twice); a row whose contact was erased, or that the customer opted out
of since it was planned, becomes `suppressed`; an SMS in the customer's quiet hours is `deferred` to
their end; an SMS to a number without a country code `failed` (`bad_address`); a row that cannot be
prepared (a template error, say) is retried like a transient failure. Everything else is rendered
into a `Job`: the message, and its row as it is written when it goes out (`sending`, attempts + 1,
a lease, the locale and Message-ID used).
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from notification_service.adapters.email_sender import OutgoingEmail
from notification_service.adapters.repository import Claimed, Delivery, DeliveryChange
from notification_service.adapters.sms_sender import OutgoingSms
from notification_service.adapters.templates import TemplateRenderer
from notification_service.domain.notifications import (
    CHANNEL_EMAIL,
    CHANNEL_SMS,
    NotificationKind,
    OrderContact,
    message_id_for,
    normalise_phone,
    template_context,
)
from notification_service.domain.preferences import Preferences
from notification_service.outcomes import OutcomeRecorder
from oms_runtime.logging import get_logger, mask_text

log = get_logger(__name__)


def log_fields(row: Delivery) -> dict[str, str]:
    """What a log line may say about a message (the recipient masked)."""
    return {"kind": row.kind, "channel": row.channel, "recipient": row.recipient_masked}


@dataclass
class Job:
    """A claimed message ready to go: the row as claimed, the message, and the row as it is written
    when the message is marked `sending`."""

    row: Delivery
    message: OutgoingEmail | OutgoingSms
    sending: DeliveryChange


class ClaimDecider:
    def __init__(
        self, renderer: TemplateRenderer, recorder: OutcomeRecorder, *, message_id_domain: str, lease: timedelta
    ) -> None:
        self._renderer = renderer
        self._recorder = recorder
        self._message_id_domain = message_id_domain
        self._lease = lease

    async def decide(
        self, session: Any, claimed: Sequence[Claimed], now: datetime
    ) -> tuple[list[DeliveryChange], dict[UUID, list[Job]]]:
        """The changes to write now (rows not sent) and the jobs, in a line per order (claim order)."""
        changes: list[DeliveryChange] = []
        lines: dict[UUID, list[Job]] = {}
        for item in claimed:
            row = item.delivery
            try:
                outcome = await self._prepare(session, item, now)
            except Exception as exc:
                # A row that cannot even be prepared (e.g. a template error) must not block the others.
                log.exception("notification could not be prepared", notification_id=str(row.notification_id))
                current = dataclasses.replace(DeliveryChange.of(row), attempts=row.attempts + 1, lease_until=None)
                error = f"{type(exc).__name__}: {mask_text(str(exc))}"
                outcome = await self._recorder.retry_or_give_up(session, row, current, error, now, reason_code="error")
            if isinstance(outcome, Job):
                lines.setdefault(row.order_id, []).append(outcome)
            else:
                changes.append(outcome)
        return changes, lines

    async def _prepare(self, session: Any, item: Claimed, now: datetime) -> Job | DeliveryChange:
        row, contact, prefs = item.delivery, item.contact, item.preferences
        current = DeliveryChange.of(row)
        fields = log_fields(row)
        if row.status == "sending" and row.channel == CHANNEL_EMAIL:
            # The attempt died between handing the email over and recording it: it may have gone out.
            log.warning("email attempt ended unrecorded; not sending it again", **fields)
            return dataclasses.replace(current, status="unconfirmed", lease_until=None)
        if contact is None:  # the contact was erased
            return dataclasses.replace(current, status="suppressed", status_reason="no_contact", lease_until=None)
        kind = NotificationKind(row.kind)
        if row.status != "sending" and not prefs.wants(kind, row.channel):
            log.info("notification not sent", reason="opted_out", **fields)
            return dataclasses.replace(current, status="suppressed", status_reason="opted_out", lease_until=None)
        if row.channel == CHANNEL_SMS and row.status != "sending":
            held_until = prefs.sms_held_until(now)
            if held_until is not None:
                log.info("SMS deferred to the end of quiet hours", due_at=held_until.isoformat(), **fields)
                return dataclasses.replace(
                    current, status="deferred", status_reason="quiet_hours", due_at=held_until, lease_until=None
                )
        return await self._render(session, row, contact, prefs, current, now)

    async def _render(
        self,
        session: Any,
        row: Delivery,
        contact: OrderContact,
        prefs: Preferences,
        current: DeliveryChange,
        now: datetime,
    ) -> Job | DeliveryChange:
        kind = NotificationKind(row.kind)
        context = template_context(contact, row.event_context)
        # An attempt claimed again renders as the first did: the provider compares the text.
        first_locale = row.locale if row.status == "sending" else None
        locale = first_locale or prefs.locale or contact.locale
        message: OutgoingEmail | OutgoingSms
        message_id = row.message_id
        if row.channel == CHANNEL_EMAIL:
            rendered = self._renderer.render(kind, locale, context)
            message_id = message_id_for(row.source_event_id, CHANNEL_EMAIL, self._message_id_domain)
            message = OutgoingEmail(
                recipient=contact.email,
                recipient_name=contact.name,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=message_id,
                headers={
                    "X-OMS-Order-Id": str(row.order_id),
                    "X-OMS-Notification-Id": str(row.notification_id),
                    "X-OMS-Notification-Kind": row.kind,
                },
            )
            used_locale = rendered.locale
        else:
            number = normalise_phone(contact.phone or "")
            if number is None:
                log.warning("notification refused for good; not retrying", reason="bad_address", **log_fields(row))
                return await self._recorder.failed(
                    session, row, current, "bad_address", "not an international phone number"
                )
            sms = self._renderer.render_sms(kind, locale, context)
            # A resend an operator asked for is a new message to the provider: a new key.
            key = str(row.notification_id) if row.resends == 0 else f"{row.notification_id}:{row.resends}"
            message = OutgoingSms(to=number, body=sms.body, idempotency_key=key, reference=row.kind)
            used_locale = sms.locale
        sending = dataclasses.replace(
            current,
            status="sending",
            status_reason=None,
            attempts=row.attempts + 1,
            lease_until=now + self._lease,
            locale=used_locale,
            message_id=message_id,
        )
        return Job(row, message, sending)
