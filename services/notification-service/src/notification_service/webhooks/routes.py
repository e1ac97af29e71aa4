"""The ops API of webhook subscriptions (ops keys only): subscribe, list, unsubscribe, enable again, the
delivery log and redelivery. The secret is write-only: no answer and no log line ever holds it.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from notification_service.webhooks.domain import (
    DeliveryStatus,
    InvalidSecretError,
    SubscriptionStatus,
    TargetRefusedError,
    secret_bytes,
)
from notification_service.webhooks.http_client import Resolver, check_target
from notification_service.webhooks.repository import DeliveryEntry, Subscription, WebhookRepository
from oms_events.routes import WEBHOOK_EVENT_TYPES
from oms_events.values import PlainText
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator, ErrorBody, FieldError, Principal, error_response
from oms_runtime.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]

_EVENT_TYPES = sorted(WEBHOOK_EVENT_TYPES)


def _known_event_type(value: str) -> str:
    if value not in WEBHOOK_EVENT_TYPES:
        raise ValueError("not an event type of the contract (see libs/events/asyncapi.json)")
    return value


EventType = Annotated[str, AfterValidator(_known_event_type), WithJsonSchema({"type": "string", "enum": _EVENT_TYPES})]


class SubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: PlainText = Field(min_length=1, max_length=2000, description="Where deliveries are POSTed (https)")
    event_types: list[EventType] = Field(min_length=1, max_length=len(_EVENT_TYPES), description="Event types wanted")
    secret: PlainText = Field(
        min_length=38,
        max_length=200,
        repr=False,
        description="Standard Webhooks secret, `whsec_` + base64 of 24-64 random bytes; write-only",
    )
    description: PlainText = Field(default="", max_length=200)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        try:
            secret_bytes(value)
        except InvalidSecretError as exc:
            raise ValueError(str(exc)) from None
        return value


class SubscriptionView(BaseModel):
    id: UUID
    url: str
    event_types: list[str]
    description: str
    status: SubscriptionStatus
    failing_since: datetime | None = Field(description="First failure with no success since; null when healthy")
    disabled_at: datetime | None
    disabled_reason: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> "SubscriptionView":
        return cls(
            id=s.id,
            url=s.url,
            event_types=list(s.event_types),
            description=s.description,
            status=s.status,
            failing_since=s.failing_since,
            disabled_at=s.disabled_at,
            disabled_reason=s.disabled_reason,
            created_by=s.created_by,
            created_at=s.created_at,
        )


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionView]


class AttemptView(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, failed, or refused (the target's address is not allowed)")
    http_status: int | None
    error: str | None


class DeliveryView(BaseModel):
    id: UUID
    webhook_id: UUID = Field(description="The CloudEvent's id and the `webhook-id` header: receivers dedupe on it")
    event_type: str
    subject: str = Field(description="The order id, or the sku of a stock event")
    status: DeliveryStatus
    attempts: int
    redeliveries: int
    next_attempt_at: datetime | None
    last_http_status: int | None
    last_duration_ms: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptView]

    @classmethod
    def of(cls, d: DeliveryEntry) -> "DeliveryView":
        return cls(
            id=d.id,
            webhook_id=d.event_id,
            event_type=d.event_type,
            subject=d.subject,
            status=d.status,
            attempts=d.attempts,
            redeliveries=d.redeliveries,
            next_attempt_at=d.next_attempt_at,
            last_http_status=d.last_http_status,
            last_duration_ms=d.last_duration_ms,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
            attempt_log=[AttemptView.model_validate(_attempt(a)) for a in d.attempt_log],
        )


def _attempt(a: Any) -> dict[str, Any]:
    return {name: getattr(a, name) for name in AttemptView.model_fields}


class RedeliveryView(BaseModel):
    id: UUID
    status: DeliveryStatus


class DeliveryLog(BaseModel):
    deliveries: list[DeliveryView] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last")


def webhook_router(
    db: Database,
    repository: WebhookRepository,
    auth: ApiKeyAuthenticator,
    clock: Clock,
    resolver: Resolver,
    *,
    allow_private: bool,
    subscriptions_changed: Callable[[], Awaitable[None]],
    wake: Callable[[], None],
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    ops_key = auth.dependency(ops_only=True)
    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
    not_found: dict[int | str, dict[str, Any]] = {**errors, 404: {"model": ErrorBody}}

    def missing(subscription_id: UUID) -> JSONResponse:
        return error_response(
            status.HTTP_404_NOT_FOUND, "subscription_not_found", f"No webhook subscription {subscription_id}."
        )

    @router.post(
        "/webhooks/subscriptions",
        operation_id="createWebhookSubscription",
        status_code=status.HTTP_201_CREATED,
        response_model=SubscriptionView,
        responses={**errors, 422: {"model": ErrorBody}},
    )
    async def create(
        body: SubscriptionBody, principal: Annotated[Principal, Depends(ops_key)]
    ) -> SubscriptionView | JSONResponse:
        try:
            await check_target(body.url, resolver, allow_private=allow_private)
        except TargetRefusedError as exc:
            field = FieldError(field="url", message=str(exc), type="target_refused")
            return error_response(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "validation_failed", "Invalid fields: url", [field]
            )
        async with db.transaction() as session:
            created = await repository.create(
                session,
                url=body.url,
                event_types=sorted(set(body.event_types)),
                secret=body.secret,
                description=body.description,
                created_by=principal.name,
                now=clock(),
            )
        await subscriptions_changed()
        log.info("webhook subscription created", subscription_id=str(created.id), by=principal.name)
        return SubscriptionView.of(created)

    @router.get(
        "/webhooks/subscriptions",
        operation_id="listWebhookSubscriptions",
        response_model=SubscriptionList,
        responses=errors,
    )
    async def list_all(_: Annotated[Principal, Depends(ops_key)]) -> SubscriptionList:
        async with db.transaction() as session:
            found = await repository.all(session)
        return SubscriptionList(subscriptions=[SubscriptionView.of(s) for s in found])

    @router.get(
        "/webhooks/subscriptions/{subscription_id}",
        operation_id="getWebhookSubscription",
        response_model=SubscriptionView,
        responses=not_found,
    )
    async def get_one(
        subscription_id: UUID, _: Annotated[Principal, Depends(ops_key)]
    ) -> SubscriptionView | JSONResponse:
        async with db.transaction() as session:
            found = await repository.get(session, subscription_id)
        return SubscriptionView.of(found) if found is not None else missing(subscription_id)

    @router.delete(
        "/webhooks/subscriptions/{subscription_id}",
        operation_id="deleteWebhookSubscription",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=not_found,
    )
    async def remove(subscription_id: UUID, principal: Annotated[Principal, Depends(ops_key)]) -> Response:
        async with db.transaction() as session:
            deleted = await repository.delete(session, subscription_id)
        if not deleted:
            return missing(subscription_id)
        await subscriptions_changed()
        log.info("webhook subscription deleted", subscription_id=str(subscription_id), by=principal.name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/webhooks/subscriptions/{subscription_id}/enable",
        operation_id="enableWebhookSubscription",
        response_model=SubscriptionView,
        responses=not_found,
    )
    async def enable(
        subscription_id: UUID, principal: Annotated[Principal, Depends(ops_key)]
    ) -> SubscriptionView | JSONResponse:
        async with db.transaction() as session:
            found = await repository.enable(session, subscription_id, clock())
        if found is None:
            return missing(subscription_id)
        wake()
        log.info("webhook subscription enabled", subscription_id=str(subscription_id), by=principal.name)
        return SubscriptionView.of(found)

    @router.get(
        "/webhooks/subscriptions/{subscription_id}/deliveries",
        operation_id="listWebhookDeliveries",
        response_model=DeliveryLog,
        responses=not_found,
    )
    async def deliveries(
        subscription_id: UUID,
        _: Annotated[Principal, Depends(ops_key)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[PlainText | None, Query(max_length=20, pattern=r"^[1-9][0-9]{0,18}$")] = None,
    ) -> DeliveryLog | JSONResponse:
        async with db.transaction() as session:
            if await repository.get(session, subscription_id) is None:
                return missing(subscription_id)
            rows = await repository.log(
                session, subscription_id, before_seq=int(cursor) if cursor else None, limit=limit + 1
            )
        page = rows[:limit]
        next_cursor = str(page[-1].seq) if len(rows) > limit else None
        return DeliveryLog(deliveries=[DeliveryView.of(d) for d in page], next_cursor=next_cursor)

    @router.post(
        "/webhooks/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
        operation_id="redeliverWebhook",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=RedeliveryView,
        responses={**not_found, 409: {"model": ErrorBody}},
    )
    async def redeliver(
        subscription_id: UUID, delivery_id: UUID, principal: Annotated[Principal, Depends(ops_key)]
    ) -> RedeliveryView | JSONResponse:
        async with db.transaction() as session:
            outcome = await repository.redeliver(session, subscription_id, delivery_id, clock())
        if outcome == "not_found":
            return error_response(
                status.HTTP_404_NOT_FOUND, "delivery_not_found", f"No delivery {delivery_id} of {subscription_id}."
            )
        if outcome == "pending":
            return error_response(
                status.HTTP_409_CONFLICT, "delivery_pending", "This delivery has not been settled yet; it will be sent."
            )
        wake()
        log.info("webhook redelivery queued", delivery_id=str(delivery_id), by=principal.name)
        return RedeliveryView(id=delivery_id, status=DeliveryStatus.PENDING)

    return router
