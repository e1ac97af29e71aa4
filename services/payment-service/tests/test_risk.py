"""The risk check's rules, one by one and together. Pure."""

import pytest

from payment_service.domain.risk import RiskFacts, RiskOutcome, RiskRules, assess

RULES = RiskRules(
    review_above_minor={"EUR": 50_000, "JPY": 1_000_000},
    decline_above_minor={"EUR": 200_000},
    velocity_max=3,
    velocity_window_s=600,
    velocity_action="review",
    country_mismatch="review",
)


def facts(
    amount: int = 1_000,
    currency: str = "EUR",
    billing: str | None = None,
    shipping: str | None = "DE",
    attempts: int = 1,
) -> RiskFacts:
    return RiskFacts(amount, currency, billing, shipping, attempts)


@pytest.mark.parametrize(
    ("amount", "currency", "outcome", "rules"),
    [
        (50_000, "EUR", RiskOutcome.PASS, ()),  # at the limit is fine
        (50_001, "EUR", RiskOutcome.REVIEW, ("amount_review",)),
        (200_000, "EUR", RiskOutcome.REVIEW, ("amount_review",)),
        (200_001, "EUR", RiskOutcome.DECLINE, ("amount_decline",)),
        (200_001, "JPY", RiskOutcome.PASS, ()),  # limits are per currency
        (1_000_001, "JPY", RiskOutcome.REVIEW, ("amount_review",)),
        (10**9, "USD", RiskOutcome.PASS, ()),  # no limit configured for USD
    ],
)
def test_amount_thresholds(amount: int, currency: str, outcome: RiskOutcome, rules: tuple[str, ...]) -> None:
    assessment = assess(RULES, facts(amount, currency))
    assert (assessment.outcome, assessment.rules) == (outcome, rules)


@pytest.mark.parametrize(("attempts", "outcome"), [(3, RiskOutcome.PASS), (4, RiskOutcome.REVIEW)])
def test_velocity(attempts: int, outcome: RiskOutcome) -> None:
    assert assess(RULES, facts(attempts=attempts)).outcome is outcome


def test_velocity_may_decline_or_be_off() -> None:
    declining = RiskRules(velocity_max=1, velocity_action="decline")
    assert assess(declining, facts(attempts=2)).outcome is RiskOutcome.DECLINE
    assert assess(RiskRules(velocity_max=0), facts(attempts=100)).outcome is RiskOutcome.PASS


@pytest.mark.parametrize(
    ("billing", "shipping", "outcome"),
    [
        ("DE", "DE", RiskOutcome.PASS),
        ("FR", "DE", RiskOutcome.REVIEW),
        (None, "DE", RiskOutcome.PASS),  # unknown billing country: the rule cannot judge
    ],
)
def test_country_mismatch(billing: str | None, shipping: str, outcome: RiskOutcome) -> None:
    assessment = assess(RULES, facts(billing=billing, shipping=shipping))
    assert assessment.outcome is outcome
    if outcome is RiskOutcome.REVIEW:
        assert "FR" in assessment.reason
        assert "DE" in assessment.reason


def test_country_mismatch_may_decline_or_be_off() -> None:
    assert assess(RiskRules(country_mismatch="decline"), facts(billing="FR")).outcome is RiskOutcome.DECLINE
    assert assess(RiskRules(country_mismatch="off"), facts(billing="FR")).outcome is RiskOutcome.PASS


def test_the_strictest_outcome_wins_and_every_fired_rule_is_named() -> None:
    assessment = assess(RULES, facts(amount=200_001, billing="FR", attempts=9))
    assert assessment.outcome is RiskOutcome.DECLINE
    assert assessment.rules == ("amount_decline", "velocity", "country_mismatch")
    reviewed = assess(RULES, facts(amount=60_000, billing="FR"))
    assert reviewed.outcome is RiskOutcome.REVIEW
    assert reviewed.rules == ("amount_review", "country_mismatch")
