"""Payment attempts per customer within a sliding time window, in Redis.

One sorted set per customer: member = order id, score = when its payment was first attempted. Adding
the same order again keeps its first score (ZADD NX), so a redelivered or re-sent command does not
count twice; entries older than the window are trimmed, and the key expires after a quiet window.
"""

import time
from collections.abc import Callable
from uuid import UUID

from redis.asyncio import Redis

KEY_PREFIX = "payment-service:velocity:"


class RedisVelocityCounter:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time, prefix: str = KEY_PREFIX) -> None:
        self._redis = redis
        self._clock = clock
        self._prefix = prefix

    async def attempts(self, customer_id: str, order_id: UUID, window_s: int) -> int:
        """Counts this order's attempt and returns the customer's attempts within the window, it included."""
        now = self._clock()
        key = f"{self._prefix}{customer_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {str(order_id): now}, nx=True)
            pipe.zremrangebyscore(key, "-inf", now - window_s)
            pipe.zcard(key)
            pipe.expire(key, window_s + 60)
            results = await pipe.execute()
        return int(results[2])
