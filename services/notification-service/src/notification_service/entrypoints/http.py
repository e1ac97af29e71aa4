"""The HTTP API of notification-service: customers' preferences and the notification history.

Ops keys only (support staff answer "did I get an email?" and change a customer's choices on their
behalf). Errors use the shared body (`oms_runtime.http_api`): 422 names each bad field, never a 500.
"""

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, time
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from notification_service.adapters.repository import Delivery, NotificationRepository
from notification_service.dispatcher import RetryNotAllowedError
from notification_service.domain.notifications import CHANNEL_EMAIL, CHANNEL_SMS, NotificationKind
from notification_service.domain.preferences import DEFAULT_TIME_ZONE, Preferences, QuietHours, valid_time_zone
from oms_events.values import PlainText
from oms_runtime.db import Database
from oms_runtime.http_api import (
    DEFAULT_MAX_BODY_BYTES,
    ApiKeyAuthenticator,
    AuthError,
    ErrorBody,
    PreBodyCheck,
    Principal,
    ServiceApi,
    error_response,
)

Clock = Callable[[], datetime]
CustomerId = Annotated[PlainText, Path(min_length=1, max_length=64)]
WEBHOOK_TOKEN_HEADER = "X-Webhook-Token"

_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class ChannelChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool | None = Field(default=None, description="true: send; false: do not; null/absent: the default")
    sms: bool | None = None


def _without_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("must be a wall-clock time without a UTC offset, e.g. 22:00 (the time zone is time_zone)")
    return value


LocalTime = Annotated[
    time,
    AfterValidator(_without_offset),
    PlainSerializer(time.isoformat, return_type=str),
    # Not JSON Schema's `time` format: that is RFC 3339's full-time, which needs an offset.
    WithJsonSchema({"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"}),
]
"""A wall-clock time of day, `HH:MM` or `HH:MM:SS` in, `HH:MM:SS` out."""


class QuietHoursBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: LocalTime = Field(description="Local time in the customer's time zone, e.g. 22:00")
    end: LocalTime = Field(description="e.g. 07:00 (may be on the next day)")

    @model_validator(mode="after")
    def _not_empty(self) -> "QuietHoursBody":
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class PreferencesBody(BaseModel):
    """The whole set of a customer's choices (PUT replaces what was there)."""

    model_config = ConfigDict(extra="forbid")

    locale: PlainText | None = Field(
        default=None, max_length=35, description="e.g. de, de-AT, en; null: the order's locale"
    )
    time_zone: PlainText = Field(default=DEFAULT_TIME_ZONE, max_length=64, description="IANA name, e.g. Europe/Berlin")
    quiet_hours: QuietHoursBody | None = Field(default=None, description="No SMS in these hours (deferred)")
    channels: dict[NotificationKind, ChannelChoice] = Field(
        default_factory=dict, description="Per message kind, opt-in (true) or opt-out (false) per channel"
    )

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not _LOCALE.match(value):
            raise ValueError("must be a language tag like en, de or de-AT")
        return value

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        if not valid_time_zone(value):
            raise ValueError("must be an IANA time zone name like Europe/Berlin")
        return value

    def to_preferences(self, customer_id: str) -> Preferences:
        choices: dict[tuple[NotificationKind, str], bool] = {}
        for kind, choice in self.channels.items():
            for channel, wanted in ((CHANNEL_EMAIL, choice.email), (CHANNEL_SMS, choice.sms)):
                if wanted is not None:
                    choices[(kind, channel)] = wanted
        quiet = QuietHours(self.quiet_hours.start, self.quiet_hours.end) if self.quiet_hours else None
        return Preferences(customer_id, self.locale, self.time_zone, quiet, choices)


class PreferencesView(BaseModel):
    customer_id: str
    customised: bool = Field(description="false: the customer never chose; these are the defaults")
    locale: str | None
    time_zone: str
    quiet_hours: QuietHoursBody | None
    channels: dict[str, dict[str, bool]] = Field(description="What is sent: kind -> {email, sms}")
    explicit: dict[str, dict[str, bool]] = Field(description="Only the customer's own choices")

    @classmethod
    def of(cls, prefs: Preferences, customised: bool) -> "PreferencesView":
        explicit: dict[str, dict[str, bool]] = {}
        for (kind, channel), wanted in prefs.choices.items():
            explicit.setdefault(kind.value, {})[channel] = wanted
        quiet = prefs.quiet_hours
        return cls(
            customer_id=prefs.customer_id,
            customised=customised,
            locale=prefs.locale,
            time_zone=prefs.time_zone,
            quiet_hours=QuietHoursBody(start=quiet.start, end=quiet.end) if quiet else None,
            channels=prefs.channel_matrix(),
            explicit=explicit,
        )


class NotificationView(BaseModel):
    notification_id: UUID
    order_id: UUID
    customer_id: str
    kind: str
    channel: str
    status: str = Field(
        description="pending, deferred (quiet hours; see due_at), sending, sent (accepted by the mail server or "
        "SMS provider), delivered / undelivered (the SMS provider's report), failed, suppressed (opted out, no "
        "phone number), unconfirmed (an email attempt ended unrecorded: sent at most once)"
    )
    status_reason: str | None
    recipient_masked: str
    locale: str | None
    attempts: int
    resends: int = Field(description="Times an operator had it sent again")
    created_at: datetime
    due_at: datetime | None = Field(description="When it is (re)tried; set while pending or deferred")
    sent_at: datetime | None
    delivered_at: datetime | None = Field(description="When the SMS provider reported it delivered")
    provider_message_id: str | None
    message_id: str | None
    error: str | None
    source_event_id: UUID

    @classmethod
    def of(cls, row: Delivery) -> "NotificationView":
        return cls(
            notification_id=row.notification_id,
            order_id=row.order_id,
            customer_id=row.customer_id,
            kind=row.kind,
            channel=row.channel,
            status=row.status,
            status_reason=row.status_reason,
            recipient_masked=row.recipient_masked,
            locale=row.locale,
            attempts=row.attempts,
            resends=row.resends,
            created_at=row.created_at,
            due_at=row.due_at if row.status in ("pending", "deferred") else None,
            sent_at=row.sent_at,
            delivered_at=row.delivered_at,
            provider_message_id=row.provider_message_id,
            message_id=row.message_id,
            error=row.error,
            source_event_id=row.source_event_id,
        )


class NotificationHistory(BaseModel):
    notifications: list[NotificationView]


class SmsStatusReport(BaseModel):
    """A delivery report of the SMS provider (see adapters/http_sms.py)."""

    id: PlainText = Field(min_length=1, max_length=300, description="The provider's message id")
    status: Literal["delivered", "undelivered", "failed"]
    error_code: PlainText | None = Field(default=None, max_length=100)


class WebhookToken(PreBodyCheck):
    """The SMS provider's delivery reports carry SMS_WEBHOOK_TOKEN in `X-Webhook-Token`: checked before the
    report's body is read (403 when reports are not configured, 401 without the token)."""

    def __init__(self, token: str | None) -> None:
        self._digest = hashlib.sha256(token.encode()).digest() if token else None

    def check(self, presented: str | None) -> None:
        if self._digest is None:
            raise AuthError(status.HTTP_403_FORBIDDEN, "forbidden", "SMS delivery reports are not configured.")
        if not hmac.compare_digest(hashlib.sha256((presented or "").encode()).digest(), self._digest):
            raise AuthError(
                status.HTTP_401_UNAUTHORIZED, "unauthenticated", f"A valid {WEBHOOK_TOKEN_HEADER} header is required."
            )

    async def before_body(self, request: Request) -> None:
        self.check(request.headers.get(WEBHOOK_TOKEN_HEADER))

    async def __call__(
        self, x_webhook_token: Annotated[PlainText | None, Header(description="SMS_WEBHOOK_TOKEN")] = None
    ) -> None:
        self.check(x_webhook_token)


SmsReportRecorder = Callable[[str, bool, str | None], Awaitable[Delivery | None]]
Resender = Callable[[UUID, str], Awaitable[Delivery | None]]


def create_app(
    db: Database,
    repository: NotificationRepository,
    auth: ApiKeyAuthenticator,
    clock: Clock,
    sms_reports: SmsReportRecorder | None = None,
    webhook_token: str | None = None,
    resend: Resender | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = ServiceApi(
        title="OMS notification-service",
        description="Customers' notification preferences and the history of what they were sent.",
        max_body_bytes=max_body_bytes,
    )
    ops_key = auth.dependency(ops_only=True)
    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}

    @app.get(
        "/customers/{customer_id}/preferences",
        operation_id="getPreferences",
        response_model=PreferencesView,
        responses=errors,
    )
    async def get_preferences(customer_id: CustomerId, _: Annotated[Principal, Depends(ops_key)]) -> PreferencesView:
        async with db.transaction() as session:
            prefs = await repository.preferences(session, customer_id)
            customised = await repository.has_preferences(session, customer_id)
        return PreferencesView.of(prefs, customised)

    @app.put(
        "/customers/{customer_id}/preferences",
        operation_id="putPreferences",
        response_model=PreferencesView,
        responses={**errors, 422: {"model": ErrorBody}},
    )
    async def put_preferences(
        customer_id: CustomerId, body: PreferencesBody, principal: Annotated[Principal, Depends(ops_key)]
    ) -> PreferencesView:
        prefs = body.to_preferences(customer_id)
        async with db.transaction() as session:
            await repository.save_preferences(session, prefs, principal.name, clock())
        return PreferencesView.of(prefs, True)

    @app.get(
        "/orders/{order_id}/notifications",
        operation_id="listOrderNotifications",
        response_model=NotificationHistory,
        responses=errors,
    )
    async def order_history(order_id: UUID, _: Annotated[Principal, Depends(ops_key)]) -> NotificationHistory:
        async with db.transaction() as session:
            rows = await repository.history_for_order(session, order_id)
        return NotificationHistory(notifications=[NotificationView.of(r) for r in rows])

    @app.get(
        "/customers/{customer_id}/notifications",
        operation_id="listCustomerNotifications",
        response_model=NotificationHistory,
        responses=errors,
    )
    async def customer_history(
        customer_id: CustomerId,
        _: Annotated[Principal, Depends(ops_key)],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> NotificationHistory:
        async with db.transaction() as session:
            rows = await repository.history_for_customer(session, customer_id, limit)
        return NotificationHistory(notifications=[NotificationView.of(r) for r in rows])

    @app.post(
        "/notifications/{notification_id}/resend",
        operation_id="resendNotification",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=NotificationView,
        responses={**errors, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    async def resend_notification(
        notification_id: UUID, principal: Annotated[Principal, Depends(ops_key)]
    ) -> NotificationView | JSONResponse:
        if resend is None:
            return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "Resending is not available.")
        try:
            row = await resend(notification_id, principal.name)
        except RetryNotAllowedError as exc:
            return error_response(
                status.HTTP_409_CONFLICT,
                "resend_not_allowed",
                f"Only a failed, unconfirmed or undelivered message can be sent again: {exc}.",
            )
        if row is None:
            return error_response(
                status.HTTP_404_NOT_FOUND, "notification_not_found", f"No notification {notification_id}."
            )
        return NotificationView.of(row)

    webhook_caller = WebhookToken(webhook_token if sms_reports is not None else None)

    @app.post(
        "/webhooks/sms/status",
        operation_id="receiveSmsStatus",
        response_model=NotificationView,
        responses={**errors, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def sms_status(
        report: SmsStatusReport, _: Annotated[None, Depends(webhook_caller)]
    ) -> NotificationView | JSONResponse:
        assert sms_reports is not None  # WebhookToken refuses every caller without it
        row = await sms_reports(report.id, report.status == "delivered", report.error_code)
        if row is None:
            return error_response(status.HTTP_404_NOT_FOUND, "notification_not_found", f"No SMS {report.id} (yet).")
        return NotificationView.of(row)

    return app
