"""Read-side use cases of order-service, on the `order_summaries` projection.

- `search`: orders by customer, status, channel and placing time, newest first, with keyset
  pagination on (placed_at, order_id): a page never repeats or skips an order, however many orders
  arrive meanwhile, and every page costs one index range scan.
- `stuck`: open orders whose latest event is older than a threshold, every order that needs an
  operator, and every order with a failed partial refund (whatever its status), oldest first.
- `tracking`: the order's status and its shipments' carrier, tracking and delivery estimate.
"""

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Select, and_, or_, select, tuple_

from oms_events.values import FIRST_DAY, LAST_DAY
from oms_runtime.db import Database
from order_service.adapters.projection import FAILED_REFUNDS, OPEN_ORDER, order_summaries
from order_service.query_views import (
    FailedRefundView,
    OrderPage,
    OrderSummaryView,
    PreparingShipmentView,
    ShipmentTrackingView,
    StuckOrders,
    StuckOrderView,
    TrackingView,
)

MAX_PAGE = 200
MAX_STUCK = 1000
NEEDS_ATTENTION = "needs_attention"
ON_HOLD = "on_hold"


def _stuck_reason(
    status: str, failed_refunds: bool
) -> Literal["needs_attention", "no_progress", "on_hold", "refund_failed"]:
    if status == NEEDS_ATTENTION:
        return "needs_attention"
    if failed_refunds:
        return "refund_failed"  # the order goes on; one of its partial refunds waits for an operator
    if status == ON_HOLD:
        return "on_hold"  # waits for an operator to release or cancel it
    return "no_progress"


class InvalidQueryError(ValueError):
    """A query parameter is out of range or malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def encode_cursor(placed_at: datetime, order_id: UUID) -> str:
    raw = json.dumps([placed_at.isoformat(), str(order_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        placed_at, order_id = json.loads(raw)
        at = datetime.fromisoformat(placed_at)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        if not FIRST_DAY <= at.date() <= LAST_DAY:
            raise ValueError("timestamp out of range")  # the database could not convert it
        return at, UUID(order_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQueryError("cursor", "not a cursor returned by this API") from exc


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp without a zone is taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _summary(row: Any) -> OrderSummaryView:
    return OrderSummaryView(
        order_id=row.order_id,
        channel=row.channel,
        external_reference=row.external_reference,
        customer_id=row.customer_id,
        status=row.status,
        total_minor=row.total_minor,
        currency=row.currency,
        placed_at=row.placed_at,
        last_event_at=row.last_event_at,
        last_event_type=row.last_event_type,
        version=row.version,
        shipment_status=row.shipment_status,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
    )


class OrderSearch:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._clock = clock

    async def search(
        self,
        customer_id: str | None = None,
        status: str | None = None,
        channel: str | None = None,
        placed_from: datetime | None = None,
        placed_to: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OrderPage:
        """Orders matching every given filter, newest first; `placed_from` inclusive, `placed_to` exclusive."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidQueryError("limit", f"must be between 1 and {MAX_PAGE}")
        placed_from, placed_to = _aware(placed_from), _aware(placed_to)
        if placed_from is not None and placed_to is not None and placed_from > placed_to:
            raise InvalidQueryError("placed_from", "must not be after placed_to")
        c = order_summaries.c
        query: Select[Any] = select(order_summaries)
        if customer_id is not None:
            query = query.where(c.customer_id == customer_id)
        if status is not None:
            query = query.where(c.status == status)
        if channel is not None:
            query = query.where(c.channel == channel)
        if placed_from is not None:
            query = query.where(c.placed_at >= placed_from)
        if placed_to is not None:
            query = query.where(c.placed_at < placed_to)
        if cursor is not None:
            after_placed, after_id = decode_cursor(cursor)
            query = query.where(tuple_(c.placed_at, c.order_id) < tuple_(after_placed, after_id))
        query = query.order_by(c.placed_at.desc(), c.order_id.desc()).limit(limit + 1)
        async with self._db.transaction() as session:
            rows = (await session.execute(query)).all()
        page = [_summary(row) for row in rows[:limit]]
        next_cursor = encode_cursor(page[-1].placed_at, page[-1].order_id) if len(rows) > limit else None
        return OrderPage(orders=page, next_cursor=next_cursor)

    async def stuck(self, older_than: timedelta, limit: int = 100) -> StuckOrders:
        """Open orders with no event for `older_than`, plus every order that needs attention or has a failed
        partial refund; oldest first."""
        if older_than < timedelta(0):
            raise InvalidQueryError("older_than", "must not be negative")
        if not 1 <= limit <= MAX_STUCK:
            raise InvalidQueryError("limit", f"must be between 1 and {MAX_STUCK}")
        now = self._clock()
        c = order_summaries.c
        query = (
            select(order_summaries)
            .where(
                or_(
                    and_(OPEN_ORDER, or_(c.status == NEEDS_ATTENTION, c.last_event_at < now - older_than)),
                    FAILED_REFUNDS,
                )
            )
            .order_by(c.last_event_at, c.order_id)
            .limit(limit)
        )
        async with self._db.transaction() as session:
            rows = (await session.execute(query)).all()
        return StuckOrders(
            as_of=now,
            older_than_s=older_than.total_seconds(),
            orders=[
                StuckOrderView(
                    order_id=row.order_id,
                    channel=row.channel,
                    external_reference=row.external_reference,
                    customer_id=row.customer_id,
                    status=row.status,
                    placed_at=row.placed_at,
                    last_event_at=row.last_event_at,
                    last_event_type=row.last_event_type,
                    stuck_for_s=max((now - row.last_event_at).total_seconds(), 0.0),
                    reason=_stuck_reason(row.status, bool(row.failed_refunds)),
                    failed_refunds=[FailedRefundView.model_validate(f) for f in row.failed_refunds],
                )
                for row in rows
            ],
        )

    async def tracking(self, order_id: UUID) -> TrackingView | None:
        """None when the projection has no such order."""
        async with self._db.transaction() as session:
            row = (await session.execute(select(order_summaries).where(order_summaries.c.order_id == order_id))).first()
        if row is None:
            return None
        left = [s for s in row.shipments if s.get("shipped_at")]
        return TrackingView(
            order_id=row.order_id,
            channel=row.channel,
            status=row.status,
            shipment_status=row.shipment_status,
            carrier=row.carrier,
            tracking_number=row.tracking_number,
            tracking_url=row.tracking_url,
            estimated_delivery=row.estimated_delivery,
            last_update=row.last_event_at,
            shipments=[ShipmentTrackingView.model_validate(s) for s in left],
            preparing=[PreparingShipmentView.model_validate(s) for s in row.shipments if not s.get("shipped_at")],
            delivered=bool(left)
            and all(s.get("status") == "delivered" for s in left)
            and all(s.get("status") in ("failed", "cancelled") for s in row.shipments if not s.get("shipped_at")),
        )
