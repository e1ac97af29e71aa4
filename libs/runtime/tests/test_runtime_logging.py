"""Logs never carry card numbers, full email addresses or phone numbers."""

import json
from collections.abc import Iterator

import pytest
import structlog

from oms_runtime.logging import configure_logging, get_logger, mask_email, mask_text


def test_masking_of_personal_data() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    text = "card 4111 1111 1111 1111 for jane.doe@example.com, call +49 30 1234567"
    masked = mask_text(text)
    assert "4111" not in masked
    assert "jane.doe" not in masked
    assert "1234567" not in masked
    assert "example.com" in masked
    assert mask_text("order 3f2b and 12 items") == "order 3f2b and 12 items"
    # Dates, amounts and ids are not personal data and stay readable.
    assert (
        mask_text("arrives 2026-12-01, 5297 EUR, ref 20261126130514")
        == "arrives 2026-12-01, 5297 EUR, ref 20261126130514"
    )


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """configure_logging binds a stream and context; later tests must not inherit them."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.mark.usefixtures("fresh_logging")
def test_json_log_lines_are_masked_and_carry_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO", "json")
    get_logger("t").info(
        "customer wrote",
        email="jane.doe@example.com",
        customer_phone="030 1234567",
        note="pan 5555555555554444",
        order_id="o-1",
        estimated_delivery="2026-12-01",
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["service"] == "test-service"
    assert line["order_id"] == "o-1"
    assert line["email"] == "j***@example.com"
    assert "5555555555554444" not in line["note"]
    assert line["message"] == "customer wrote"
    assert line["customer_phone"] == "***67"
    assert line["estimated_delivery"] == "2026-12-01"
