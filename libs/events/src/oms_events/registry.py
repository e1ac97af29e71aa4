"""Reading and writing messages: envelope <-> typed message, with upcasting of old versions."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from oms_events.envelope import Envelope, TraceContext
from oms_events.messages import MESSAGE_TYPES, ContractMessage, Message
from oms_events.values import FieldProblem, field_problems

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the payload of version N of a type into the payload of version N+1."""


class ContractViolationError(ValueError):
    """A message does not follow the contract; `reason` says how, naming the fields.

    `errors` lists the bad fields one by one when a payload failed validation (empty otherwise).
    """

    def __init__(self, reason: str, errors: Sequence[FieldProblem] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = list(errors)


class UnknownMessageTypeError(ContractViolationError):
    pass


def describe_validation_error(error: ValidationError) -> str:
    """One line that names every bad field, e.g. `lines.0.quantity: Input should be greater than 0`."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


class MessageRegistry:
    def __init__(
        self,
        types: Iterable[type[ContractMessage]] = MESSAGE_TYPES,
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self._types = {t.message_type: t for t in types}
        self._upcasters = dict(upcasters or {})

    def message_class(self, message_type: str) -> type[ContractMessage]:
        try:
            return self._types[message_type]
        except KeyError:
            raise UnknownMessageTypeError(f"unknown message type {message_type!r}") from None

    def knows(self, message_type: str) -> bool:
        return message_type in self._types

    def wrap(
        self,
        message: ContractMessage,
        *,
        producer: str,
        causation: Envelope | None = None,
        trace_context: TraceContext | None = None,
    ) -> Envelope:
        """Put a message in an envelope; a caused message inherits the cause's trace."""
        return Envelope(
            type=message.message_type,
            schema_version=message.schema_version,
            producer=producer,
            correlation_id=message.correlation_id,
            causation_id=causation.event_id if causation else None,
            trace_context=trace_context or (causation.trace_context if causation else TraceContext()),
            payload=message.model_dump(mode="json"),
        )

    def parse_envelope(self, raw: bytes) -> Envelope:
        try:
            return Envelope.from_bytes(raw)
        except ValidationError as exc:
            raise ContractViolationError(f"invalid envelope: {describe_validation_error(exc)}") from exc

    def decode(self, envelope: Envelope) -> Message:
        """The typed message of an envelope about an order (e.g. read from an order's stream), upcast to the
        current schema version. A message that is not about an order is a contract violation here."""
        message = self.decode_any(envelope)
        if not isinstance(message, Message):
            raise ContractViolationError(f"{envelope.type} is not a message about an order")
        return message

    def decode_any(self, envelope: Envelope) -> ContractMessage:
        """The typed message of an envelope, whatever it is keyed by, upcast to the current schema version."""
        cls = self.message_class(envelope.type)
        payload = dict(envelope.payload)
        version = envelope.schema_version
        if version > cls.schema_version:
            raise ContractViolationError(
                f"{envelope.type} schema_version {version} is newer than the known {cls.schema_version}"
            )
        while version < cls.schema_version:
            upcaster = self._upcasters.get((envelope.type, version))
            if upcaster is None:
                raise ContractViolationError(f"no upcaster for {envelope.type} v{version}")
            payload = upcaster(payload)
            version += 1
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise ContractViolationError(
                f"invalid {envelope.type} payload: {describe_validation_error(exc)}", field_problems(exc)
            ) from exc

    def parse(self, raw: bytes) -> tuple[Envelope, Message]:
        envelope = self.parse_envelope(raw)
        return envelope, self.decode(envelope)

    def parse_any(self, raw: bytes) -> tuple[Envelope, ContractMessage]:
        envelope = self.parse_envelope(raw)
        return envelope, self.decode_any(envelope)


def default_registry() -> MessageRegistry:
    from oms_events.upcasters import UPCASTERS

    return MessageRegistry(MESSAGE_TYPES, UPCASTERS)


__all__ = [
    "ContractViolationError",
    "MessageRegistry",
    "UnknownMessageTypeError",
    "Upcaster",
    "default_registry",
    "describe_validation_error",
]
