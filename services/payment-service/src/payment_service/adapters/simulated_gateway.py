"""A simulated payment gateway, for local runs and tests: its answer depends on the token.

Like the card networks' test numbers, a few well-known tokens give a known answer (see the
service's README). It keeps a ledger of charges by idempotency key in `gateway_charges`, in its
own transaction, as a real gateway keeps its own books: a capture retried with the same key gets
the first answer back and charges nothing more, even after a restart. Refunds are kept the same way
in `gateway_refunds`, and the refunds of one charge never add up to more than the charge.
"""

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from sqlalchemy import RowMapping, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from payment_service.adapters.tables import gateway_charges, gateway_refunds
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


@dataclass(frozen=True)
class ChargeSeen:
    """What the ledger knows of a charge when a refund of it is asked for."""

    amount_minor: int
    currency: str
    approved: bool


def simulated_refund_answer(
    charge: ChargeSeen | None, refunded_minor: int, amount_minor: int, currency: str
) -> SimulatedAnswer:
    """What the simulated gateway answers to a refund, given the charge and what was refunded of it. Pure."""
    if charge is None or not charge.approved:
        return SimulatedAnswer(False, "not_captured", "The gateway has no captured charge with this reference.")
    if currency != charge.currency:
        return SimulatedAnswer(False, "currency_mismatch", f"The charge is in {charge.currency}, not {currency}.")
    if amount_minor <= 0:
        return SimulatedAnswer(False, "invalid_amount", "A refund must be of more than 0.")
    if refunded_minor + amount_minor > charge.amount_minor:
        return SimulatedAnswer(
            False,
            "exceeds_captured",
            f"Refunding {amount_minor} would exceed the charge: {refunded_minor} of {charge.amount_minor} "
            "is refunded already.",
        )
    return SimulatedAnswer(approved=True)


class IdempotencyKeyReusedError(GatewayError):
    """The same idempotency key came back with a different request (as real gateways refuse)."""


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

    async def refund(
        self, idempotency_key: str, gateway_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        async with self._db.transaction() as session:
            # Lock the charge, so that its refunds are decided one at a time and never add up past it.
            charge_row = (
                await session.execute(
                    select(gateway_charges.c.amount_minor, gateway_charges.c.currency, gateway_charges.c.result)
                    .where(gateway_charges.c.result["reference"].astext == gateway_reference)
                    .with_for_update()
                )
            ).one_or_none()
            earlier = await self._refund_row(session, idempotency_key)
            if earlier is None:
                refunded = await session.scalar(
                    select(func.coalesce(func.sum(gateway_refunds.c.amount_minor), 0)).where(
                        gateway_refunds.c.charge_reference == gateway_reference,
                        gateway_refunds.c.result["approved"].as_boolean(),
                    )
                )
                charge = (
                    None
                    if charge_row is None
                    else ChargeSeen(charge_row.amount_minor, charge_row.currency, bool(charge_row.result["approved"]))
                )
                answer = simulated_refund_answer(charge, int(refunded or 0), amount_minor, currency)
                fresh = GatewayResult(
                    approved=answer.approved,
                    reference=f"sim_{'rf' if answer.approved else 'rr'}_{uuid4().hex}",
                    reason_code=answer.reason_code,
                    reason=answer.reason,
                )
                inserted = await session.scalar(
                    insert(gateway_refunds)
                    .values(
                        idempotency_key=idempotency_key,
                        charge_reference=gateway_reference,
                        amount_minor=amount_minor,
                        currency=currency,
                        result=_to_row(fresh),
                    )
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(gateway_refunds.c.idempotency_key)
                )
                if inserted is not None:
                    log.info(
                        "simulated gateway refund" if fresh.approved else "simulated gateway refused a refund",
                        gateway_reference=fresh.reference,
                        charge_reference=gateway_reference,
                        amount_minor=amount_minor,
                        currency=currency,
                        reason_code=fresh.reason_code,
                    )
                    return fresh
                # Another call with this key (and no charge to lock) got there first.
                earlier = await self._refund_row(session, idempotency_key)
                assert earlier is not None
        if (earlier["charge_reference"], earlier["amount_minor"], earlier["currency"]) != (
            gateway_reference,
            amount_minor,
            currency,
        ):
            raise IdempotencyKeyReusedError(
                f"idempotency key {idempotency_key} was used for a refund of {earlier['amount_minor']} "
                f"{earlier['currency']} of {earlier['charge_reference']}, now for {amount_minor} {currency} "
                f"of {gateway_reference}"
            )
        result = _from_row(earlier["result"])
        log.info("simulated gateway replayed an earlier refund answer", gateway_reference=result.reference)
        return result

    @staticmethod
    async def _refund_row(session: AsyncSession, idempotency_key: str) -> RowMapping | None:
        return (
            (
                await session.execute(
                    select(
                        gateway_refunds.c.charge_reference,
                        gateway_refunds.c.amount_minor,
                        gateway_refunds.c.currency,
                        gateway_refunds.c.result,
                    ).where(gateway_refunds.c.idempotency_key == idempotency_key)
                )
            )
            .mappings()
            .one_or_none()
        )
