"""A simulated payment gateway, for local runs and tests: its answer depends on the token.

Like the card networks' test numbers, a few well-known tokens give a known answer (see the
service's README). It keeps a ledger of charges by idempotency key in `gateway_charges`, in its
own transaction, as a real gateway keeps its own books: a capture retried with the same key gets
the first answer back and charges nothing more, even after a restart.
"""

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from payment_service.adapters.tables import gateway_charges
from payment_service.domain.gateway import GatewayError, GatewayResult

log = get_logger(__name__)

APPROVING_TOKENS = frozenset({"tok_approve", "tok_visa", "tok_mastercard"})
DECLINING_TOKENS: dict[str, tuple[str, str]] = {
    "tok_decline_insufficient_funds": ("insufficient_funds", "The card has insufficient funds."),
    "tok_decline_fraud": ("suspected_fraud", "The card issuer suspects fraud."),
}
UNKNOWN_TOKEN = ("invalid_token", "The payment token is not known to the gateway.")


@dataclass(frozen=True)
class SimulatedAnswer:
    approved: bool
    reason_code: str | None = None
    reason: str | None = None


def simulated_answer(token: str) -> SimulatedAnswer:
    """What the simulated card network answers for a token. Pure."""
    if token in APPROVING_TOKENS:
        return SimulatedAnswer(approved=True)
    reason_code, reason = DECLINING_TOKENS.get(token, UNKNOWN_TOKEN)
    return SimulatedAnswer(approved=False, reason_code=reason_code, reason=reason)


class IdempotencyKeyReusedError(GatewayError):
    """The same idempotency key came back with a different amount or currency (as real gateways refuse)."""


def _to_row(result: GatewayResult) -> dict[str, Any]:
    return {
        "approved": result.approved,
        "reference": result.reference,
        "reason_code": result.reason_code,
        "reason": result.reason,
    }


def _from_row(row: dict[str, Any]) -> GatewayResult:
    return GatewayResult(
        approved=bool(row["approved"]),
        reference=str(row["reference"]),
        reason_code=row.get("reason_code"),
        reason=row.get("reason"),
    )


class SimulatedGateway:
    """Implements the PaymentGateway port."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def capture(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        if amount_minor < 0:
            raise ValueError("amount_minor must not be negative")
        answer = simulated_answer(token)
        prefix = "ch" if answer.approved else "dc"
        fresh = GatewayResult(
            approved=answer.approved,
            reference=f"sim_{prefix}_{uuid4().hex}",
            reason_code=answer.reason_code,
            reason=answer.reason,
        )
        async with self._db.transaction() as session:
            inserted = await session.scalar(
                insert(gateway_charges)
                .values(
                    idempotency_key=idempotency_key, amount_minor=amount_minor, currency=currency, result=_to_row(fresh)
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(gateway_charges.c.idempotency_key)
            )
            if inserted is not None:
                log.info(
                    "simulated gateway charge" if fresh.approved else "simulated gateway decline",
                    gateway_reference=fresh.reference,
                    amount_minor=amount_minor,
                    currency=currency,
                    reason_code=fresh.reason_code,
                )
                return fresh
            row = (
                await session.execute(
                    select(gateway_charges.c.amount_minor, gateway_charges.c.currency, gateway_charges.c.result).where(
                        gateway_charges.c.idempotency_key == idempotency_key
                    )
                )
            ).one()
        if (row.amount_minor, row.currency) != (amount_minor, currency):
            raise IdempotencyKeyReusedError(
                f"idempotency key {idempotency_key} was used for {row.amount_minor} {row.currency}, "
                f"now for {amount_minor} {currency}"
            )
        earlier = _from_row(row.result)
        log.info("simulated gateway replayed an earlier answer", gateway_reference=earlier.reference)
        return earlier
