"""Statements sent straight to asyncpg inside a SQLAlchemy session's transaction.

For the runtime's statements that every message pays (the inbox, the outbox, event appends): asyncpg's
own prepared statement costs about 40 us of Python where SQLAlchemy's execute costs about 140 us
(docs/benchmarks.md), and `unnest` arrays make a batch one statement of the same text whatever its size,
prepared once per connection.
"""

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

StatementListener = Callable[[str], None]
_statement_listeners: list[StatementListener] = []


def listen_to_driver_statements(listener: StatementListener) -> Callable[[], None]:
    """Calls `listener` with every statement `fetch_in_transaction` sends (tests count statements with it:
    SQLAlchemy's `before_cursor_execute` does not see these); returns what removes it."""
    _statement_listeners.append(listener)
    return lambda: _statement_listeners.remove(listener)


async def fetch_in_transaction(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """Runs one statement straight on asyncpg, inside the session's transaction; returns its rows.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily,
    at the first statement it runs itself: a statement sent past it has to start the transaction the
    same way first, or it would run in autocommit, outside the transaction (a private part of the
    adapter, pinned by uv.lock and by the runtime's tests, which roll such a statement back).
    """
    connection = await session.connection()
    adapter = (await connection.get_raw_connection()).dbapi_connection
    if adapter._transaction is None:  # type: ignore[union-attr]
        await adapter._start_transaction()  # type: ignore[union-attr]
    for listener in _statement_listeners:
        listener(sql)
    rows: list[Any] = await adapter.driver_connection.fetch(sql, *args)  # type: ignore[union-attr]
    return rows
