"""Which failures are a dependency being away (the broker restarting, PostgreSQL recovering, Redis gone),
as opposed to a bug: the first is expected and handled (a retry, a 503, a round run again), so it is
logged as a WARNING with its reason and no traceback; the second is an ERROR with its traceback, the line an
operator must find.

A failure counts as an outage when it, or an exception it was raised from, is a connection or timeout
error of the socket, asyncpg, SQLAlchemy, Redis or aiokafka, a PostgreSQL error of class 08 (connection),
53 (insufficient resources) or 57 (operator intervention: "the database system is starting up", a
shutdown), or an aiokafka error the client itself calls retriable.
"""

import asyncio
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.exceptions
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from oms_runtime.logging import get_logger

log = get_logger(__name__)

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, TimeoutError
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no free pooled connection within DB_POOL_TIMEOUT_S
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
)
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
        if isinstance(current, BaseExceptionGroup):
            pending += list(current.exceptions)
    return seen


def is_outage(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, _OUTAGE_TYPES):
            return True
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES:
            return True
        if isinstance(cause, kafka_errors.KafkaError) and getattr(cause, "retriable", False):
            return True
    return False


def reason(exc: BaseException) -> str:
    """`Type: message` of the failure and, when it was raised from another, of the first cause."""
    text = f"{type(exc).__name__}: {exc}"
    root = exc.__cause__ or exc.__context__
    if root is not None and root is not exc:
        text += f" (from {type(root).__name__}: {root})"
    return text[:500]


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's last word on an exception nobody retrieved. asyncpg's connection attempt leaves one
    behind when its caller gives up on it (a deadline, a connect timeout) while the server is away: the
    transport's `connection_lost` fails a future no one awaits any more ("Future exception was never
    retrieved", ConnectionError). That is an outage already answered (a 503, a retry), so a WARNING with
    its reason; any other exception left unretrieved is a bug, and keeps asyncio's ERROR and traceback."""
    exc = context.get("exception")
    if isinstance(exc, BaseException) and is_outage(exc):
        log.warning("a failed connection attempt no one awaited any more", reason=reason(exc))
        return
    loop.default_exception_handler(context)


class OutageRecords(logging.Filter):
    """A standard-library record at ERROR whose exception is an outage (faststream logging the exception a
    consumer's batch raised to be retried because the database is restarting, say) becomes a WARNING with
    the reason instead of a traceback: the condition is expected and handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and exc is not None and is_outage(exc):
            record.msg = f"{record.getMessage()} (a dependency is unavailable, retried: {reason(exc)})"
            record.args = None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
