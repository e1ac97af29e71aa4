"""Webhooks, pure: the Standard Webhooks signature, the retry schedule, which targets may be called, and
what a failed attempt does to its delivery and its endpoint.

The signature is Standard Webhooks' (so receivers verify it with any of its libraries): the secret is
`whsec_` + base64 of 24 to 64 random bytes; the signed content is `<webhook-id>.<webhook-timestamp>.<body>`;
`webhook-signature` is `v1,<base64 of HMAC-SHA256>`. The `webhook-id` is the CloudEvent's `id` (the event
id): the same on every attempt and every redelivery, so a receiver dedupes on it.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from tenacity import RetryCallState, wait_random_exponential

SECRET_PREFIX: Final = "whsec_"
SECRET_MIN_BYTES: Final = 24
SECRET_MAX_BYTES: Final = 64

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidSecretError(ValueError):
    pass


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret; InvalidSecretError says what is wrong with it."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecretError(f"must start with {SECRET_PREFIX} (the Standard Webhooks format)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecretError(f"must be {SECRET_PREFIX} followed by base64") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise InvalidSecretError(f"must hold {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes of key")
    return key


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks format (for examples and tests)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header of one request: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


# ---------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (tenacity's `wait_random_exponential`: a random wait between 0
    and base * 2^(attempt-1), capped), for at most `retry_for` after the delivery's first failure; an
    endpoint failing without a success for `disable_after` is disabled (ops re-enable it)."""

    base_s: float
    max_s: float
    retry_for: timedelta
    disable_after: timedelta

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1, 2, ...)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        wait = wait_random_exponential(multiplier=self.base_s, max=self.max_s)
        # Never 0: a failing endpoint is not called again within the same instant.
        return max(float(wait(state)), min(self.base_s, self.max_s) / 10)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Waiting for its turn, its next attempt, or its endpoint to be enabled again."""
    DELIVERED = "delivered"
    """The endpoint answered 2xx."""
    FAILED = "failed"
    """Given up after the retry window (`redeliver` queues it again)."""


class SubscriptionStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    """Failing for too long (or disabled by ops): nothing is sent, deliveries wait."""


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """What one failed attempt does."""

    give_up: bool
    next_attempt_at: datetime | None
    give_up_at: datetime
    disable_endpoint: bool
    failing_since: datetime


def after_failure(
    policy: RetryPolicy,
    *,
    attempt: int,
    now: datetime,
    give_up_at: datetime | None,
    failing_since: datetime | None,
) -> FailureOutcome:
    """A failed attempt: retry later, or give up past the delivery's window; disable the endpoint when it has
    answered nothing but failures for `disable_after`."""
    deadline = give_up_at if give_up_at is not None else now + policy.retry_for
    since = failing_since if failing_since is not None else now
    next_at = now + timedelta(seconds=policy.delay_s(attempt))
    give_up = next_at > deadline
    return FailureOutcome(
        give_up=give_up,
        next_attempt_at=None if give_up else next_at,
        give_up_at=deadline,
        disable_endpoint=now - since >= policy.disable_after,
        failing_since=since,
    )


# ---------------------------------------------------------------- targets


class TargetRefusedError(ValueError):
    """A URL this service will not call: a private, loopback or link-local address, or not http(s)."""


def refused_address(address: IpAddress) -> str | None:
    """Why an address may not be called (None when it may): everything but public unicast is refused,
    IPv4 inside IPv6 (mapped, 6to4, NAT64's well-known prefix) judged by the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in ipaddress.IPv6Network("64:ff9b::/96"):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return refused_address(inner)
    for flag, reason in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_private, "private"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
    ):
        if flag:
            return reason
    if not address.is_global:
        return "not public"
    return None


def check_addresses(host: str, addresses: list[IpAddress], *, allow_private: bool) -> None:
    """Every address a host resolves to must be public (one private answer is enough to refuse: a
    resolver may hand out either)."""
    if not addresses:
        raise TargetRefusedError(f"{host} resolves to no address")
    if allow_private:
        return
    for address in addresses:
        reason = refused_address(address)
        if reason is not None:
            raise TargetRefusedError(f"{host} resolves to a {reason} address ({address}); not allowed")
