"""A fake payment provider with a Stripe-like HTTP API, served on 127.0.0.1 by uvicorn for the adapter's tests.

It keeps the books the way a provider does: payment intents (authorised, captured, cancelled), refunds
per intent, and one stored answer per `Idempotency-Key` (the same key replays it; the same key with other
parameters is a 400 `idempotency_error`). Faults can be injected per path: answer 503 before doing
anything, or do the work and then answer 500 (the answer is lost), or answer slowly.
"""

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk_test_fake_0123456789"

DECLINES = {
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
}


@dataclass
class Intent:
    id: str
    amount: int
    currency: str
    status: str  # requires_capture | succeeded | canceled
    captured: int = 0
    refunded: int = 0


@dataclass
class FakeProvider:
    intents: dict[str, Intent] = field(default_factory=dict)
    refunds: list[tuple[str, int]] = field(default_factory=list)
    answers: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    fail_before: Counter[str] = field(default_factory=Counter)  # path kind -> 503s to answer first
    lose_answer: Counter[str] = field(default_factory=Counter)  # path kind -> answers to lose (500 after the work)
    delay_s: float = 0.0
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/payment_intents", self._endpoint("authorise", self._create), methods=["POST"]),
                Route("/v1/payment_intents/{id}/capture", self._endpoint("capture", self._capture), methods=["POST"]),
                Route("/v1/payment_intents/{id}/cancel", self._endpoint("void", self._cancel), methods=["POST"]),
                Route("/v1/refunds", self._endpoint("refund", self._refund), methods=["POST"]),
            ]
        )

    def _endpoint(self, kind: str, work: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            key = request.headers.get("idempotency-key")
            self.requests.append((kind, key))
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                return _error(401, "invalid_request_error", "api_key_invalid", "Invalid API key.")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.fail_before[kind]:
                self.fail_before[kind] -= 1
                return JSONResponse({"error": {"type": "api_error", "message": "try again"}}, status_code=503)
            form = dict(parse_qsl((await request.body()).decode()))
            fingerprint = json.dumps([request.url.path, form], sort_keys=True)
            if key is not None and key in self.answers:
                earlier, status, body = self.answers[key]
                if earlier != fingerprint:
                    return _error(
                        400,
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be reused with the same parameters.",
                    )
                return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
            status, body = work(request.path_params, form)
            if key is not None:
                self.answers[key] = (fingerprint, status, body)
            if self.lose_answer[kind]:
                self.lose_answer[kind] -= 1
                return JSONResponse({"error": {"type": "api_error", "message": "lost"}}, status_code=500)
            return JSONResponse(body, status_code=status)

        return endpoint

    def _create(self, _: dict[str, str], form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = Intent(f"pi_{uuid4().hex[:16]}", int(form["amount"]), form["currency"], "requires_capture")
        decline = DECLINES.get(form.get("payment_method", ""))
        if decline is not None:
            intent.status = "requires_payment_method"
            self.intents[intent.id] = intent
            return 402, {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": decline,
                    "message": "Your card was declined.",
                    "payment_intent": {"id": intent.id, "status": intent.status},
                }
            }
        self.intents[intent.id] = intent
        return 200, _intent(intent)

    def _capture(self, params: dict[str, str], form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(params["id"])
        if intent is None:
            return 404, {
                "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such intent"}
            }
        if intent.status != "requires_capture":
            return 400, _unexpected(intent)
        amount = int(form.get("amount_to_capture", intent.amount))
        if amount > intent.amount:
            return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large", "message": "too large"}}
        intent.status, intent.captured = "succeeded", amount
        return 200, _intent(intent)

    def _cancel(self, params: dict[str, str], _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents[params["id"]]
        if intent.status != "requires_capture":
            return 400, _unexpected(intent)
        intent.status = "canceled"
        return 200, _intent(intent)

    def _refund(self, _: dict[str, str], form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents[form["payment_intent"]]
        amount = int(form["amount"])
        if intent.status != "succeeded":
            return 400, _unexpected(intent)
        if intent.refunded + amount > intent.captured:
            code = "charge_already_refunded" if intent.refunded == intent.captured else "amount_too_large"
            return 400, {"error": {"type": "invalid_request_error", "code": code, "message": "Refund too large."}}
        intent.refunded += amount
        self.refunds.append((intent.id, amount))
        return 200, {
            "id": f"re_{uuid4().hex[:16]}",
            "status": "succeeded",
            "amount": amount,
            "currency": intent.currency,
        }


def _intent(intent: Intent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "object": "payment_intent",
        "status": intent.status,
        "amount": intent.amount,
        "amount_received": intent.captured,
        "currency": intent.currency,
    }


def _unexpected(intent: Intent) -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": f"This PaymentIntent's status is {intent.status}.",
            "payment_intent": {"id": intent.id, "status": intent.status},
        }
    }


def _error(status: int, kind: str, code: str | None, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "code": code, "message": message}}, status_code=status)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(provider: FakeProvider) -> AsyncIterator[str]:
    """Serves the fake on a free local port; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
