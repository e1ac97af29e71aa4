"""Webhooks, pure: the signature as a Standard Webhooks library verifies it, the backoff's bounds, which
addresses are refused, and what a failure does to a delivery and its endpoint."""

import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notification_service.webhooks.domain import (
    InvalidSecretError,
    RetryPolicy,
    TargetRefusedError,
    after_failure,
    check_addresses,
    new_secret,
    refused_address,
    secret_bytes,
    signed_headers,
)

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_s=2.0, max_s=60.0, retry_for=timedelta(hours=1), disable_after=timedelta(minutes=30))


def test_a_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    body = json.dumps({"specversion": "1.0", "id": "e1", "data": {"total": "52.30 €"}}).encode()
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signed_headers(secret, "e1", timestamp, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("not-whsec", "must start with whsec_"),
        ("whsec_***", "followed by base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes"),
    ],
)
def test_secrets_in_the_standard_format_only(secret: str, problem: str) -> None:
    with pytest.raises(InvalidSecretError, match=problem):
        secret_bytes(secret)


def test_backoff_grows_jittered_and_capped() -> None:
    for attempt in range(1, 12):
        ceiling = min(POLICY.base_s * 2 ** (attempt - 1), POLICY.max_s)
        waits = [POLICY.delay_s(attempt) for _ in range(200)]
        assert all(0 < w <= ceiling for w in waits)
        if attempt >= 3:
            # Full jitter: spread over the window, not one fixed value every replica would share.
            assert max(waits) - min(waits) > ceiling / 4


def test_a_delivery_is_retried_until_its_window_ends() -> None:
    first = after_failure(POLICY, attempt=1, now=NOW, give_up_at=None, failing_since=None)
    assert not first.give_up
    assert first.give_up_at == NOW + timedelta(hours=1)
    assert first.next_attempt_at is not None
    assert NOW < first.next_attempt_at <= NOW + timedelta(seconds=2)
    late = NOW + timedelta(minutes=59, seconds=59)
    last = after_failure(POLICY, attempt=9, now=late, give_up_at=first.give_up_at, failing_since=None)
    assert last.give_up
    assert last.next_attempt_at is None


def test_an_endpoint_failing_too_long_is_disabled() -> None:
    early = after_failure(POLICY, attempt=2, now=NOW + timedelta(minutes=29), give_up_at=None, failing_since=NOW)
    assert not early.disable_endpoint
    assert early.failing_since == NOW
    late = after_failure(POLICY, attempt=5, now=NOW + timedelta(minutes=30), give_up_at=None, failing_since=NOW)
    assert late.disable_endpoint


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata endpoint
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:0a00:0001::1", "private"),  # 6to4 of 10.0.0.1
        ("100.64.0.1", "not public"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refused_address(ipaddress.ip_address(address)) == reason


def test_public_addresses_pass_and_one_bad_answer_refuses_the_host() -> None:
    public = ipaddress.ip_address("93.184.215.14")
    assert refused_address(public) is None
    assert refused_address(ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c")) is None
    check_addresses("erp.example", [public], allow_private=False)
    with pytest.raises(TargetRefusedError, match="private address"):
        check_addresses("erp.example", [public, ipaddress.ip_address("10.0.0.5")], allow_private=False)
    check_addresses("erp.example", [ipaddress.ip_address("10.0.0.5")], allow_private=True)
    with pytest.raises(TargetRefusedError, match="no address"):
        check_addresses("erp.example", [], allow_private=True)
