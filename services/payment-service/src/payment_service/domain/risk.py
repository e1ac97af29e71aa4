"""The risk check that runs before a payment is authorised. Pure: the facts come from the caller.

Rules (all configurable, see PaymentSettings):
- amount: review above a per-currency threshold, decline above a higher one;
- velocity: more payment attempts by one customer within a time window than allowed;
- country mismatch: the billing country differs from the shipping country.
The outcome is the strictest of the rules that fired: decline over review over pass.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Action = Literal["off", "review", "decline"]

FRAUD_SUSPECTED = "fraud_suspected"
"""PaymentDeclined.reason_code of a payment the risk check declined."""
REVIEW_REQUIRED = "risk_review"
"""PaymentReviewRequired.reason_code."""


class RiskOutcome(StrEnum):
    PASS = "pass"
    REVIEW = "review"
    DECLINE = "decline"


@dataclass(frozen=True)
class RiskRules:
    review_above_minor: Mapping[str, int] = field(default_factory=dict)
    decline_above_minor: Mapping[str, int] = field(default_factory=dict)
    velocity_max: int = 0  # attempts per customer within the window; 0 turns the rule off
    velocity_window_s: int = 3600
    velocity_action: Action = "review"
    country_mismatch: Action = "review"


@dataclass(frozen=True)
class RiskFacts:
    amount_minor: int
    currency: str
    billing_country: str | None
    shipping_country: str | None
    attempts_in_window: int = 1  # this customer's payment attempts within the window, this one included


@dataclass(frozen=True)
class RiskAssessment:
    outcome: RiskOutcome
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "no risk rule fired"


def assess(rules: RiskRules, facts: RiskFacts) -> RiskAssessment:
    fired: list[tuple[RiskOutcome, str, str]] = []
    decline_above = rules.decline_above_minor.get(facts.currency)
    review_above = rules.review_above_minor.get(facts.currency)
    if decline_above is not None and facts.amount_minor > decline_above:
        fired.append(
            (
                RiskOutcome.DECLINE,
                "amount_decline",
                f"amount {facts.amount_minor} {facts.currency} is above the decline limit {decline_above}",
            )
        )
    elif review_above is not None and facts.amount_minor > review_above:
        fired.append(
            (
                RiskOutcome.REVIEW,
                "amount_review",
                f"amount {facts.amount_minor} {facts.currency} is above the review limit {review_above}",
            )
        )
    if rules.velocity_max > 0 and rules.velocity_action != "off" and facts.attempts_in_window > rules.velocity_max:
        fired.append(
            (
                RiskOutcome(rules.velocity_action),
                "velocity",
                f"{facts.attempts_in_window} payment attempts by the customer within {rules.velocity_window_s} s "
                f"(at most {rules.velocity_max})",
            )
        )
    if (
        rules.country_mismatch != "off"
        and facts.billing_country is not None
        and facts.shipping_country is not None
        and facts.billing_country != facts.shipping_country
    ):
        fired.append(
            (
                RiskOutcome(rules.country_mismatch),
                "country_mismatch",
                f"billing country {facts.billing_country} differs from shipping country {facts.shipping_country}",
            )
        )
    if not fired:
        return RiskAssessment(RiskOutcome.PASS)
    outcome = RiskOutcome.DECLINE if any(o is RiskOutcome.DECLINE for o, _, _ in fired) else RiskOutcome.REVIEW
    return RiskAssessment(outcome, tuple(r for _, r, _ in fired), tuple(why for _, _, why in fired))
