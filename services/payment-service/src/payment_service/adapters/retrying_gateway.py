"""Retries a gateway's transient failures with exponential backoff, under the same idempotency key.

Wraps any PaymentGateway. A call that takes longer than `timeout_s` counts as a transient failure
(the gateway may have acted: the retry's key makes it answer with what it did). Permanent errors and
answers (approved or not) are returned at once. When every attempt failed, the last
TransientGatewayError is raised: the message is then retried by the runtime (and dead-lettered in the
end), and the saga's deadline re-sends the command, all under the same keys.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from oms_runtime.logging import get_logger
from payment_service.domain.gateway import GatewayResult, PaymentGateway, TransientGatewayError

log = get_logger(__name__)

T = TypeVar("T")


class RetryingGateway:
    def __init__(
        self,
        inner: PaymentGateway,
        *,
        attempts: int = 4,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._inner = inner
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._sleep = sleep

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                # A timeout scope, not wait_for: no task of its own per call.
                async with asyncio.timeout(self._timeout_s):
                    return await call()
            except (TransientGatewayError, TimeoutError, ConnectionError) as exc:
                error = exc if isinstance(exc, TransientGatewayError) else TransientGatewayError(repr(exc))
                if attempt == self._attempts:
                    log.warning("gateway failed transiently; giving up", operation=operation, attempts=attempt)
                    raise error from exc
                delay = min(self._backoff_s * 2 ** (attempt - 1), self._max_backoff_s)
                log.info(
                    "gateway failed transiently; retrying",
                    operation=operation,
                    attempt=attempt,
                    retry_in_s=delay,
                    error=str(error),
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def authorise(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        return await self._call(
            "authorise", lambda: self._inner.authorise(idempotency_key, amount_minor, currency, token)
        )

    async def capture(
        self, idempotency_key: str, authorisation_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        return await self._call(
            "capture", lambda: self._inner.capture(idempotency_key, authorisation_reference, amount_minor, currency)
        )

    async def void(self, idempotency_key: str, authorisation_reference: str) -> GatewayResult:
        return await self._call("void", lambda: self._inner.void(idempotency_key, authorisation_reference))

    async def refund(
        self, idempotency_key: str, capture_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        return await self._call(
            "refund", lambda: self._inner.refund(idempotency_key, capture_reference, amount_minor, currency)
        )
