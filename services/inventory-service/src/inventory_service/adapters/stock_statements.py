"""The hot path's statements: an order's stock read in one statement, and its writes in one more.

A database statement costs about a millisecond all in (SQLAlchemy, asyncpg, a round trip, PostgreSQL),
which made statements most of inventory-service's CPU per order (28 on the happy path). So:

- `load_order_stock` reads, in one statement, what a decision about one order needs: its reservation
  (locked), the reservation's lines, the version of its stream, and the stock levels of the skus it
  asks for or holds, locked in one fixed order (sku, warehouse: concurrent orders cannot deadlock),
  each with its warehouse's coordinates (the sourcing rule) and its replenishment policy.
- `StockWrites` collects what the decision changes (levels, the events of their streams and of the
  reservation's, the reservation and its lines) and `flush` writes it all as data-modifying CTEs of
  one statement, arrays unnested so that one statement text serves any number of rows.

The levels were locked and read by this transaction, so the new levels (and the events that say so)
are known before the write. The UPDATE still checks every level itself, in BIGINT (never less than
nothing, never more reserved than on hand, never more on hand than an INTEGER holds) and that the
row's version is the one read: a row that does not match is not changed, the statement says so and
the transaction is given up. The events' unique (stream, version) is the optimistic concurrency of
every stream, as in the runtime's event store.

The statements are built once (their texts and their compiled forms are cached): building them per
call cost more CPU than running them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, DateTime, Float, Integer, String, TextClause, Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.stock_repository import Reservation, StockLevel
from inventory_service.domain.allocation import LineRequest, Pick
from inventory_service.domain.replenishment import ReplenishmentPolicy
from oms_events import Envelope
from oms_events.values import INT32_MAX
from oms_runtime.eventstore import ConcurrencyError


@dataclass(frozen=True)
class LockedLevel:
    """A stock level as this transaction locked it, with what a decision about it needs beside it."""

    level: StockLevel
    version: int
    latitude: float | None
    longitude: float | None
    policy: ReplenishmentPolicy | None


@dataclass(frozen=True)
class ReservationLine:
    pick: Pick
    shipped: bool


@dataclass
class OrderStock:
    """An order's reservation (None: it has none), its lines and stream version, and the locked levels."""

    reservation: Reservation | None
    lines: list[ReservationLine]
    stream_version: int
    levels: dict[tuple[str, str], LockedLevel]

    def unshipped(self, warehouse_id: str | None = None) -> list[Pick]:
        return [
            line.pick
            for line in self.lines
            if not line.shipped and (warehouse_id is None or line.pick.warehouse_id == warehouse_id)
        ]


_LOAD = text(
    """
WITH r AS (
    SELECT order_id, reservation_id, status, requested, shipping_address, created_at, expires_at
    FROM reservations WHERE order_id = :order_id
    FOR UPDATE
),
lv AS (
    SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, s.version,
           w.latitude, w.longitude,
           p.reorder_point, p.reorder_quantity, p.order_up_to, p.lead_time_days
    FROM stock_levels s
    JOIN warehouses w ON w.warehouse_id = s.warehouse_id
    LEFT JOIN replenishment_policies p ON p.sku = s.sku AND p.warehouse_id = s.warehouse_id
    WHERE s.sku = ANY(CAST(:skus AS text[]))
       OR s.sku IN (SELECT l.sku FROM reservation_lines l JOIN r ON l.reservation_id = r.reservation_id)
    ORDER BY s.sku, s.warehouse_id
    FOR UPDATE OF s
)
SELECT r.reservation_id, r.status, r.requested, r.shipping_address, r.created_at, r.expires_at,
       (SELECT json_agg(json_build_array(l.sku, l.warehouse_id, l.quantity, l.shipped)
                        ORDER BY l.sku, l.warehouse_id)
        FROM reservation_lines l WHERE l.reservation_id = r.reservation_id) AS lines,
       (SELECT max(e.version) FROM events e WHERE e.stream_id = :stream_id) AS stream_version,
       lv.sku, lv.warehouse_id, lv.on_hand, lv.reserved, lv.safety_stock, lv.version,
       lv.latitude, lv.longitude,
       lv.reorder_point, lv.reorder_quantity, lv.order_up_to, lv.lead_time_days
FROM (SELECT 1) AS k
LEFT JOIN r ON true
LEFT JOIN lv ON true
"""
).columns(
    reservation_id=Uuid,
    status=String,
    requested=JSONB,
    shipping_address=JSONB,
    created_at=DateTime(timezone=True),
    expires_at=DateTime(timezone=True),
    lines=JSON,
    stream_version=Integer,
    sku=String,
    warehouse_id=String,
    on_hand=Integer,
    reserved=Integer,
    safety_stock=Integer,
    version=Integer,
    latitude=Float,
    longitude=Float,
    reorder_point=Integer,
    reorder_quantity=Integer,
    order_up_to=Integer,
    lead_time_days=Integer,
)

_LOAD_LEVEL = text(
    """
SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, s.version,
       CAST(NULL AS double precision) AS latitude, CAST(NULL AS double precision) AS longitude,
       p.reorder_point, p.reorder_quantity, p.order_up_to, p.lead_time_days
FROM stock_levels s
LEFT JOIN replenishment_policies p ON p.sku = s.sku AND p.warehouse_id = s.warehouse_id
WHERE s.sku = :sku AND s.warehouse_id = :warehouse_id
FOR UPDATE OF s
"""
)


def _locked_level(row: Any) -> LockedLevel:
    policy = None
    if row.reorder_point is not None:
        policy = ReplenishmentPolicy(
            row.sku, row.warehouse_id, row.reorder_point, row.reorder_quantity, row.order_up_to, row.lead_time_days
        )
    return LockedLevel(
        StockLevel(row.sku, row.warehouse_id, row.on_hand, row.reserved, row.safety_stock),
        row.version,
        row.latitude,
        row.longitude,
        policy,
    )


async def load_order_stock(
    session: AsyncSession, order_id: UUID, stream_id: str, skus: Sequence[str] = ()
) -> OrderStock:
    """The order's reservation (locked) and the levels of `skus` and of the skus it holds (locked)."""
    params = {"order_id": order_id, "stream_id": stream_id, "skus": sorted(set(skus))}
    rows = (await session.execute(_LOAD, params)).all()
    first = rows[0]
    reservation = None
    lines: list[ReservationLine] = []
    if first.reservation_id is not None:
        lines = [ReservationLine(Pick(sku, wh, qty), shipped) for sku, wh, qty, shipped in first.lines or ()]
        reservation = Reservation(
            order_id,
            first.reservation_id,
            first.status,
            tuple(line.pick for line in lines),
            tuple(LineRequest(r["sku"], r["quantity"]) for r in first.requested),
            first.shipping_address,
            first.created_at,
            first.expires_at,
        )
    levels = {(row.sku, row.warehouse_id): _locked_level(row) for row in rows if row.sku is not None}
    return OrderStock(reservation, lines, int(first.stream_version or 0), levels)


async def lock_level(session: AsyncSession, sku: str, warehouse_id: str) -> LockedLevel | None:
    """One level, locked, with its policy (for changes that are not about an order)."""
    row = (await session.execute(_LOAD_LEVEL, {"sku": sku, "warehouse_id": warehouse_id})).first()
    return _locked_level(row) if row is not None else None


# ---------------------------------------------------------------------- writes

_PARTS: dict[str, str] = {
    "levels": """
levels AS (
    UPDATE stock_levels AS s
    SET on_hand = s.on_hand + v.on_hand_change,
        reserved = s.reserved + v.reserved_change,
        safety_stock = COALESCE(v.safety_stock, s.safety_stock),
        version = v.version,
        updated_at = now()
    FROM unnest(CAST(:lv_sku AS text[]), CAST(:lv_warehouse AS text[]), CAST(:lv_on_hand AS bigint[]),
                CAST(:lv_reserved AS bigint[]), CAST(:lv_safety AS int[]), CAST(:lv_version AS int[]))
         AS v(sku, warehouse_id, on_hand_change, reserved_change, safety_stock, version)
    WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id AND s.version = v.version - 1
      AND CAST(s.on_hand AS bigint) + v.on_hand_change BETWEEN 0 AND :int32_max
      AND CAST(s.reserved AS bigint) + v.reserved_change >= 0
      AND CAST(s.reserved AS bigint) + v.reserved_change <= CAST(s.on_hand AS bigint) + v.on_hand_change
    RETURNING 1
)""",
    "events": """
appended AS (
    INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope)
    SELECT stream_id, stream_type, version, event_id, event_type, CAST(envelope AS jsonb)
    FROM unnest(CAST(:ev_stream AS text[]), CAST(:ev_stream_type AS text[]), CAST(:ev_version AS int[]),
                CAST(:ev_id AS uuid[]), CAST(:ev_type AS text[]), CAST(:ev_envelope AS text[]))
         AS e(stream_id, stream_type, version, event_id, event_type, envelope)
)""",
    "reservation": """
new_reservation AS (
    INSERT INTO reservations (order_id, reservation_id, status, requested, shipping_address, expires_at)
    VALUES (:order_id, :reservation_id, :status, CAST(:requested AS jsonb), CAST(:shipping_address AS jsonb),
            :expires_at)
    RETURNING reservation_id
)""",
    "status": """
moved AS (
    UPDATE reservations SET status = :status, expires_at = :expires_at, updated_at = now()
    WHERE order_id = :order_id AND status = :from_status
    RETURNING 1
)""",
    "lines": """
added AS (
    INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity)
    SELECT :reservation_id, sku, warehouse_id, quantity
    FROM unnest(CAST(:ln_sku AS text[]), CAST(:ln_warehouse AS text[]), CAST(:ln_quantity AS int[]))
         AS l(sku, warehouse_id, quantity)
)""",
    "ship": """
shipped AS (
    UPDATE reservation_lines SET shipped = true
    WHERE reservation_id = :reservation_id AND warehouse_id = :ship_warehouse AND NOT shipped
    RETURNING 1
)""",
}
_TYPES: dict[str, Any] = {
    "order_id": Uuid,
    "reservation_id": Uuid,
    "expires_at": DateTime(timezone=True),
    "status": String,
    "ship_warehouse": String,
    "from_status": String,
}
# The writes whose rows are counted: what they change must be what the decision read (see `flush`).
_COUNTED = {"levels": "levels", "status": "moved", "ship": "shipped"}


@cache
def _together(parts: tuple[str, ...]) -> TextClause:
    """The named writes as one statement; it answers how many rows each counted write changed."""
    sql = "WITH " + ",".join(_PARTS[p] for p in parts)
    counts = [f"(SELECT count(*) FROM {_COUNTED[p]})" for p in parts if p in _COUNTED]
    sql += "\nSELECT " + (", ".join(counts) if counts else "0")
    statement = text(sql)
    names = {name: type_ for name, type_ in _TYPES.items() if f":{name}" in sql}
    return statement.bindparams(*(bindparam(name, type_=type_) for name, type_ in names.items()))


@dataclass
class StockWrites:
    """What one decision writes, collected, then written in one statement (`flush`)."""

    level_streams: list[tuple[str, int]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)

    def _column(self, part: str, name: str) -> list[Any]:
        if part not in self.parts:
            self.parts.append(part)
        column: list[Any] = self.params.setdefault(name, [])
        return column

    def change_level(
        self,
        stream_id: str,
        level: StockLevel,
        on_hand_change: int,
        reserved_change: int,
        safety_stock: int | None,
        version: int,
    ) -> None:
        """`version` is the row's version after the change (the one read, plus one)."""
        for name, value in (
            ("lv_sku", level.sku),
            ("lv_warehouse", level.warehouse_id),
            ("lv_on_hand", on_hand_change),
            ("lv_reserved", reserved_change),
            ("lv_safety", safety_stock),
            ("lv_version", version),
        ):
            self._column("levels", name).append(value)
        self.level_streams.append((stream_id, version - 1))

    def append(self, stream_id: str, stream_type: str, version: int, envelope: Envelope) -> None:
        """An event of a stream, at this version (its expected version plus one)."""
        for name, value in (
            ("ev_stream", stream_id),
            ("ev_stream_type", stream_type),
            ("ev_version", version),
            ("ev_id", envelope.event_id),
            ("ev_type", envelope.type),
            ("ev_envelope", envelope.model_dump_json()),
        ):
            self._column("events", name).append(value)

    def add_reservation(
        self,
        order_id: UUID,
        reservation_id: UUID,
        status: str,
        requested: str,
        shipping_address: str | None,
        expires_at: datetime | None,
    ) -> None:
        """`requested` and `shipping_address` as JSON texts."""
        self.parts.append("reservation")
        self.params.update(
            order_id=order_id,
            reservation_id=reservation_id,
            status=status,
            requested=requested,
            shipping_address=shipping_address,
            expires_at=expires_at,
        )

    def set_status(self, order_id: UUID, from_status: str, status: str, expires_at: datetime | None) -> None:
        self.parts.append("status")
        self.expected["status"] = 1
        self.params.update(order_id=order_id, from_status=from_status, status=status, expires_at=expires_at)

    def add_lines(self, reservation_id: UUID, picks: Sequence[Pick]) -> None:
        if not picks:
            return
        self.params["reservation_id"] = reservation_id
        for pick in picks:
            self._column("lines", "ln_sku").append(pick.sku)
            self._column("lines", "ln_warehouse").append(pick.warehouse_id)
            self._column("lines", "ln_quantity").append(pick.quantity)

    def ship(self, reservation_id: UUID, warehouse_id: str, lines: int) -> None:
        """Marks the reservation's `lines` unshipped lines of the warehouse shipped."""
        self.parts.append("ship")
        self.expected["ship"] = lines
        self.params.update(reservation_id=reservation_id, ship_warehouse=warehouse_id)

    async def flush(self, session: AsyncSession) -> None:
        """Writes everything collected in one statement, and starts empty again.

        Raises ConcurrencyError when a level, a line or the reservation was not what the decision read:
        the levels were locked and read fresh, but the reservation's lines and stream version are read
        from the statement's snapshot, which misses what a transaction that held the order's lock
        committed meanwhile (two consumers of one partition, during a rebalance). Then nothing of the
        decision may stay: the transaction is given up and a new one decides again on what is there."""
        if not self.parts:
            return
        parts, params, streams, expected = tuple(self.parts), self.params, self.level_streams, self.expected
        self.parts, self.params, self.level_streams, self.expected = [], {}, [], {}
        if "levels" in parts:
            params["int32_max"] = INT32_MAX
            expected["levels"] = len(streams)
        try:
            row = (await session.execute(_together(parts), params)).one()
        except IntegrityError as exc:
            if "uq_events_stream_version" in str(exc.orig):
                stream = params["ev_stream"][0] if params.get("ev_stream") else "?"
                raise ConcurrencyError(stream, -1) from exc
            raise
        changed = dict(zip([p for p in parts if p in _COUNTED], row, strict=False))
        if changed != {p: expected[p] for p in changed}:
            stream, version = streams[0] if streams else (f"reservation of {params.get('order_id')}", -1)
            raise ConcurrencyError(stream, version)
