"""Upcasters: read an older schema version of a message as the current one.

Key: (message type, version it reads). Each returns the payload of the next version. None are
needed yet: every message is at version 1.
"""

from oms_events.registry import Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
