"""The saga's replies of one polled batch, decided in memory and written once at the batch's end.

A reply run alone costs three statements (the load, the append, the read model with the saga's step),
which made order-service's saga consumer the slowest stage of the system: it waited on a round trip per
statement, about 20 per order. Inside the runtime's batch transaction (`oms_runtime.messaging.BatchScope`)
the repository instead:

- loads every order the batch names in one statement (`LOAD_MANY`), and keeps each one in memory for the
  rest of the batch, so that a second reply for the same order decides on what the first one did;
- queues the decisions' writes: events (`PendingAppends`), the last read-model row of each order, and
  the saga's step of each order folded into its final change (`StepChange`);
- writes them at the end: the events in one statement (the streams' versions are checked there), the
  read models and the steps in a second one, the sales report's rows after them.

A failure anywhere rolls the whole batch back, and the runtime runs its records one by one without the
batch, each through the statements of a reply alone: the result is the same either way, which
`test_order_batches.py` checks.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope, Message
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.eventstore import EventStore, PendingAppends
from order_service.adapters.order_sql import SUMMARY_COLUMNS
from order_service.adapters.projection import Projection

LOAD_MANY: Final = """
SELECT k.order_id, e.version, e.envelope::text, s.command_type, s.state, s.updated_at, t.token
FROM unnest($1::uuid[], $2::text[]) AS k(order_id, stream_id)
LEFT JOIN events AS e ON e.stream_id = k.stream_id
LEFT JOIN saga_steps AS s ON s.order_id = k.order_id
LEFT JOIN payment_tokens AS t ON t.order_id = k.order_id
ORDER BY k.order_id, e.version
"""
"""`order_sql.LOAD` for many orders: each row starts with the order's id."""


def _summaries_cte() -> str:
    names = [name for name, _ in SUMMARY_COLUMNS]
    arrays = []
    values = []
    for i, (name, kind) in enumerate(SUMMARY_COLUMNS, start=1):
        if kind == "jsonb":
            arrays.append(f"${i}::text[]")
            values.append(f"v.{name}::jsonb")
        elif kind.endswith("[]"):
            # An array of arrays would be flattened by unnest: each row's array travels as JSON text.
            arrays.append(f"${i}::text[]")
            values.append(
                f"CASE WHEN v.{name} IS NULL THEN NULL "
                f"ELSE ARRAY(SELECT jsonb_array_elements_text(v.{name}::jsonb)) END"
            )
        else:
            arrays.append(f"${i}::{kind}[]")
            values.append(f"v.{name}")
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in [*names[1:], "updated_at"])
    return (
        f"summaries AS (INSERT INTO order_summaries ({', '.join(names)}, updated_at) "
        f"SELECT {', '.join(values)}, now() FROM unnest({', '.join(arrays)}) AS v({', '.join(names)}) "
        f"ON CONFLICT (order_id) DO UPDATE SET {updates} WHERE order_summaries.version < EXCLUDED.version)"
    )


_N = len(SUMMARY_COLUMNS)

WRITE_MANY: Final = (
    # order_summaries first, as in a reply's own statement (`order_sql`): a projection rebuild locks it
    # first, so a writer waits there before it holds a lock on another table.
    f"WITH {_summaries_cte()}, "
    "awaits AS (INSERT INTO saga_steps (order_id, awaiting, command_type, command, attempts, deadline_at, state, "
    "updated_at) SELECT v.order_id, v.awaiting, v.command_type, v.command::jsonb, 1, v.deadline_at, v.state, "
    f"v.updated_at FROM unnest(${_N + 1}::uuid[], ${_N + 2}::text[], ${_N + 3}::text[], ${_N + 4}::text[], "
    f"${_N + 5}::timestamptz[], ${_N + 6}::text[], ${_N + 7}::timestamptz[]) "
    "AS v(order_id, awaiting, command_type, command, deadline_at, state, updated_at) "
    "ON CONFLICT (order_id) DO UPDATE SET awaiting = EXCLUDED.awaiting, command_type = EXCLUDED.command_type, "
    "command = EXCLUDED.command, attempts = 1, deadline_at = EXCLUDED.deadline_at, state = EXCLUDED.state, "
    "updated_at = EXCLUDED.updated_at), "
    "changes AS (UPDATE saga_steps AS s SET state = COALESCE(v.state, s.state), "
    "deadline_at = COALESCE(v.deadline_at, s.deadline_at), updated_at = v.updated_at "
    f"FROM unnest(${_N + 8}::uuid[], ${_N + 9}::text[], ${_N + 10}::timestamptz[], ${_N + 11}::timestamptz[]) "
    "AS v(order_id, state, deadline_at, updated_at) WHERE s.order_id = v.order_id), "
    f"ends AS (DELETE FROM saga_steps WHERE order_id = ANY(${_N + 12}::uuid[])) "
    f"DELETE FROM payment_tokens WHERE order_id = ANY(${_N + 13}::uuid[])"
)
"""Every read-model row and saga step of a batch in one statement; each order is in one of the step's
CTEs at most (`StepChange`), so no row is changed twice."""


@dataclass(frozen=True)
class StepChange:
    """What a run of decisions did to one order's saga step, folded into one change.

    A reply alone writes its step at once (`order_sql.WRITES`: await_reply, end, park, move_deadline);
    in a batch the writes of one order fold into this, which is written as one of: the row as a whole
    (`awaiting`: the last command sent, with what came after it), its removal (`ended`), or an update of
    the row as stored (`state`, `deadline_at`)."""

    awaiting: tuple[str, str, str, datetime] | None = None
    """The awaited reply, the command's type, the command (JSON), the deadline."""
    ended: bool = False
    token_removed: bool = False
    state: str | None = None
    deadline_at: datetime | None = None
    updated_at: datetime | None = None

    def then(self, write: str, params: list[Any]) -> "StepChange":
        """This change followed by a reply's step write (its name and parameters, as `order_sql` has them)."""
        if write == "await_reply":
            _, now, awaiting, command_type, command, deadline = params
            return StepChange(
                awaiting=(awaiting, command_type, command, deadline),
                token_removed=self.token_removed,
                state="waiting",
                updated_at=now,
            )
        if write == "end":
            return StepChange(ended=True, token_removed=True)
        if self.ended:
            return self  # no row left to park or to move
        if write == "park":
            return replace(self, state="parked", updated_at=params[1])
        if write == "move_deadline":
            if self.awaiting is not None:
                awaiting, command_type, command, _ = self.awaiting
                return replace(self, awaiting=(awaiting, command_type, command, params[2]), updated_at=params[1])
            return replace(self, deadline_at=params[2], updated_at=params[1])
        raise ValueError(f"unknown step write {write!r}")


@dataclass
class _ProjectionCall:
    order_id: UUID
    status: str
    events: Sequence[tuple[Envelope, Message]]
    version: int


@dataclass
class OrderBatch:
    """The orders of one batch transaction, and the writes their decisions queued."""

    loaded: dict[UUID, Any] = field(default_factory=dict)
    """Order id -> `LoadedOrder`, as the batch's decisions left it."""
    appends: PendingAppends = field(default_factory=PendingAppends)
    summaries: dict[UUID, list[Any]] = field(default_factory=dict)
    steps: dict[UUID, StepChange] = field(default_factory=dict)
    projections: list[_ProjectionCall] = field(default_factory=list)

    def step(self, order_id: UUID, write: str, params: list[Any]) -> None:
        self.steps[order_id] = self.steps.get(order_id, StepChange()).then(write, params)

    def project(self, order_id: UUID, status: str, events: Sequence[tuple[Envelope, Message]], version: int) -> None:
        self.projections.append(_ProjectionCall(order_id, status, events, version))

    async def write(self, session: AsyncSession, store: EventStore, others: Projection | None) -> None:
        """Writes what the batch queued: the events, then the read models and steps, then the others."""
        await store.append_pending(session, self.appends)
        if self.summaries or self.steps:
            await fetch_in_transaction(session, WRITE_MANY, *self._write_params())
        if others is not None:
            for call in self.projections:
                await others.apply(session, call.order_id, call.status, call.events, version=call.version)
        self.summaries.clear()
        self.steps.clear()
        self.projections.clear()

    def _write_params(self) -> list[Any]:
        columns: list[list[Any]] = [[] for _ in SUMMARY_COLUMNS]
        for params in self.summaries.values():
            for i, ((_, kind), value) in enumerate(zip(SUMMARY_COLUMNS, params, strict=True)):
                if kind.endswith("[]") and value is not None:
                    value = _json_list(value)
                columns[i].append(value)
        awaits: list[list[Any]] = [[] for _ in range(7)]
        changes: list[list[Any]] = [[] for _ in range(4)]
        ends: list[UUID] = []
        tokens: list[UUID] = []
        for order_id, change in self.steps.items():
            if change.token_removed:
                tokens.append(order_id)
            if change.ended:
                ends.append(order_id)
            elif change.awaiting is not None:
                awaiting, command_type, command, deadline = change.awaiting
                row = [order_id, awaiting, command_type, command, deadline, change.state, change.updated_at]
                for column, value in zip(awaits, row, strict=True):
                    column.append(value)
            elif change.updated_at is not None:
                row = [order_id, change.state, change.deadline_at, change.updated_at]
                for column, value in zip(changes, row, strict=True):
                    column.append(value)
        return [*columns, *awaits, *changes, ends, tokens]


def _json_list(values: list[str]) -> str:
    return to_json(values).decode()
