"""Work that no message caused (an API call, a timer, a seed): the same transaction and outbox as a handler.

`local_context` is the `MessageContext` of such work: it emits and records like a handler, with no
causing envelope. `UseCaseRunner.run` runs one use case in a transaction of its own (its messages go to the
relay at the commit); a use case that lost a race with another writer (e.g. a saga
reply for the same stream committed first) is run again from the start, on the new state.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import MessageRegistry
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError
from oms_runtime.messaging import MessageContext
from oms_runtime.outbox import Outbox

T = TypeVar("T")


def local_context(session: AsyncSession, producer_name: str, registry: MessageRegistry) -> MessageContext:
    """The context of work that starts at an API call or a timer: no message caused it."""
    return MessageContext(
        session=session, envelope=None, producer_name=producer_name, registry=registry, outbox=Outbox()
    )


def lost_a_race(exc: Exception) -> bool:
    """Another writer appended to the same stream first: deciding again on the new state may succeed."""
    return isinstance(exc, ConcurrencyError)


class UseCaseRunner:
    """Runs use cases each in a transaction of its own, with their messages in the outbox.

    `retry_on` says which failures are worth a fresh attempt (by default a lost optimistic-concurrency
    race); every other one, and the last attempt's, goes to the caller.
    """

    def __init__(
        self,
        db: Database,
        registry: MessageRegistry,
        producer_name: str,
        *,
        attempts: int = 5,
        retry_on: Callable[[Exception], bool] = lost_a_race,
    ) -> None:
        self._db = db
        self._registry = registry
        self._producer_name = producer_name
        self._attempts = attempts
        self._retry_on = retry_on

    def context(self, session: AsyncSession) -> MessageContext:
        return local_context(session, self._producer_name, self._registry)

    async def run(self, use_case: Callable[[MessageContext], Awaitable[T]]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._db.transaction() as session:
                    ctx = self.context(session)
                    result = await use_case(ctx)
                return result
            except Exception as exc:
                if attempt == self._attempts or not self._retry_on(exc):
                    raise
        raise AssertionError("unreachable")
