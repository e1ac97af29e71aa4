"""The public event contract of the OMS.

Everything another team may rely on lives here: the envelope every message travels in, the
events (past tense) and commands (imperative) with their schema versions, the topic names, and
the upcasters that read older stored or published versions.
"""

from oms_events.envelope import Envelope, TraceContext
from oms_events.messages import (
    MESSAGE_TYPES,
    Command,
    ContractMessage,
    Event,
    Message,
    StockEvent,
    message_class,
)
from oms_events.registry import (
    ContractViolationError,
    MessageRegistry,
    UnknownMessageTypeError,
    default_registry,
)

__all__ = [
    "MESSAGE_TYPES",
    "Command",
    "ContractMessage",
    "ContractViolationError",
    "Envelope",
    "Event",
    "Message",
    "MessageRegistry",
    "StockEvent",
    "TraceContext",
    "UnknownMessageTypeError",
    "default_registry",
    "message_class",
]
