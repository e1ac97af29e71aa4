"""order-service's hot statements as asyncpg SQL: the load of a decision, the claim, and the writes.

Every placement and every saga reply runs these, so they go straight to asyncpg under the session's
transaction (`oms_runtime.driver.fetch_in_transaction`): about 0.11 ms of Python per statement against
0.45-0.54 ms through SQLAlchemy's session. Each text is a module-level constant (or built once per
combination of writes and cached), so asyncpg prepares it once per connection.

A decision's writes (the read model, the saga's step, and for a placement the sales rows) are
data-modifying CTEs of one statement: PostgreSQL runs every one of them, referenced or not, on one
snapshot. They touch different tables, and `order_summaries` comes first: a projection rebuild locks it
first, so a writer waits there before it holds a lock on any other read model.

JSON goes in and out as text (`::jsonb`, `::text`), as the runtime's event store does: no codec per
connection, and pydantic parses the text directly.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

LOAD: Final = """
SELECT e.version, e.envelope::text, s.command_type, s.state, s.updated_at, t.token
FROM (SELECT $1::uuid AS order_id) AS k
LEFT JOIN events AS e ON e.stream_id = $2::text
LEFT JOIN saga_steps AS s ON s.order_id = k.order_id
LEFT JOIN payment_tokens AS t ON t.order_id = k.order_id
ORDER BY e.version
"""
"""An order's stream, with the step its saga waits on and its payment token beside every row. Outer
joins from a one-row key, so that an order without a stream still gets a row (without an event)."""

CLAIM: Final = """
WITH claim AS (
    INSERT INTO order_references (channel, external_reference, order_id)
    VALUES ($1::text, $2::text, $3::uuid)
    ON CONFLICT ON CONSTRAINT pk_order_references DO NOTHING
    RETURNING order_id
), keep_token AS (
    INSERT INTO payment_tokens (order_id, token) SELECT order_id, $4::text FROM claim
)
SELECT order_id, true AS created FROM claim
UNION ALL
SELECT order_id, false FROM order_references WHERE channel = $1::text AND external_reference = $2::text
"""
"""Claims a channel + external reference and keeps the payment token. The holder's row is read from the
statement's snapshot, which does not hold this claim's insert: one row either way, none when another
transaction took the reference while this one waited for it."""


@dataclass(frozen=True)
class Write:
    """Data-modifying CTEs that share `params` positional parameters, written `{0}`, `{1}`... in each."""

    ctes: tuple[str, ...]
    params: int


SUMMARY_COLUMNS: Final = (
    ("order_id", "uuid"),
    ("channel", "text"),
    ("external_reference", "text"),
    ("customer_id", "text"),
    ("status", "text"),
    ("total_minor", "bigint"),
    ("currency", "text"),
    ("placed_at", "timestamptz"),
    ("last_event_at", "timestamptz"),
    ("last_event_type", "text"),
    ("version", "int"),
    ("warehouses", "text[]"),
    ("shipments", "jsonb"),
    ("shipment_status", "text"),
    ("carrier", "text"),
    ("tracking_number", "text"),
    ("tracking_url", "text"),
    ("estimated_delivery", "date"),
    ("failed_refunds", "jsonb"),
)
"""`order_summaries`' columns (but `updated_at`) in parameter order, with their parameters' types."""


def _summary_write() -> Write:
    names = [name for name, _ in SUMMARY_COLUMNS]
    # A JSON parameter is text cast to jsonb.
    values = [
        f"{{{i}}}::text::jsonb" if kind == "jsonb" else f"{{{i}}}::{kind}"
        for i, (_, kind) in enumerate(SUMMARY_COLUMNS)
    ]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in [*names[1:], "updated_at"])
    return Write(
        (
            f"INSERT INTO order_summaries ({', '.join(names)}, updated_at) VALUES ({', '.join(values)}, now()) "
            f"ON CONFLICT (order_id) DO UPDATE SET {updates} WHERE order_summaries.version < EXCLUDED.version",
        ),
        len(SUMMARY_COLUMNS),
    )


WRITES: Final = {
    # Unless the stored row is at the new version or past it (idempotent by stream version).
    "summary": _summary_write(),
    # The saga's step: order id, now, the awaited reply, the command's type, the command (JSON), the deadline.
    "await_reply": Write(
        (
            "INSERT INTO saga_steps (order_id, awaiting, command_type, command, attempts, deadline_at, state, "
            "updated_at) VALUES ({0}::uuid, {2}::text, {3}::text, {4}::text::jsonb, 1, {5}::timestamptz, "
            "'waiting', {1}::timestamptz) ON CONFLICT (order_id) DO UPDATE SET awaiting = EXCLUDED.awaiting, "
            "command_type = EXCLUDED.command_type, command = EXCLUDED.command, attempts = 1, "
            "deadline_at = EXCLUDED.deadline_at, state = 'waiting', updated_at = EXCLUDED.updated_at",
        ),
        6,
    ),
    # The order is final: no step, no token (order id).
    "end": Write(
        (
            "DELETE FROM saga_steps WHERE order_id = {0}::uuid",
            "DELETE FROM payment_tokens WHERE order_id = {0}::uuid",
        ),
        1,
    ),
    # Order id, now.
    "park": Write(
        ("UPDATE saga_steps SET state = 'parked', updated_at = {1}::timestamptz WHERE order_id = {0}::uuid",), 2
    ),
    # Order id, now, the deadline.
    "move_deadline": Write(
        (
            "UPDATE saga_steps SET deadline_at = {2}::timestamptz, updated_at = {1}::timestamptz WHERE order_id = {0}::uuid",
        ),
        3,
    ),
}
"""The writes a decision may make, by name."""


def register(name: str, write: Write) -> None:
    """Another read model's writes (the sales rows of a placement), to be named in `together`."""
    WRITES[name] = write


@cache
def together(names: tuple[str, ...]) -> str:
    """The named writes as one statement, their parameters numbered in the order of the names."""
    ctes: list[str] = []
    offset = 0
    for name in names:
        write = WRITES[name]
        positions = [f"${offset + i + 1}" for i in range(write.params)]
        ctes += (f"w{len(ctes)} AS ({cte.format(*positions)})" for cte in write.ctes)
        offset += write.params
    return f"WITH {', '.join(ctes)} SELECT true"


_PLACING_CTES: Final = (
    "claim AS (INSERT INTO order_references (channel, external_reference, order_id) "
    "VALUES ($1::text, $2::text, $3::uuid) ON CONFLICT ON CONSTRAINT pk_order_references DO NOTHING "
    "RETURNING order_id)",
    "keep_token AS (INSERT INTO payment_tokens (order_id, token) SELECT order_id, $4::text FROM claim)",
    "appended AS (INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope) "
    "SELECT $5::text, $6::text, e.version, e.event_id, e.event_type, e.envelope::jsonb "
    "FROM unnest($7::int[], $8::uuid[], $9::text[], $10::text[]) AS e(version, event_id, event_type, envelope) "
    "WHERE EXISTS (SELECT 1 FROM claim) "
    "ON CONFLICT ON CONSTRAINT uq_events_stream_version DO NOTHING RETURNING 1)",
)
PLACING_PARAMS: Final = 10
"""The claim's parameters (channel, external reference, order id, payment token), then the append's
(stream id, stream type, versions, event ids, event types, envelopes as JSON text)."""


@cache
def placing(names: tuple[str, ...]) -> str:
    """A new order in one statement: the claim of its reference and its token, the append of its events,
    and the named writes (parameters after `PLACING_PARAMS`). It answers how many references were claimed
    and how many events appended; the writes run either way, so that a caller that did not claim rolls
    the transaction back (`OrderRepository.place`)."""
    ctes = list(_PLACING_CTES)
    offset = PLACING_PARAMS
    for name in names:
        write = WRITES[name]
        positions = [f"${offset + i + 1}" for i in range(write.params)]
        ctes += (f"w{len(ctes)} AS ({cte.format(*positions)})" for cte in write.ctes)
        offset += write.params
    return f"WITH {', '.join(ctes)} SELECT (SELECT count(*) FROM claim), (SELECT count(*) FROM appended)"


def flatten(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """The parameters of `together(names)`, from one group per name (in the same order)."""
    return [value for group in groups for value in group]
