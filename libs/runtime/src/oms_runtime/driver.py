"""Statements sent straight to asyncpg inside a SQLAlchemy session's transaction.

For the runtime's statements that every message pays (the inbox, the outbox, event appends): asyncpg's
own prepared statement costs about 40 us of Python where SQLAlchemy's execute costs about 140 us
(docs/benchmarks.md), and `unnest` arrays make a batch one statement of the same text whatever its size,
prepared once per connection.
"""

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_ADAPTER = "oms_runtime.driver.adapter"
"""Where a session keeps the asyncpg adapter of its transaction (its `info`), with the transaction."""

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
    adapter = await _adapter(session)
    if adapter._transaction is None:
        await adapter._start_transaction()
    for listener in _statement_listeners:
        listener(sql)
    rows: list[Any] = await adapter.driver_connection.fetch(sql, *args)
    return rows


async def _adapter(session: AsyncSession) -> Any:
    """The SQLAlchemy adapter of the asyncpg connection the session's transaction runs on.

    Asked of SQLAlchemy once per transaction and kept: each ask is two awaits through SQLAlchemy's
    greenlet bridge, about 45 us of Python on a statement that costs 95 us all in. A session that
    starts another transaction (after a commit) may be on another connection, so it asks again."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_ADAPTER)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1]
    connection = await session.connection()
    adapter = (await connection.get_raw_connection()).dbapi_connection
    session.info[_ADAPTER] = (session.sync_session.get_transaction(), adapter)
    return adapter
