"""A gateway adapter for a provider's HTTP API in the style of Stripe's payment intents.

- authorise: `POST /v1/payment_intents` (`capture_method=manual`, `confirm=true`): `requires_capture`
  means authorised; the intent's id is the authorisation's reference.
- capture: `POST /v1/payment_intents/{id}/capture` (`amount_to_capture`, full or partial);
  the capture's reference is the intent's id too (refunds name the intent).
- void: `POST /v1/payment_intents/{id}/cancel`.
- refund: `POST /v1/refunds` (`payment_intent`, `amount`).

Every request is form-encoded, authenticated with a bearer key, and carries the `Idempotency-Key` header
with the port's key: the provider replays its first answer to a repeated key, so the retries of
RetryingGateway never charge or refund twice.

Answers are mapped onto the port: 2xx is an answer; 402 (`card_error`) is a decline with the provider's
`decline_code`; a 400 refusal of a capture, void or refund (`amount_too_large`,
`charge_already_refunded`, `payment_intent_unexpected_state`, ...) is a refused result; 5xx, 429, 409 (a
request with this key is still in flight), timeouts and lost connections are transient; other 4xx (bad
request, bad key, a key reused for another request) are permanent.
"""

from typing import Any

import httpx

from oms_runtime.logging import get_logger
from payment_service.domain.gateway import GatewayResult, PermanentGatewayError, TransientGatewayError

log = get_logger(__name__)

# The provider's refusal codes, mapped onto the port's per operation (the rest pass through as they are).
_DECLINE_CODES = {"fraudulent": "suspected_fraud", "card_declined": "declined"}
_CAPTURE_CODES = {"amount_too_large": "exceeds_authorised", "payment_intent_unexpected_state": "not_authorised"}
_REFUND_CODES = {"amount_too_large": "exceeds_captured", "charge_already_refunded": "exceeds_captured"}
_INTENT_STATES = {"succeeded": "already_captured", "canceled": "already_voided"}


class StripeLikeGateway:
    """Implements the PaymentGateway port over HTTP. Owns no state: the provider keeps the books."""

    def __init__(self, client: httpx.AsyncClient, api_key: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def authorise(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        status, body = await self._post(
            "/v1/payment_intents",
            idempotency_key,
            {
                "amount": amount_minor,
                "currency": currency.lower(),
                "payment_method": token,
                "capture_method": "manual",
                "confirm": "true",
            },
        )
        if status == 402:
            return self._refused(body, "declined", _DECLINE_CODES)
        self._require_ok(status, body)
        if body.get("status") != "requires_capture":
            return GatewayResult(False, str(body.get("id", "unknown")), "declined", f"intent is {body.get('status')}")
        return GatewayResult(True, str(body["id"]))

    async def capture(
        self, idempotency_key: str, authorisation_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        status, body = await self._post(
            f"/v1/payment_intents/{authorisation_reference}/capture",
            idempotency_key,
            {"amount_to_capture": amount_minor},
        )
        if status in (400, 402):
            return self._refused(body, "capture_refused", _CAPTURE_CODES)
        self._require_ok(status, body)
        if body.get("status") != "succeeded":
            return GatewayResult(False, authorisation_reference, "capture_refused", f"intent is {body.get('status')}")
        return GatewayResult(True, str(body["id"]))

    async def void(self, idempotency_key: str, authorisation_reference: str) -> GatewayResult:
        status, body = await self._post(f"/v1/payment_intents/{authorisation_reference}/cancel", idempotency_key, {})
        if status == 400:
            # Cancelling an intent that is no longer cancellable: say what it is instead.
            intent_status = ((body.get("error") or {}).get("payment_intent") or {}).get("status")
            state = _INTENT_STATES.get(str(intent_status))
            return self._refused(
                body, state or "void_refused", {"payment_intent_unexpected_state": state} if state else {}
            )
        self._require_ok(status, body)
        if body.get("status") != "canceled":
            return GatewayResult(False, authorisation_reference, "void_refused", f"intent is {body.get('status')}")
        return GatewayResult(True, str(body["id"]))

    async def refund(
        self, idempotency_key: str, capture_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        status, body = await self._post(
            "/v1/refunds", idempotency_key, {"payment_intent": capture_reference, "amount": amount_minor}
        )
        if status == 400:
            return self._refused(body, "refund_refused", _REFUND_CODES)
        self._require_ok(status, body)
        if body.get("status") not in ("succeeded", "pending"):
            return GatewayResult(
                False, str(body.get("id", "unknown")), "refund_refused", f"refund is {body.get('status')}"
            )
        if str(body.get("currency", currency.lower())).upper() != currency:
            return GatewayResult(False, str(body["id"]), "currency_mismatch", "the provider refunded another currency")
        return GatewayResult(True, str(body["id"]))

    # ------------------------------------------------------------------ HTTP

    async def _post(self, path: str, idempotency_key: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            response = await self._client.post(
                path,
                data={k: str(v) for k, v in form.items()},
                headers={**self._headers, "Idempotency-Key": idempotency_key},
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientGatewayError(f"{type(exc).__name__} calling the provider") from exc
        if response.status_code >= 500 or response.status_code in (409, 429):
            raise TransientGatewayError(f"provider answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientGatewayError(f"provider answered {response.status_code} without JSON") from exc
        if not isinstance(body, dict):
            raise TransientGatewayError(f"provider answered {response.status_code} with an unexpected body")
        log.info("provider answered", path=path.split("/")[2], status=response.status_code)
        return response.status_code, body

    @staticmethod
    def _require_ok(status: int, body: dict[str, Any]) -> None:
        if 200 <= status < 300:
            return
        error = body.get("error") or {}
        code = str(error.get("code") or error.get("type") or f"http_{status}")
        raise PermanentGatewayError(code, str(error.get("message") or f"the provider refused the request ({status})"))

    @staticmethod
    def _refused(body: dict[str, Any], default_code: str, codes: dict[str, str]) -> GatewayResult:
        error = body.get("error") or {}
        if error.get("type") not in ("card_error", "invalid_request_error") or error.get("code") in (
            "idempotency_error",
            "parameter_missing",
            "parameter_invalid_integer",
        ):
            # Not a refusal of this payment but of the request itself: retrying it cannot help.
            code = str(error.get("code") or error.get("type") or "invalid_request")
            raise PermanentGatewayError(code, str(error.get("message") or "the provider refused the request"))
        code = str(error.get("decline_code") or error.get("code") or default_code)
        intent = error.get("payment_intent") or {}
        reference = str(intent.get("id") or error.get("request_id") or "none")
        return GatewayResult(
            approved=False,
            reference=reference,
            reason_code=codes.get(code, code),
            reason=str(error.get("message") or "The provider refused the request."),
        )
