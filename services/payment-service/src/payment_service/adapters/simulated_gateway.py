"""A simulated payment gateway, for local runs and tests: its answers depend on the token.

Like the card networks' test numbers, a few documented tokens give a known answer (see the service's
README). It stands for an external system: its ledger (`simgw_operations`) is written in its own
transactions, never in the service's, so what it did survives a crash of the service between the call
and the service's commit. Every operation is idempotent by its key: the same key replays the first
answer and moves no money again; the same key for a different request is refused, as real gateways do.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from oms_runtime.db import Database
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.logging import get_logger
from payment_service.adapters.simulated_ledger import (
    EARLIER,
    INSERT,
    LOCKED,
    SETTLEMENT,
    LedgerFacts,
    insert_params,
    result_json,
)
from payment_service.domain.gateway import (
    GatewayResult,
    PermanentGatewayError,
    TransientGatewayError,
)

log = get_logger(__name__)

APPROVING_TOKENS = frozenset({"tok_approve", "tok_visa", "tok_mastercard"})
DECLINING_TOKENS: dict[str, tuple[str, str]] = {
    "tok_decline_insufficient_funds": ("insufficient_funds", "The card has insufficient funds."),
    "tok_decline_fraud": ("suspected_fraud", "The card issuer suspects fraud."),
}
UNKNOWN_TOKEN = ("invalid_token", "The payment token is not known to the gateway.")
TRANSIENT_TOKEN = "tok_transient_error"
PERMANENT_ERROR_TOKEN = "tok_permanent_error"
SLOW_TOKEN = "tok_slow"
REFUND_REFUSED_TOKEN = "tok_refund_refused_once"


@dataclass(frozen=True)
class TokenBehaviour:
    """What a token asks of the simulated gateway. Pure data, kept with the ledger instead of the token.

    - `flaky`: the first call of every operation under a new key is carried out, then its answer is
      lost (a timeout): only a retry with the same key learns what happened.
    - `slow`: every answer comes after the gateway's `slow_s`.
    - `capture_fails`: the authorisation is approved, the capture fails permanently (processor error).
    - `refund_refused_once`: the first refund asked of the charge is refused (`refund_declined`); later
      requests (under other keys) are decided as usual.
    """

    approved: bool
    reason_code: str | None = None
    reason: str | None = None
    flaky: bool = False
    slow: bool = False
    capture_fails: bool = False
    refund_refused_once: bool = False

    def flags(self) -> dict[str, bool]:
        return {
            "flaky": self.flaky,
            "slow": self.slow,
            "capture_fails": self.capture_fails,
            "refund_refused_once": self.refund_refused_once,
        }


def token_behaviour(token: str) -> TokenBehaviour:
    """What the simulated card network does for a token. Pure."""
    if token in APPROVING_TOKENS:
        return TokenBehaviour(approved=True)
    if token == TRANSIENT_TOKEN:
        return TokenBehaviour(approved=True, flaky=True)
    if token == SLOW_TOKEN:
        return TokenBehaviour(approved=True, slow=True)
    if token == PERMANENT_ERROR_TOKEN:
        return TokenBehaviour(approved=True, capture_fails=True)
    if token == REFUND_REFUSED_TOKEN:
        return TokenBehaviour(approved=True, refund_refused_once=True)
    reason_code, reason = DECLINING_TOKENS.get(token, UNKNOWN_TOKEN)
    return TokenBehaviour(approved=False, reason_code=reason_code, reason=reason)


@dataclass(frozen=True)
class Refusal:
    reason_code: str
    reason: str


def capture_refusal(
    authorised_minor: int, currency: str, approved: bool, settled: str | None, amount_minor: int, asked_currency: str
) -> Refusal | None:
    """Why the simulated gateway refuses a capture of an authorisation, or None. Pure.

    `settled` is `captured` or `voided` once the authorisation was used."""
    if not approved:
        return Refusal("not_authorised", "The authorisation was declined; there is nothing to capture.")
    if settled is not None:
        return Refusal(f"already_{settled}", f"The authorisation is {settled} already.")
    if asked_currency != currency:
        return Refusal("currency_mismatch", f"The authorisation is in {currency}, not {asked_currency}.")
    if amount_minor <= 0:
        return Refusal("invalid_amount", "A capture must be of more than 0.")
    if amount_minor > authorised_minor:
        return Refusal("exceeds_authorised", f"Capturing {amount_minor} exceeds the {authorised_minor} authorised.")
    return None


def refund_refusal(
    captured_minor: int | None, currency: str | None, refunded_minor: int, amount_minor: int, asked_currency: str
) -> Refusal | None:
    """Why the simulated gateway refuses a refund of a capture, or None. Pure."""
    if captured_minor is None or currency is None:
        return Refusal("not_captured", "The gateway has no captured charge with this reference.")
    if asked_currency != currency:
        return Refusal("currency_mismatch", f"The charge is in {currency}, not {asked_currency}.")
    if amount_minor <= 0:
        return Refusal("invalid_amount", "A refund must be of more than 0.")
    if refunded_minor + amount_minor > captured_minor:
        return Refusal(
            "exceeds_captured",
            f"Refunding {amount_minor} would exceed the charge: {refunded_minor} of {captured_minor} "
            "is refunded already.",
        )
    return None


class IdempotencyKeyReusedError(PermanentGatewayError):
    """The same idempotency key came back with a different request (as real gateways refuse)."""

    def __init__(self, message: str) -> None:
        super().__init__("idempotency_key_reused", message)


_PREFIX = {
    ("authorise", True): "sim_au",
    ("authorise", False): "sim_ad",
    ("capture", True): "sim_ch",
    ("capture", False): "sim_cr",
    ("void", True): "sim_vo",
    ("void", False): "sim_vr",
    ("refund", True): "sim_rf",
    ("refund", False): "sim_rr",
}


@dataclass(frozen=True)
class _Recorded:
    result: dict[str, Any]
    flags: dict[str, bool]
    fresh: bool


def _replayed(
    earlier: Any,
    idempotency_key: str,
    operation: str,
    target_reference: str | None,
    amount_minor: int,
    currency: str,
) -> "_Recorded":
    """The earlier answer under a key, if it was for the same request (as real gateways refuse another)."""
    if (earlier["operation"], earlier["target_reference"], earlier["amount_minor"], earlier["currency"]) != (
        operation,
        target_reference,
        amount_minor,
        currency,
    ):
        raise IdempotencyKeyReusedError(
            f"idempotency key {idempotency_key} was used for {earlier['operation']} of {earlier['amount_minor']} "
            f"{earlier['currency']}, now for {operation} of {amount_minor} {currency}"
        )
    return _Recorded(dict(earlier["result"]), dict(earlier["flags"]), fresh=False)


class SimulatedGateway:
    """Implements the PaymentGateway port against its own ledger."""

    def __init__(self, db: Database, slow_s: float = 2.0) -> None:
        self._db = db
        self._slow_s = slow_s

    # ------------------------------------------------------------------ operations

    async def authorise(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        if amount_minor < 0:
            raise ValueError("amount_minor must not be negative")
        behaviour = token_behaviour(token)
        result = self._result("authorise", behaviour.approved, behaviour.reason_code, behaviour.reason)
        recorded = await self._first(idempotency_key, "authorise", amount_minor, currency, result, behaviour.flags())
        return await self._answer(idempotency_key, "authorise", recorded)

    async def capture(
        self, idempotency_key: str, authorisation_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        def decide(authorisation: LedgerFacts) -> tuple[GatewayResult, dict[str, bool], bool]:
            if authorisation.result is None:
                return self._refused("capture", "unknown_authorisation", "No such authorisation."), {}, False
            flags = dict(authorisation.flags or {})
            if flags.get("capture_fails"):
                result = self._result("capture", False, "processing_error", "The processor failed the capture.")
                return result, flags, True
            assert authorisation.amount_minor is not None
            assert authorisation.currency is not None
            refusal = capture_refusal(
                authorisation.amount_minor,
                authorisation.currency,
                bool(authorisation.result["approved"]),
                authorisation.settled,
                amount_minor,
                currency,
            )
            if refusal is not None:
                return self._refused("capture", refusal.reason_code, refusal.reason), flags, False
            return self._result("capture", True), flags, False

        recorded = await self._once(
            idempotency_key, "capture", ("authorise", authorisation_reference), amount_minor, currency, decide
        )
        return await self._answer(idempotency_key, "capture", recorded)

    async def void(self, idempotency_key: str, authorisation_reference: str) -> GatewayResult:
        def decide(authorisation: LedgerFacts) -> tuple[GatewayResult, dict[str, bool], bool]:
            if authorisation.result is None or not authorisation.result["approved"]:
                return self._refused("void", "not_authorised", "No approved authorisation to void."), {}, False
            flags = {**(authorisation.flags or {}), "capture_fails": False}
            settled = authorisation.settled
            if settled is not None:
                return self._refused("void", f"already_{settled}", f"The authorisation is {settled}."), flags, False
            return self._result("void", True), flags, False

        recorded = await self._once(idempotency_key, "void", ("authorise", authorisation_reference), 0, "XXX", decide)
        return await self._answer(idempotency_key, "void", recorded)

    async def refund(
        self, idempotency_key: str, capture_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        def decide(capture: LedgerFacts) -> tuple[GatewayResult, dict[str, bool], bool]:
            # The capture's row is locked: its refunds are decided one at a time, never adding up past it.
            approved = capture.result is not None and bool(capture.result["approved"])
            flags = {**(capture.flags or {}), "capture_fails": False}
            if flags.get("refund_refused_once") and not capture.refunds:
                return self._refused("refund", "refund_declined", "The processor declined the refund."), flags, False
            refusal = refund_refusal(
                capture.amount_minor if approved else None,
                capture.currency if approved else None,
                capture.refunded_minor,
                amount_minor,
                currency,
            )
            if refusal is not None:
                return self._refused("refund", refusal.reason_code, refusal.reason), flags, False
            return self._result("refund", True), flags, False

        recorded = await self._once(
            idempotency_key, "refund", ("capture", capture_reference), amount_minor, currency, decide
        )
        return await self._answer(idempotency_key, "refund", recorded)

    # ------------------------------------------------------------------ ledger

    @staticmethod
    def _result(
        operation: str, approved: bool, reason_code: str | None = None, reason: str | None = None
    ) -> GatewayResult:
        return GatewayResult(
            approved=approved,
            reference=f"{_PREFIX[(operation, approved)]}_{uuid4().hex}",
            reason_code=reason_code,
            reason=reason,
        )

    def _refused(self, operation: str, reason_code: str, reason: str) -> GatewayResult:
        return self._result(operation, False, reason_code, reason)

    async def _first(
        self,
        idempotency_key: str,
        operation: str,
        amount_minor: int,
        currency: str,
        result: GatewayResult,
        flags: dict[str, bool],
    ) -> _Recorded:
        """An operation that reads nothing else (an authorisation): one INSERT in autocommit decides
        whether this call is the first under its key; only a repeated key reads the earlier answer."""
        params = insert_params(idempotency_key, operation, None, amount_minor, currency, result, flags, False)
        async with self._db.sessions() as session:
            # Autocommit: no BEGIN and COMMIT round trips around the one statement.
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            if await fetch_in_transaction(session, INSERT, *params):
                return _Recorded(result_json(result), flags, fresh=True)
            [earlier] = await fetch_in_transaction(session, EARLIER, idempotency_key)
        return _replayed(earlier, idempotency_key, operation, None, amount_minor, currency)

    async def _once(
        self,
        idempotency_key: str,
        operation: str,
        target: tuple[str, str],
        amount_minor: int,
        currency: str,
        decide: Callable[["LedgerFacts"], tuple[GatewayResult, dict[str, bool], bool]],
    ) -> _Recorded:
        """The operation's answer under this key: the recorded one, or a new one recorded now (committed).

        One statement reads the earlier answer under the key and locks the target operation, one what was
        done to the target so far, and one records the decision."""
        target_operation, target_reference = target
        # A transaction of the ledger's own (it queues no outbox rows).
        async with self._db.transaction() as session:
            [row] = await fetch_in_transaction(session, LOCKED, idempotency_key, target_reference, target_operation)
            earlier: Any = row if row["operation"] is not None else None
            if earlier is None:
                [done] = await fetch_in_transaction(session, SETTLEMENT, target_reference)
                facts = LedgerFacts(
                    row["t_amount_minor"],
                    row["t_currency"],
                    row["t_flags"],
                    row["t_result"],
                    {"capture": "captured", "void": "voided"}.get(done["settled"]) if done["settled"] else None,
                    int(done["refunds"]),
                    int(done["refunded_minor"]),
                )
                result, flags, permanent_error = decide(facts)
                params = insert_params(
                    idempotency_key, operation, target_reference, amount_minor, currency, result, flags, permanent_error
                )
                if await fetch_in_transaction(session, INSERT, *params):
                    return _Recorded(result_json(result, permanent_error), flags, fresh=True)
                # Another call with this key got there first: its answer is the answer.
                [earlier] = await fetch_in_transaction(session, EARLIER, idempotency_key)
        return _replayed(earlier, idempotency_key, operation, target_reference, amount_minor, currency)

    async def _answer(self, idempotency_key: str, operation: str, recorded: _Recorded) -> GatewayResult:
        row = recorded.result
        result = GatewayResult(
            approved=bool(row["approved"]),
            reference=str(row["reference"]),
            reason_code=row.get("reason_code"),
            reason=row.get("reason"),
        )
        # A fresh answer at debug: the service logs every outcome with its gateway reference already
        # (a log line costs about 0.1 ms, and a capture took three of them here). A replay stays info.
        (log.debug if recorded.fresh else log.info)(
            f"simulated gateway {operation}" if recorded.fresh else f"simulated gateway replayed {operation}",
            gateway_reference=result.reference,
            approved=result.approved,
            reason_code=result.reason_code,
        )
        if recorded.flags.get("slow"):
            # After the commit: a caller that gives up waiting has still been charged; its retry learns so.
            await asyncio.sleep(self._slow_s)
        if recorded.fresh and recorded.flags.get("flaky"):
            raise TransientGatewayError(f"simulated timeout: {operation} was carried out but its answer was lost")
        if row.get("permanent_error"):
            raise PermanentGatewayError(result.reason_code or "processing_error", result.reason or "processor error")
        return result
