"""The hot path's statements: an order's stock read in one statement, and its writes in one more.

A statement through SQLAlchemy's session costs about 0.5 ms of Python before its round trip; sent
straight to asyncpg under the session's transaction (`oms_runtime.driver.fetch_in_transaction`) about
0.1 ms. So every statement here is a module-level text with `$n` parameters, prepared once per
connection by asyncpg, rows as arrays (`unnest`) so that one text serves any number of them:

- `load_order_stock` reads, in one statement, what a decision about one order needs: its reservation
  (locked), the reservation's lines, the version of its stream, and the stock levels of the skus it
  asks for or holds, locked in one fixed order (sku, warehouse: concurrent orders cannot deadlock),
  each with its warehouse's coordinates (the sourcing rule) and its replenishment policy.
- `StockWrites` collects what the decision changes (levels, the events of their streams and of the
  reservation's, the reservation and its lines) and `flush` writes it all in one statement, `_WRITE`:
  every write is a data-modifying CTE that does nothing when the decision has none of its rows, so a
  reservation, a release, a shipment, an expiry and a change of the API are all the same text.

The levels were locked and read by this transaction, so the new levels (and the events that say so)
are known before the write. The UPDATE still checks every level itself, in BIGINT (never less than
nothing, never more reserved than on hand, never more on hand than an INTEGER holds) and that the
row's version is the one read: a row that does not match is not changed. Every write answers how many
rows it changed; a count that is not the decision's gives the transaction up (ConcurrencyError). The
events' unique (stream, version) is the optimistic concurrency of every stream, as in the runtime's
event store: an event that finds its version taken is not inserted (ON CONFLICT on that constraint),
it is missing from the count, and so it raises the same ConcurrencyError, without an error to map.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.stock_repository import Reservation, StockLevel
from inventory_service.domain.allocation import LineRequest, Pick
from inventory_service.domain.replenishment import ReplenishmentPolicy
from oms_events.values import INT32_MAX
from oms_runtime.driver import fetch_in_transaction
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


_LEVEL_COLUMNS: Final = """s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_stock, s.version,
       p.reorder_point, p.reorder_quantity, p.order_up_to, p.lead_time_days"""

# $1 order id, $2 the reservation's stream, $3 the skus asked for (sorted).
_LOAD: Final = f"""
WITH r AS (
    SELECT order_id, reservation_id, status, requested, shipping_address, created_at, expires_at
    FROM reservations WHERE order_id = $1::uuid
    FOR UPDATE
),
lv AS (
    SELECT {_LEVEL_COLUMNS}, w.latitude, w.longitude
    FROM stock_levels s
    JOIN warehouses w ON w.warehouse_id = s.warehouse_id
    LEFT JOIN replenishment_policies p ON p.sku = s.sku AND p.warehouse_id = s.warehouse_id
    WHERE s.sku = ANY($3::text[])
       OR s.sku IN (SELECT l.sku FROM reservation_lines l JOIN r ON l.reservation_id = r.reservation_id)
    ORDER BY s.sku, s.warehouse_id
    FOR UPDATE OF s
)
SELECT r.reservation_id, r.status, r.requested, r.shipping_address, r.created_at, r.expires_at,
       (SELECT json_agg(json_build_array(l.sku, l.warehouse_id, l.quantity, l.shipped)
                        ORDER BY l.sku, l.warehouse_id)
        FROM reservation_lines l WHERE l.reservation_id = r.reservation_id) AS lines,
       (SELECT max(e.version) FROM events e WHERE e.stream_id = $2::text) AS stream_version,
       lv.*
FROM (SELECT 1) AS k
LEFT JOIN r ON true
LEFT JOIN lv ON true
"""

# $1 sku, $2 warehouse.
_LOAD_LEVEL: Final = f"""
SELECT {_LEVEL_COLUMNS}, CAST(NULL AS double precision) AS latitude, CAST(NULL AS double precision) AS longitude
FROM stock_levels s
LEFT JOIN replenishment_policies p ON p.sku = s.sku AND p.warehouse_id = s.warehouse_id
WHERE s.sku = $1::text AND s.warehouse_id = $2::text
FOR UPDATE OF s
"""


def _locked_level(row: Any) -> LockedLevel:
    policy = None
    if row["reorder_point"] is not None:
        policy = ReplenishmentPolicy(
            row["sku"],
            row["warehouse_id"],
            row["reorder_point"],
            row["reorder_quantity"],
            row["order_up_to"],
            row["lead_time_days"],
        )
    return LockedLevel(
        StockLevel(row["sku"], row["warehouse_id"], row["on_hand"], row["reserved"], row["safety_stock"]),
        row["version"],
        row["latitude"],
        row["longitude"],
        policy,
    )


async def load_order_stock(
    session: AsyncSession, order_id: UUID, stream_id: str, skus: Sequence[str] = ()
) -> OrderStock:
    """The order's reservation (locked) and the levels of `skus` and of the skus it holds (locked)."""
    rows = await fetch_in_transaction(session, _LOAD, order_id, stream_id, sorted(set(skus)))
    first = rows[0]
    reservation = None
    lines: list[ReservationLine] = []
    if first["reservation_id"] is not None:
        lines = [ReservationLine(Pick(sku, wh, qty), shipped) for sku, wh, qty, shipped in first["lines"] or ()]
        reservation = Reservation(
            order_id,
            first["reservation_id"],
            first["status"],
            tuple(line.pick for line in lines),
            tuple(LineRequest(r["sku"], r["quantity"]) for r in first["requested"]),
            first["shipping_address"],
            first["created_at"],
            first["expires_at"],
        )
    levels = {(row["sku"], row["warehouse_id"]): _locked_level(row) for row in rows if row["sku"] is not None}
    return OrderStock(reservation, lines, int(first["stream_version"] or 0), levels)


async def lock_level(session: AsyncSession, sku: str, warehouse_id: str) -> LockedLevel | None:
    """One level, locked, with its policy (for changes that are not about an order)."""
    rows = await fetch_in_transaction(session, _LOAD_LEVEL, sku, warehouse_id)
    return _locked_level(rows[0]) if rows else None


# ---------------------------------------------------------------------- writes

# Every write of a decision, each a CTE that changes nothing when its arrays are empty or its guard
# parameter is NULL (or false), and the count of rows each one changed:
#  $1-$6    levels: sku, warehouse, on hand change, reserved change, safety stock (NULL: kept), new version
#  $7-$12   events: stream, stream type, version, event id, type, envelope (JSON text)
#  $13-$20  the reservation: order id, reservation id, status, requested, shipping address (JSON texts),
#           expires at, whether it is new (inserted), the status it moves from (NULL: it does not move)
#  $21-$23  its new lines: sku, warehouse, quantity
#  $24      the warehouse whose unshipped lines shipped (NULL: none)
_WRITE: Final = f"""
WITH levels AS (
    UPDATE stock_levels AS s
    SET on_hand = s.on_hand + v.on_hand_change,
        reserved = s.reserved + v.reserved_change,
        safety_stock = COALESCE(v.safety_stock, s.safety_stock),
        version = v.version,
        updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::int[])
         AS v(sku, warehouse_id, on_hand_change, reserved_change, safety_stock, version)
    WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id AND s.version = v.version - 1
      AND CAST(s.on_hand AS bigint) + v.on_hand_change BETWEEN 0 AND {INT32_MAX}
      AND CAST(s.reserved AS bigint) + v.reserved_change >= 0
      AND CAST(s.reserved AS bigint) + v.reserved_change <= CAST(s.on_hand AS bigint) + v.on_hand_change
    RETURNING 1
),
appended AS (
    INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope)
    SELECT e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.envelope::jsonb
    FROM unnest($7::text[], $8::text[], $9::int[], $10::uuid[], $11::text[], $12::text[])
         AS e(stream_id, stream_type, version, event_id, event_type, envelope)
    ON CONFLICT ON CONSTRAINT uq_events_stream_version DO NOTHING
    RETURNING 1
),
new_reservation AS (
    INSERT INTO reservations (order_id, reservation_id, status, requested, shipping_address, expires_at)
    SELECT $13::uuid, $14::uuid, $15::text, $16::text::jsonb, $17::text::jsonb, $18::timestamptz
    WHERE $19::boolean
    ON CONFLICT (order_id) DO NOTHING
    RETURNING 1
),
moved AS (
    UPDATE reservations SET status = $15::text, expires_at = $18::timestamptz, updated_at = now()
    WHERE order_id = $13::uuid AND status = $20::text
    RETURNING 1
),
added AS (
    INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity)
    SELECT $14::uuid, l.sku, l.warehouse_id, l.quantity
    FROM unnest($21::text[], $22::text[], $23::int[]) AS l(sku, warehouse_id, quantity)
),
shipped AS (
    UPDATE reservation_lines SET shipped = true
    WHERE reservation_id = $14::uuid AND warehouse_id = $24::text AND NOT shipped
    RETURNING 1
)
SELECT (SELECT count(*) FROM levels) AS levels, (SELECT count(*) FROM appended) AS events,
       (SELECT count(*) FROM new_reservation) AS reservation, (SELECT count(*) FROM moved) AS moved,
       (SELECT count(*) FROM shipped) AS shipped
"""


@dataclass
class StockWrites:
    """What one decision writes, collected, then written in one statement (`flush`)."""

    level_streams: list[tuple[str, int]] = field(default_factory=list)
    lv_sku: list[str] = field(default_factory=list)
    lv_warehouse: list[str] = field(default_factory=list)
    lv_on_hand: list[int] = field(default_factory=list)
    lv_reserved: list[int] = field(default_factory=list)
    lv_safety: list[int | None] = field(default_factory=list)
    lv_version: list[int] = field(default_factory=list)
    ev_stream: list[str] = field(default_factory=list)
    ev_stream_type: list[str] = field(default_factory=list)
    ev_version: list[int] = field(default_factory=list)
    ev_id: list[UUID] = field(default_factory=list)
    ev_type: list[str] = field(default_factory=list)
    ev_envelope: list[str] = field(default_factory=list)
    order_id: UUID | None = None
    reservation_id: UUID | None = None
    status: str | None = None
    requested: str | None = None
    shipping_address: str | None = None
    expires_at: datetime | None = None
    new_reservation: bool = False
    from_status: str | None = None
    ln_sku: list[str] = field(default_factory=list)
    ln_warehouse: list[str] = field(default_factory=list)
    ln_quantity: list[int] = field(default_factory=list)
    ship_warehouse: str | None = None
    ship_lines: int = 0

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
        self.lv_sku.append(level.sku)
        self.lv_warehouse.append(level.warehouse_id)
        self.lv_on_hand.append(on_hand_change)
        self.lv_reserved.append(reserved_change)
        self.lv_safety.append(safety_stock)
        self.lv_version.append(version)
        self.level_streams.append((stream_id, version - 1))

    def append(
        self, stream_id: str, stream_type: str, version: int, event_id: UUID, event_type: str, value: str
    ) -> None:
        """An event of a stream, at this version (its expected version plus one); `value` its envelope's JSON."""
        self.ev_stream.append(stream_id)
        self.ev_stream_type.append(stream_type)
        self.ev_version.append(version)
        self.ev_id.append(event_id)
        self.ev_type.append(event_type)
        self.ev_envelope.append(value)

    def add_reservation(
        self,
        order_id: UUID,
        reservation_id: UUID,
        status: str,
        requested: Sequence[LineRequest],
        shipping_address: dict[str, Any] | None,
        expires_at: datetime | None,
    ) -> None:
        self.new_reservation = True
        self.order_id, self.reservation_id, self.status, self.expires_at = order_id, reservation_id, status, expires_at
        self.requested = json.dumps([{"sku": r.sku, "quantity": r.quantity} for r in requested])
        self.shipping_address = json.dumps(shipping_address) if shipping_address is not None else None

    def set_status(self, order_id: UUID, from_status: str, status: str, expires_at: datetime | None) -> None:
        self.order_id, self.from_status, self.status, self.expires_at = order_id, from_status, status, expires_at

    def add_lines(self, reservation_id: UUID, picks: Sequence[Pick]) -> None:
        self.reservation_id = reservation_id
        for pick in picks:
            self.ln_sku.append(pick.sku)
            self.ln_warehouse.append(pick.warehouse_id)
            self.ln_quantity.append(pick.quantity)

    def ship(self, reservation_id: UUID, warehouse_id: str, lines: int) -> None:
        """Marks the reservation's `lines` unshipped lines of the warehouse shipped."""
        self.reservation_id, self.ship_warehouse, self.ship_lines = reservation_id, warehouse_id, lines

    def _expected(self) -> dict[str, int]:
        return {
            "levels": len(self.lv_sku),
            "events": len(self.ev_id),
            "reservation": int(self.new_reservation),
            "moved": int(self.from_status is not None),
            "shipped": self.ship_lines if self.ship_warehouse is not None else 0,
        }

    async def flush(self, session: AsyncSession) -> None:
        """Writes everything collected in one statement.

        Raises ConcurrencyError when a level, a line, the reservation or a stream's version was not what
        the decision read: the levels were locked and read fresh, but the reservation's lines and stream
        version are read from the statement's snapshot, which misses what a transaction that held the
        order's lock committed meanwhile (two consumers of one partition, during a rebalance). Then
        nothing of the decision may stay: the transaction is given up and a new one decides again on
        what is there."""
        expected = self._expected()
        if not any(expected.values()) and not self.ln_sku:
            return
        [row] = await fetch_in_transaction(
            session,
            _WRITE,
            self.lv_sku,
            self.lv_warehouse,
            self.lv_on_hand,
            self.lv_reserved,
            self.lv_safety,
            self.lv_version,
            self.ev_stream,
            self.ev_stream_type,
            self.ev_version,
            self.ev_id,
            self.ev_type,
            self.ev_envelope,
            self.order_id,
            self.reservation_id,
            self.status,
            self.requested,
            self.shipping_address,
            self.expires_at,
            self.new_reservation,
            self.from_status,
            self.ln_sku,
            self.ln_warehouse,
            self.ln_quantity,
            self.ship_warehouse,
        )
        changed = dict(row.items())
        if changed != expected:
            stream, version = self._first_stream()
            raise ConcurrencyError(stream, version)

    def _first_stream(self) -> tuple[str, int]:
        if self.level_streams:
            return self.level_streams[0]
        if self.ev_stream:
            return self.ev_stream[0], self.ev_version[0] - 1
        return f"reservation of {self.order_id}", -1
