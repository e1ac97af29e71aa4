"""The simulated gateway's ledger statements: module-level texts sent straight to asyncpg
(`oms_runtime.driver.fetch_in_transaction`), prepared once per connection, since every call of the
gateway runs them (about 0.1 ms of Python each against 0.5 ms through SQLAlchemy).

An operation on an earlier one (a capture, void or refund) reads the earlier answer under its key with
the operation it acts on, locked (`LOCKED`), then what was done to that one so far (`SETTLEMENT`), and
is recorded by one insert (`INSERT`), which also decides, by the key's uniqueness, which of two racing
calls was first. An authorisation acts on nothing: its insert alone decides.
"""

import json
from dataclasses import dataclass
from typing import Any, Final

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


# The parameters of `insert_params`, in order. Answers the key when this call was the first under it.
INSERT: Final = """
INSERT INTO simgw_operations (idempotency_key, operation, reference, target_reference, amount_minor, currency,
                              flags, result)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text, $7::text::jsonb, $8::text::jsonb)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key
"""

# $1 the key. The earlier answer under it.
EARLIER: Final = """
SELECT operation, target_reference, amount_minor, currency, flags, result
FROM simgw_operations WHERE idempotency_key = $1::text
"""

# $1 the key, $2 the target's reference, $3 the target's operation. One row: the earlier answer under
# the key (NULLs when none) and the target, locked (NULLs when none).
LOCKED: Final = """
WITH target AS (
    SELECT amount_minor, currency, flags, result FROM simgw_operations
    WHERE reference = $2::text AND operation = $3::text
    FOR UPDATE
)
SELECT e.operation, e.target_reference, e.amount_minor, e.currency, e.flags, e.result,
       t.amount_minor AS t_amount_minor, t.currency AS t_currency, t.flags AS t_flags, t.result AS t_result
FROM (SELECT $1::text AS idempotency_key) AS k
LEFT JOIN simgw_operations AS e ON e.idempotency_key = k.idempotency_key
LEFT JOIN target AS t ON true
"""

# $1 the target's reference. What was done to it so far: whether it is settled (captured or voided),
# and its refunds. A statement of its own, after the lock: one that waited for the lock would still
# read from the snapshot it started with, without what the lock's holder committed.
SETTLEMENT: Final = """
SELECT (SELECT o.operation FROM simgw_operations AS o
        WHERE o.target_reference = $1::text AND o.operation IN ('capture', 'void')
          AND CAST(o.result ->> 'approved' AS boolean)
        LIMIT 1) AS settled,
       (SELECT count(*) FROM simgw_operations AS o
        WHERE o.target_reference = $1::text AND o.operation = 'refund') AS refunds,
       (SELECT coalesce(sum(o.amount_minor), 0) FROM simgw_operations AS o
        WHERE o.target_reference = $1::text AND o.operation = 'refund'
          AND CAST(o.result ->> 'approved' AS boolean)) AS refunded_minor
"""


def insert_params(
    idempotency_key: str,
    operation: str,
    target_reference: str | None,
    amount_minor: int,
    currency: str,
    result: GatewayResult,
    flags: dict[str, bool],
    permanent_error: bool,
) -> tuple[Any, ...]:
    """`INSERT`'s parameters; the flags and the result as JSON texts."""
    return (
        idempotency_key,
        operation,
        result.reference,
        target_reference,
        amount_minor,
        currency,
        json.dumps(flags),
        json.dumps(result_json(result, permanent_error)),
    )


def result_json(result: GatewayResult, permanent_error: bool = False) -> dict[str, Any]:
    return {
        "approved": result.approved,
        "reference": result.reference,
        "reason_code": result.reason_code,
        "reason": result.reason,
        "permanent_error": permanent_error,
    }
