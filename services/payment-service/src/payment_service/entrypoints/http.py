"""payment-service's HTTP API (ops keys): a payment's history per order, and the reconciliation report."""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from oms_events.messages import PaymentDeclined
from oms_events.values import Day, PlainText
from oms_runtime.http_api import (
    DEFAULT_MAX_BODY_BYTES,
    ApiKeyAuthenticator,
    ErrorBody,
    FieldError,
    Principal,
    ServiceApi,
    error_response,
)
from payment_service.queries import PaymentNotFoundError, PaymentQueries

MAX_REPORT_DAYS = 366


class HistoryEntryView(BaseModel):
    event_id: UUID
    type: str
    occurred_at: datetime
    payload: dict[str, Any]


class PaymentView(BaseModel):
    order_id: UUID
    payment_id: UUID
    status: str
    currency: str | None
    captured_minor: int
    refunded_minor: int
    refundable_minor: int
    decline_reason_code: str | None
    history: list[HistoryEntryView]


class ReconciliationLineView(BaseModel):
    day: date
    channel: str
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    captures: int
    refunds: int


class CurrencyTotalView(BaseModel):
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int


class ReconciliationView(BaseModel):
    date_from: date
    date_to: date
    lines: list[ReconciliationLineView]
    totals: list[CurrencyTotalView]


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


def create_app(
    queries: PaymentQueries, auth: ApiKeyAuthenticator, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    app = ServiceApi(
        title="OMS payment-service",
        description="A payment's history per order and the reconciliation report against the gateway (ops keys).",
        max_body_bytes=max_body_bytes,
    )
    ops = auth.dependency(ops_only=True)

    @app.exception_handler(PaymentNotFoundError)
    async def not_found(_: Request, exc: PaymentNotFoundError) -> JSONResponse:
        return error_response(404, "payment_not_found", f"No payment for order {exc}.")

    @app.get("/payments/{order_id}", operation_id="getPayment", response_model=PaymentView, responses=ERRORS)
    async def payment(order_id: UUID, _: Annotated[Principal, Depends(ops)]) -> PaymentView:
        """The payment of one order: its state and every event of its stream, oldest first."""
        found = await queries.history(order_id)
        p = found.payment
        captured = p.captured
        decision = p.decision
        return PaymentView(
            order_id=order_id,
            payment_id=p.payment_id,
            status=found.status,
            currency=captured.currency if captured else (p.authorisation.currency if p.authorisation else None),
            captured_minor=captured.amount_minor if captured else 0,
            refunded_minor=p.refunded_minor,
            refundable_minor=p.refundable_minor,
            decline_reason_code=decision.reason_code if isinstance(decision, PaymentDeclined) else None,
            history=[HistoryEntryView(**vars(e)) for e in found.entries],
        )

    @app.get(
        "/reconciliation", operation_id="getReconciliationReport", response_model=ReconciliationView, responses=ERRORS
    )
    async def reconciliation_report(
        _: Annotated[Principal, Depends(ops)],
        date_from: Annotated[Day | None, Query(description="First day (UTC), default today")] = None,
        date_to: Annotated[Day | None, Query(description="Last day (UTC), inclusive, default date_from")] = None,
        channel: Annotated[PlainText | None, Query(max_length=40)] = None,
        currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    ) -> ReconciliationView | JSONResponse:
        """Captured, refunded and net (minor units) per day, channel and currency; totals per currency."""
        start = date_from or datetime.now(UTC).date()
        end = date_to or start
        if end < start or end - start > timedelta(days=MAX_REPORT_DAYS):
            message = f"must be on or after date_from, at most {MAX_REPORT_DAYS} days later"
            return error_response(
                422,
                "validation_failed",
                "Invalid fields: date_to",
                [FieldError(field="date_to", message=message, type="value_error")],
            )
        lines = await queries.reconciliation(start, end, channel, currency)
        totals: dict[str, list[int]] = {}
        for line in lines:
            total = totals.setdefault(line.currency, [0, 0])
            total[0] += line.captured_minor
            total[1] += line.refunded_minor
        return ReconciliationView(
            date_from=start,
            date_to=end,
            lines=[
                ReconciliationLineView(
                    day=line.day,
                    channel=line.channel,
                    currency=line.currency,
                    captured_minor=line.captured_minor,
                    refunded_minor=line.refunded_minor,
                    net_minor=line.net_minor,
                    captures=line.captures,
                    refunds=line.refunds,
                )
                for line in lines
            ],
            totals=[
                CurrencyTotalView(currency=c, captured_minor=cap, refunded_minor=ref, net_minor=cap - ref)
                for c, (cap, ref) in sorted(totals.items())
            ],
        )

    return app
