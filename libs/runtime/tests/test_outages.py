"""A dependency away is told apart from a bug: the first is a WARNING with its reason (the request got its
503, the round or the start-up step is retried), the second an ERROR with its traceback."""

import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, OperationalError

from oms_runtime.http_api import ServiceApi
from oms_runtime.outages import OutageRecords, is_outage, loop_exception_handler, reason


class PostgresStartingUpError(Exception):
    sqlstate = "57P03"


def raised_from(cause: BaseException, exc: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
        DBAPIError("SELECT 1", {}, PostgresStartingUpError("the database system is starting up")),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        RedisConnectionError("Error 111 connecting"),
        KafkaConnectionError("No connection to node"),
        NotLeaderForPartitionError(),
        raised_from(ConnectionResetError(104, "reset"), RuntimeError("the sweep failed")),
    ],
)
def test_a_dependency_away_is_an_outage(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("a bug"), KeyError("missing"), DBAPIError("INSERT", {}, Exception("duplicate key value"))],
)
def test_a_bug_is_not_an_outage(exc: BaseException) -> None:
    assert not is_outage(exc)


def test_the_reason_names_the_failure_and_its_cause() -> None:
    exc = raised_from(ConnectionRefusedError(111, "Connect call failed"), RuntimeError("ping failed"))
    assert reason(exc) == "RuntimeError: ping failed (from ConnectionRefusedError: [Errno 111] Connect call failed)"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, message: str, **fields: Any) -> None:
        self.lines.append(("warning", message, fields))

    def error(self, message: str, **fields: Any) -> None:
        self.lines.append(("error", message, fields))


async def test_a_503_for_an_outage_is_a_warning_and_for_a_bug_an_error_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import oms_runtime.http_guard

    recorder = Recorder()
    monkeypatch.setattr(oms_runtime.http_guard, "log", recorder)
    app = ServiceApi(title="outages")

    @app.get("/outage")
    async def outage() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connect call failed"))

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/outage")).status_code == 503
        assert (await client.get("/bug")).status_code == 503
    [(level_1, _, fields_1), (level_2, message_2, fields_2)] = recorder.lines
    assert level_1 == "warning"
    assert "Connect call failed" in fields_1["reason"]
    assert "exc_info" not in fields_1
    assert (level_2, message_2) == ("error", "request failed")
    assert isinstance(fields_2["exc_info"], RuntimeError)


def test_an_abandoned_connection_attempt_is_a_warning_and_any_other_lost_exception_keeps_asyncios_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import oms_runtime.outages

    recorder = Recorder()
    monkeypatch.setattr(oms_runtime.outages, "log", recorder)
    defaults: list[dict[str, Any]] = []

    class Loop:
        def default_exception_handler(self, context: dict[str, Any]) -> None:
            defaults.append(context)

    lost = ConnectionError("unexpected connection_lost() call")
    bug = ValueError("a bug")
    loop: Any = Loop()
    loop_exception_handler(loop, {"message": "Future exception was never retrieved", "exception": lost})
    loop_exception_handler(loop, {"message": "Future exception was never retrieved", "exception": bug})
    assert [(level, fields["reason"]) for level, _, fields in recorder.lines] == [
        ("warning", "ConnectionError: unexpected connection_lost() call")
    ]
    assert [c["exception"] for c in defaults] == [bug]


def test_a_library_record_of_an_outage_is_a_warning_without_traceback_and_any_other_error_stays() -> None:
    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "svc.faststream", logging.ERROR, __file__, 1, "%s", (str(exc),), (type(exc), exc, None)
        )

    outage = record(
        raised_from(
            asyncpg.CannotConnectNowError("the database system is starting up"), RuntimeError("database unavailable")
        )
    )
    bug = record(ValueError("a bug"))
    for r in (outage, bug):
        assert OutageRecords().filter(r)
    assert (outage.levelname, outage.exc_info) == ("WARNING", None)
    assert "the database system is starting up" in outage.getMessage()
    assert bug.levelname == "ERROR"
    assert bug.exc_info is not None
