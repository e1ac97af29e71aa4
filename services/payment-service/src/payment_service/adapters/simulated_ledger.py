"""The simulated gateway's ledger statements, built once: every call of the gateway runs them.

An operation on an earlier one (a capture, void or refund) reads the earlier answer under its key with
the operation it acts on, locked (`LOCKED`), then what was done to that one so far (`SETTLEMENT`), and
is recorded by one insert (`INSERT`), which also decides, by the key's uniqueness, which of two racing
calls was first. An authorisation acts on nothing: its insert alone decides.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import insert

from payment_service.adapters.tables import simulated_gateway_operations as ops
from payment_service.domain.gateway import GatewayResult


@dataclass(frozen=True)
class LedgerFacts:
    """What a decision needs of the operation it acts on (all None when there is none)."""

    amount_minor: int | None
    currency: str | None
    flags: dict[str, bool] | None
    result: dict[str, Any] | None
    settled: str | None  # captured | voided, for an authorisation
    refunds: int  # refunds asked of a capture so far
    refunded_minor: int  # approved refunds of a capture so far


# Built once: every call runs them.
INSERT = (
    insert(ops)
    .values(
        idempotency_key=bindparam("idempotency_key"),
        operation=bindparam("operation"),
        reference=bindparam("reference"),
        target_reference=bindparam("target_reference"),
        amount_minor=bindparam("amount_minor"),
        currency=bindparam("currency"),
        flags=bindparam("flags"),
        result=bindparam("result"),
    )
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(ops.c.idempotency_key)
)
EARLIER_COLUMNS = (
    ops.c.operation,
    ops.c.target_reference,
    ops.c.amount_minor,
    ops.c.currency,
    ops.c.flags,
    ops.c.result,
)
EARLIER = select(*EARLIER_COLUMNS).where(ops.c.idempotency_key == bindparam("idempotency_key"))


def _locked_statement() -> Select[Any]:
    """Parameters `idempotency_key`, `target_reference`, `target_operation`. One row: the earlier answer
    under the key (NULLs when none) and the target, locked (NULLs when none)."""
    key = select(bindparam("idempotency_key", type_=String).label("idempotency_key")).subquery("k")
    earlier = ops.alias("earlier")
    target = (
        select(ops.c.amount_minor, ops.c.currency, ops.c.flags, ops.c.result)
        .where(ops.c.reference == bindparam("target_reference"), ops.c.operation == bindparam("target_operation"))
        .with_for_update()
        .cte("target")
    )
    return (
        select(
            earlier.c.operation,
            earlier.c.target_reference,
            earlier.c.amount_minor,
            earlier.c.currency,
            earlier.c.flags,
            earlier.c.result,
            target.c.amount_minor.label("t_amount_minor"),
            target.c.currency.label("t_currency"),
            target.c.flags.label("t_flags"),
            target.c.result.label("t_result"),
        )
        .select_from(key)
        .outerjoin(earlier, earlier.c.idempotency_key == key.c.idempotency_key)
        .outerjoin(target, true())
    )


def _settlement_statement() -> Select[Any]:
    """Parameter `target_reference`. What was done to the target so far: whether it is settled (captured
    or voided), and its refunds. A statement of its own, after the lock: one that waited for the lock
    would still read from the snapshot it started with, without what the lock's holder committed."""
    on_target = ops.c.target_reference == bindparam("target_reference")
    settled = (
        select(ops.c.operation)
        .where(on_target, ops.c.operation.in_(("capture", "void")), ops.c.result["approved"].as_boolean())
        .limit(1)
        .scalar_subquery()
    )
    refunds = select(func.count()).where(on_target, ops.c.operation == "refund").scalar_subquery()
    refunded = (
        select(func.coalesce(func.sum(ops.c.amount_minor), 0))
        .where(on_target, ops.c.operation == "refund", ops.c.result["approved"].as_boolean())
        .scalar_subquery()
    )
    return select(settled.label("settled"), refunds.label("refunds"), refunded.label("refunded_minor"))


LOCKED = _locked_statement()
SETTLEMENT = _settlement_statement()


def insert_params(
    idempotency_key: str,
    operation: str,
    target_reference: str | None,
    amount_minor: int,
    currency: str,
    result: GatewayResult,
    flags: dict[str, bool],
    permanent_error: bool,
) -> dict[str, Any]:
    return {
        "idempotency_key": idempotency_key,
        "operation": operation,
        "reference": result.reference,
        "target_reference": target_reference,
        "amount_minor": amount_minor,
        "currency": currency,
        "flags": flags,
        "result": result_json(result, permanent_error),
    }


def result_json(result: GatewayResult, permanent_error: bool = False) -> dict[str, Any]:
    return {
        "approved": result.approved,
        "reference": result.reference,
        "reason_code": result.reason_code,
        "reason": result.reason,
        "permanent_error": permanent_error,
    }
