"""Who may do what through order-service's HTTP API.

- API keys (header `X-API-Key`, shared with every service: oms_runtime.http_api) carry a role. `ops` may
  do everything. `channel` keys belong to one sales channel: they place that channel's orders and read,
  search and cancel only those; another channel's order answers 404, so its existence does not leak.
- Customers read an order's tracking view with a per-order tracking token (`?token=`), an HMAC of
  the order id, without any key.
"""

import base64
import hashlib
import hmac
from uuid import UUID

from oms_runtime.http_api import (
    API_KEYS_ADAPTER,
    ApiKeyAuthenticator,
    ApiKeyConfig,
    AuthError,
    Principal,
    Role,
    forbidden,
    same_secret,
    unauthenticated,
)

__all__ = [
    "API_KEYS_ADAPTER",
    "ApiKeyConfig",
    "AuthError",
    "Authenticator",
    "Principal",
    "Role",
    "forbidden",
    "unauthenticated",
]


class Authenticator(ApiKeyAuthenticator):
    def __init__(self, keys: list[ApiKeyConfig], tracking_secret: str) -> None:
        super().__init__(keys)
        self._tracking_secret = tracking_secret.encode()

    def tracking_token(self, order_id: UUID) -> str:
        mac = hmac.new(self._tracking_secret, order_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def valid_tracking_token(self, order_id: UUID, token: str | None) -> bool:
        # Any text may arrive in `?token=`: compared as bytes (compare_digest refuses non-ASCII str).
        return bool(token) and same_secret(token, self.tracking_token(order_id))
