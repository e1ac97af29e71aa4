"""Structured logging: JSON outside a terminal, with personal data masked in every field.

Tracebacks never carry the values of a database statement: a payment token or an address in a failed
INSERT would otherwise be written out with SQLAlchemy's `[parameters: ...]` and asyncpg's
`invalid input for query argument $1: <value>`. Both are hidden in structlog's lines and in the standard
library's (uvicorn, aiokafka, SQLAlchemy).
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from sqlalchemy.exc import StatementError

from oms_runtime.tracing import add_trace_ids

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PAN = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# Only international numbers (+CC ...): a bare digit run could be a date, an amount or an id.
_PHONE = re.compile(r"(?<![\w+])\+\d[\d ()-]{5,}(\d{2})\b")
_PERSONAL_KEYS = ("phone", "email", "mobile")


def mask_email(value: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`."""
    return _EMAIL.sub(r"\1***@\2", value)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _redact_pan(match: re.Match[str]) -> str:
    # Only digit runs that pass the card checksum: order refs and timestamps stay readable.
    digits = re.sub(r"\D", "", match.group(0))
    return "[card-number-redacted]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


# asyncpg repeats the value it could not encode: `invalid input for query argument $2: 'tok_...' (...)`.
_QUERY_ARGUMENT = re.compile(r"(invalid input for query argument \$\d+:).*")


def mask_text(value: str) -> str:
    """Masks card numbers, email addresses and phone numbers anywhere in a string, and the values a
    database driver repeats in its errors."""
    value = _PAN.sub(_redact_pan, value)
    value = mask_email(value)
    value = _QUERY_ARGUMENT.sub(r"\1 [value hidden]", value)
    return _PHONE.sub(r"***\1", value)


def hide_statement_parameters(error: BaseException | None) -> None:
    """Makes SQLAlchemy leave the bound parameters out of this error's text, and out of its causes'.

    The engines are meant to be created with `hide_parameters=True`; this holds for every error logged,
    whichever engine raised it.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StatementError):
            error.hide_parameters = True
        error = error.__cause__ or error.__context__


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        error: BaseException | None = exc_info[1]
        return error
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def _hide_parameters(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    hide_statement_parameters(_exception_of(event_dict.get("exc_info")))
    return event_dict


class _MaskingFormatter(logging.Formatter):
    """The standard library's records (uvicorn, aiokafka, SQLAlchemy's own loggers), masked as ours are."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            hide_statement_parameters(record.exc_info[1])
            record.exc_text = None  # another handler's text of it may hold the parameters
        return mask_text(super().format(record))


_RETRIED_BY_THE_CLIENT = re.compile(
    r"Unable (?:to )?connect|Unable to (?:update|request) metadata|Connect call failed|NodeNotReady|"
    r"KafkaConnectionError|Connection (?:reset|refused|closed|lost)|RequestTimedOut|NotCoordinator|"
    r"CoordinatorNotAvailable|CoordinatorLoadInProgress|NotLeaderForPartition|LeaderNotAvailable|"
    r"Heartbeat session expired|"
    r"\[Errno 111\]|\[Errno 104\]"
)


class _RetriedByTheClient(logging.Filter):
    """aiokafka logs at ERROR what it then retries by itself (a broker away, a partition leader or group
    coordinator moving while the broker restarts): the condition is expected and handled, so it is written
    as a WARNING, its message (the reason) unchanged. Anything else aiokafka calls an error stays one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and record.name.startswith("aiokafka")
            and _RETRIED_BY_THE_CLIENT.search(record.getMessage())
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (a test's capture, say), not the one at start."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def _mask_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key in ("timestamp", "level", "logger"):
            continue
        if isinstance(value, str) and any(k in key.lower() for k in _PERSONAL_KEYS) and "@" not in value:
            event_dict[key] = f"***{value[-2:]}" if len(value) > 4 else "***"
            continue
        event_dict[key] = _mask(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        _hide_parameters,
        structlog.processors.format_exc_info,
        add_trace_ids,
        _mask_personal_data,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.EventRenamer("message") if use_json else _noop, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries log through the standard library; keep them quiet, on the same stream, and masked.
    root = logging.getLogger()
    if not root.handlers:
        root.setLevel(logging.WARNING)
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    from oms_runtime.outages import OutageRecords  # it logs through this module

    handler = _StderrHandler()
    handler.addFilter(_RetriedByTheClient())
    handler.addFilter(OutageRecords())
    handler.setFormatter(_MaskingFormatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)


def _logger_name(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Bound as `logger_name` (structlog's get_logger has a `logger` parameter of its own), written as `logger`.
    if "logger_name" in event_dict:
        event_dict["logger"] = event_dict.pop("logger_name")
    return event_dict


def _noop(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event_dict


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    # The module's name on every line (`logger`), as the standard library's lines have theirs: an operator
    # counting or filtering a log's lines by where they come from needs it.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, **({"logger_name": name} if name else {}))
    return logger
