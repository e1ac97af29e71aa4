"""The real-time availability view in Redis: per sku, a hash of warehouse -> its latest levels.

It is a projection of the StockLevelChanged events. A write carries the event's `sequence` (the count of
changes of that sku + warehouse) and a Lua script keeps the newest: a redelivered or late event, or a
rebuild racing the live consumer, never puts an older level back. So applying an event is idempotent,
and a rebuild may run while the service serves.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from oms_events.messages import StockLevelChanged

_KEEP_NEWEST = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local seen = tonumber(cjson.decode(current)['sequence'])
  if seen >= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _args(event: StockLevelChanged, occurred_at: str) -> list[str | int]:
    value = json.dumps(
        {
            "on_hand": event.on_hand,
            "reserved": event.reserved,
            "available": event.available,
            "safety_stock": event.safety_stock,
            "sequence": event.sequence,
            "updated_at": occurred_at,
        }
    )
    return [event.warehouse_id, value, event.sequence]


@dataclass(frozen=True)
class WarehouseAvailability:
    warehouse_id: str
    on_hand: int
    reserved: int
    available: int
    safety_stock: int
    sequence: int
    updated_at: str


class AvailabilityView:
    def __init__(self, redis: "Redis", key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._script = redis.register_script(_KEEP_NEWEST)

    def key(self, sku: str) -> str:
        return f"{self._prefix}{sku}"

    async def apply(self, event: StockLevelChanged, occurred_at: str) -> bool:
        """True when the event was newer than what the view held."""
        written = await self._script(keys=[self.key(event.sku)], args=_args(event, occurred_at))
        return bool(written)

    async def apply_many(self, changes: Sequence[tuple[StockLevelChanged, str]]) -> int:
        """`apply` for many events in one round trip (a pipeline); returns how many were newer."""
        if not changes:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for event, occurred_at in changes:
            await self._script(keys=[self.key(event.sku)], args=_args(event, occurred_at), client=pipe)
        return sum(bool(written) for written in await pipe.execute())

    async def availability(self, sku: str) -> list[WarehouseAvailability]:
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(self.key(sku)))
        found = []
        for warehouse, value in sorted(raw.items()):
            data: dict[str, Any] = json.loads(value)
            found.append(WarehouseAvailability(warehouse_id=warehouse.decode(), **data))
        return found

    async def clear(self) -> int:
        """Deletes the whole view (before a rebuild); returns the number of skus it held."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=500):
            deleted += int(await self._redis.delete(key))
        return deleted
