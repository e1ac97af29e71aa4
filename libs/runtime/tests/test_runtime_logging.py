"""Logs never carry card numbers, full email addresses, phone numbers or a statement's bound values."""

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy.exc import DBAPIError, StatementError

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


def _failed_insert() -> StatementError:
    """What SQLAlchemy raises when PostgreSQL refuses a bound value (here asyncpg's wording)."""
    driver = ValueError("invalid input for query argument $2: 'tok_secret_4242' (value out of int64 range)")
    return DBAPIError(
        "INSERT INTO payments (order_id, token) VALUES ($1, $2)",
        ("o-1", "tok_secret_4242"),
        driver,
    )


@pytest.mark.usefixtures("fresh_logging")
def test_database_errors_are_logged_without_the_statement_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO", "json")
    error = _failed_insert()
    assert "tok_secret_4242" in str(error)  # what an unconfigured log line would carry
    try:
        raise error
    except StatementError:
        get_logger("t").exception("request failed")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "INSERT INTO payments" in line["exception"]  # the statement stays: it says what failed
    assert "invalid input for query argument $2: [value hidden]" in line["exception"]
    assert "tok_secret_4242" not in line["exception"]


@pytest.mark.usefixtures("fresh_logging")
def test_standard_library_records_hide_statement_parameters_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO", "json")
    try:
        raise _failed_insert()
    except StatementError:
        # A library's logger that propagates to the root (uvicorn's own are configured by uvicorn).
        logging.getLogger("oms.test.library").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert "Exception in ASGI application" in err
    assert "tok_secret_4242" not in err
