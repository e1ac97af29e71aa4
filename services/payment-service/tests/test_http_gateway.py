"""The Stripe-like HTTP adapter against a fake provider served on a local port: every operation, the
mapping of declines and errors onto the port, and that retries under one Idempotency-Key never charge
or refund twice, including when the provider's answer is lost after it acted."""

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
from fake_provider import API_KEY, FakeProvider, serving

from oms_events import default_registry
from oms_events.messages import CapturePayment, RefundPayment
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness
from payment_service.adapters.http_gateway import StripeLikeGateway
from payment_service.adapters.payment_store import PaymentStore
from payment_service.adapters.retrying_gateway import RetryingGateway
from payment_service.domain.gateway import PermanentGatewayError, TransientGatewayError
from payment_service.domain.payment import payment_id_for
from payment_service.handlers import PaymentHandlers

REGISTRY = default_registry()


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[tuple[FakeProvider, httpx.AsyncClient]]:
    fake = FakeProvider()
    async with serving(fake) as url, httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        yield fake, client


def gateway(client: httpx.AsyncClient, *, key: str = API_KEY) -> StripeLikeGateway:
    return StripeLikeGateway(client, key)


async def no_sleep(_: float) -> None:
    return None


async def test_authorise_capture_partially_and_refund_in_parts(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    fake, client = provider
    g = gateway(client)
    auth = await g.authorise("authorise-1", 10_000, "EUR", "pm_card_visa")
    assert auth.approved
    intent = fake.intents[auth.reference]
    assert (intent.amount, intent.currency, intent.status) == (10_000, "eur", "requires_capture")
    too_much = await g.capture("capture-0", auth.reference, 10_001, "EUR")
    assert (too_much.approved, too_much.reason_code) == (False, "exceeds_authorised")
    capture = await g.capture("capture-1", auth.reference, 8_000, "EUR")
    assert capture.approved
    assert (intent.status, intent.captured) == ("succeeded", 8_000)
    assert (await g.refund("refund-1", capture.reference, 5_000, "EUR")).approved
    assert (await g.refund("refund-2", capture.reference, 3_000, "EUR")).approved
    over = await g.refund("refund-3", capture.reference, 1, "EUR")
    assert (over.approved, over.reason_code) == (False, "exceeds_captured")
    assert fake.refunds == [(auth.reference, 5_000), (auth.reference, 3_000)]
    # Every request carried its key.
    assert [key for _, key in fake.requests] == [
        "authorise-1",
        "capture-0",
        "capture-1",
        "refund-1",
        "refund-2",
        "refund-3",
    ]


@pytest.mark.parametrize(
    ("token", "reason_code"),
    [
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedFraudulent", "suspected_fraud"),
    ],
)
async def test_declines_carry_the_providers_reason(
    provider: tuple[FakeProvider, httpx.AsyncClient], token: str, reason_code: str
) -> None:
    _, client = provider
    declined = await gateway(client).authorise(f"authorise-{uuid4()}", 500, "EUR", token)
    assert (declined.approved, declined.reason_code) == (False, reason_code)
    assert declined.reference.startswith("pi_")


async def test_void_then_no_capture_and_no_void_after_a_capture(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    _, client = provider
    g = gateway(client)
    auth = await g.authorise("a-1", 700, "EUR", "pm_card_visa")
    assert (await g.void("v-1", auth.reference)).approved
    refused = await g.capture("c-1", auth.reference, 700, "EUR")
    assert (refused.approved, refused.reason_code) == (False, "not_authorised")
    other = await g.authorise("a-2", 700, "EUR", "pm_card_visa")
    assert (await g.capture("c-2", other.reference, 700, "EUR")).approved
    late = await g.void("v-2", other.reference)
    assert (late.approved, late.reason_code) == (False, "already_captured")


async def test_5xx_is_retried_under_the_same_key_and_authorises_once(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    fake, client = provider
    fake.fail_before["authorise"] = 2
    retrying = RetryingGateway(gateway(client), attempts=3, sleep=no_sleep)
    auth = await retrying.authorise("authorise-x", 900, "EUR", "pm_card_visa")
    assert auth.approved
    assert fake.requests == [("authorise", "authorise-x")] * 3
    assert len(fake.intents) == 1


@pytest.mark.parametrize("operation", ["authorise", "capture", "refund"])
async def test_a_lost_answer_is_recovered_by_the_retry_without_a_second_movement(
    provider: tuple[FakeProvider, httpx.AsyncClient], operation: str
) -> None:
    fake, client = provider
    fake.lose_answer[operation] = 1
    retrying = RetryingGateway(gateway(client), attempts=2, sleep=no_sleep)
    auth = await retrying.authorise("a", 1_000, "EUR", "pm_card_visa")
    capture = await retrying.capture("c", auth.reference, 1_000, "EUR")
    refund = await retrying.refund("r", capture.reference, 400, "EUR")
    assert auth.approved
    assert capture.approved
    assert refund.approved
    assert len(fake.intents) == 1
    assert fake.refunds == [(auth.reference, 400)]
    assert [kind for kind, _ in fake.requests].count(operation) == 2


async def test_transient_failures_that_outlast_the_retries_are_raised(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    fake, client = provider
    fake.fail_before["authorise"] = 5
    with pytest.raises(TransientGatewayError):
        await RetryingGateway(gateway(client), attempts=2, sleep=no_sleep).authorise("a", 1, "EUR", "pm_card_visa")


async def test_a_slow_provider_times_out_as_a_transient_failure(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    fake, client = provider
    fake.delay_s = 0.3
    with pytest.raises(TransientGatewayError):
        await RetryingGateway(gateway(client), attempts=1, timeout_s=0.05).authorise("a", 1, "EUR", "pm_card_visa")


async def test_a_key_reused_for_another_request_and_a_bad_api_key_are_permanent(
    provider: tuple[FakeProvider, httpx.AsyncClient],
) -> None:
    _, client = provider
    g = gateway(client)
    await g.authorise("same-key", 100, "EUR", "pm_card_visa")
    with pytest.raises(PermanentGatewayError) as reused:
        await g.authorise("same-key", 200, "EUR", "pm_card_visa")
    assert reused.value.reason_code == "idempotency_error"
    with pytest.raises(PermanentGatewayError) as unauthorised:
        await gateway(client, key="sk_wrong").authorise("k", 100, "EUR", "pm_card_visa")
    assert unauthorised.value.reason_code == "api_key_invalid"


async def test_the_payment_handlers_work_through_the_http_adapter(
    db: Database, provider: tuple[FakeProvider, httpx.AsyncClient]
) -> None:
    fake, client = provider
    fake.lose_answer["capture"] = 1  # the first capture's answer is lost: the message's retry recovers it
    handlers = PaymentHandlers(gateway(client), PaymentStore())
    harness = HandlerHarness(db, "payment-service", handlers.handler_map(), REGISTRY)
    order_id: UUID = uuid4()
    command = CapturePayment(
        order_id=order_id, customer_id="c", amount_minor=4_200, currency="USD", payment_token="pm_card_visa"
    )
    assert await harness.send(command) is Outcome.PROCESSED
    refund = RefundPayment(
        order_id=order_id, payment_id=payment_id_for(order_id), amount_minor=4_200, currency="USD", reason="cancelled"
    )
    assert await harness.send(refund) is Outcome.PROCESSED
    assert [m.message_type for m in await harness.emitted(order_id)] == [
        "PaymentAuthorised",
        "PaymentCaptured",
        "PaymentRefunded",
    ]
    [intent] = fake.intents.values()
    assert (intent.status, intent.captured, intent.refunded) == ("succeeded", 4_200, 4_200)
    assert ("capture", f"capture-{order_id}") in fake.requests
