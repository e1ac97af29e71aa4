"""Idempotency keys of the HTTP API, in Redis with a time to live.

A key moves from `pending` (a request is being served) to `done` (with the order id). A retry
with the same key and the same body gets the same order; the same key with another body is an
error, as is a retry that arrives while the first request is still in flight.
"""

import json
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from redis.asyncio import Redis


@dataclass(frozen=True)
class IdempotencyRecord:
    state: Literal["pending", "done"]
    fingerprint: str
    order_id: UUID | None


class IdempotencyStore:
    def __init__(self, redis: Redis, ttl_s: int = 24 * 3600, pending_ttl_s: int = 60) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._pending_ttl_s = pending_ttl_s

    @staticmethod
    def _key(scope: str, key: str) -> str:
        return f"oms:order-service:idempotency:{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> IdempotencyRecord | None:
        """None when this request may go ahead; otherwise what an earlier request with the key left."""
        value = json.dumps({"state": "pending", "fingerprint": fingerprint})
        if await self._redis.set(self._key(scope, key), value, nx=True, ex=self._pending_ttl_s):
            return None
        raw = await self._redis.get(self._key(scope, key))
        if raw is None:  # expired between SET and GET: try once more
            return await self.begin(scope, key, fingerprint)
        data = json.loads(raw)
        order_id = data.get("order_id")
        return IdempotencyRecord(data["state"], data["fingerprint"], UUID(order_id) if order_id else None)

    async def complete(self, scope: str, key: str, fingerprint: str, order_id: UUID) -> None:
        value = json.dumps({"state": "done", "fingerprint": fingerprint, "order_id": str(order_id)})
        await self._redis.set(self._key(scope, key), value, ex=self._ttl_s)

    async def abandon(self, scope: str, key: str) -> None:
        await self._redis.delete(self._key(scope, key))
