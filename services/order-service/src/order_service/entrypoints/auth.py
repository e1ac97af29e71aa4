"""Who may do what through the HTTP API.

- API keys (header `X-API-Key`) carry a role. `ops` may do everything. `channel` keys belong to one
  sales channel: they place that channel's orders and read, search and cancel only those; another
  channel's order answers 404, so its existence does not leak.
- Customers read an order's tracking view with a per-order tracking token (`?token=`), an HMAC of
  the order id, without any key.
"""

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from fastapi import Security, status
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator
from starlette.exceptions import HTTPException

from oms_events.values import Channel


class Role(StrEnum):
    OPS = "ops"
    CHANNEL = "channel"


class ApiKeyConfig(BaseModel):
    """One entry of the API_KEYS setting (a JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    key: SecretStr = Field(min_length=16)
    role: Role
    channel: Channel | None = None

    @model_validator(mode="after")
    def _channel_keys_name_their_channel(self) -> Self:
        if (self.role is Role.CHANNEL) != (self.channel is not None):
            raise ValueError("a channel key needs `channel`; an ops key must not have one")
        return self


API_KEYS_ADAPTER = TypeAdapter(list[ApiKeyConfig])


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    channel: str | None

    @property
    def is_ops(self) -> bool:
        return self.role is Role.OPS

    def may_see(self, channel: str) -> bool:
        return self.is_ops or self.channel == channel


class AuthError(HTTPException):
    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.error = error


def unauthenticated() -> AuthError:
    return AuthError(status.HTTP_401_UNAUTHORIZED, "unauthenticated", "A valid X-API-Key header is required.")


def forbidden(message: str) -> AuthError:
    return AuthError(status.HTTP_403_FORBIDDEN, "forbidden", message)


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key of role ops or channel")


class Authenticator:
    def __init__(self, keys: list[ApiKeyConfig], tracking_secret: str) -> None:
        # Digests of equal length, compared in constant time.
        self._keys = [(hashlib.sha256(k.key.get_secret_value().encode()).digest(), k) for k in keys]
        self._tracking_secret = tracking_secret.encode()

    def principal(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, config in self._keys:
            if hmac.compare_digest(known, digest):
                found = config
        if found is None:
            return None
        return Principal(found.name, found.role, found.channel.value if found.channel else None)

    def tracking_token(self, order_id: UUID) -> str:
        mac = hmac.new(self._tracking_secret, order_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def valid_tracking_token(self, order_id: UUID, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.tracking_token(order_id), token or "")

    def dependency(self, *, ops_only: bool = False) -> Callable[[str | None], Awaitable[Principal]]:
        async def authenticate(key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal:
            principal = self.principal(key)
            if principal is None:
                raise unauthenticated()
            if ops_only and not principal.is_ops:
                raise forbidden("This needs an ops key.")
            return principal

        return authenticate

    def optional_dependency(self) -> Callable[[str | None], Awaitable[Principal | None]]:
        async def maybe(key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal | None:
            return self.principal(key)

        return maybe
