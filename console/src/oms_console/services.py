"""The console's only way to the system: the services' documented HTTP APIs, with the signed-in key.

Every failure becomes a `ServiceError` the pages show as a message: a service that does not answer
(`ServiceUnavailableError`), a key it refuses (401/403), something not found, an action it refuses
(409 with its reason), a 503 of its own. A page never turns one into a 500.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from oms_runtime.logging import get_logger

log = get_logger(__name__)

SERVICE_LABELS = {
    "order-service": "order service",
    "inventory-service": "inventory service",
    "payment-service": "payment service",
    "fulfilment-service": "fulfilment service",
    "notification-service": "notification service",
}


class ServiceError(Exception):
    """A call the service did not answer as hoped; `message` is for the person at the screen."""

    def __init__(self, service: str, status: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.message = message


class ServiceUnavailableError(ServiceError):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class Services:
    """One pooled HTTP client for all services; each call carries the session's API key."""

    def __init__(self, urls: dict[str, str], *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None):
        self._urls = urls
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        key: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Answer:
        label = SERVICE_LABELS.get(service, service)
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self._client.request(
                method, self._urls[service] + path, params=query, json=json, headers={"X-API-Key": key}
            )
        except httpx.TimeoutException:
            log.warning("service did not answer in time", service=service, path=path)
            raise ServiceUnavailableError(
                service, None, "timeout", f"The {label} did not answer in time. Try again in a moment."
            ) from None
        except httpx.TransportError as exc:
            log.warning("service unreachable", service=service, path=path, error=type(exc).__name__)
            raise ServiceUnavailableError(
                service, None, "unreachable", f"The {label} cannot be reached ({type(exc).__name__}). Is it running?"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            code = body.get("error", "error") if isinstance(body, dict) else "error"
            message = body.get("message") if isinstance(body, dict) else None
            if response.status_code == 503:
                raise ServiceUnavailableError(
                    service, 503, code, f"The {label} is unavailable: {message or 'a dependency does not answer'}."
                )
            if response.status_code >= 500:
                raise ServiceError(service, response.status_code, code, f"The {label} failed ({response.status_code}).")
            raise ServiceError(service, response.status_code, code, message or f"{label}: {response.status_code}")
        return Answer(response.status_code, body)

    async def get(self, service: str, path: str, key: str, **params: Any) -> Any:
        return (await self.call(service, "GET", path, key, params=params)).body

    async def post(self, service: str, path: str, key: str, body: dict[str, Any]) -> Answer:
        return await self.call(service, "POST", path, key, json=body)
