"""The scan that runs after the session (leak_scan.py, from conftest's `no_sensitive_data_leaked`): it finds
a token, a card number and contact data where they do not belong, and lets through the fields that carry
them by design."""

import json
from pathlib import Path
from typing import Any

from leak_scan import Scan, card_numbers, learn_phones, scan_logs, scan_record


def _record(message_type: str, payload: dict[str, Any], producer: str = "order-service") -> bytes:
    return json.dumps({"type": message_type, "producer": producer, "event_id": "e1", "payload": payload}).encode()


def test_a_token_card_or_contact_off_its_fields_is_found_naming_where() -> None:
    scan = Scan()
    placed = _record("OrderPlaced", {"customer": {"email": "jane.doe@example.com", "phone": "+49 30 1234567"}})
    learn_phones(scan, placed)
    scan_record(scan, "oms.orders.events/0@1", placed, [])
    capture = _record("CapturePayment", {"payment_token": "tok_approve"})
    scan_record(scan, "oms.payments.commands/0@2", capture, [])
    assert scan.findings == []

    rejected = _record("OrderIntakeRejected", {"errors": [{"field": "payment_token", "message": "tok_visa"}]})
    scan_record(scan, "oms.orders.events/3@7", rejected, [("dlq.reason", b"card 4111 1111 1111 1111")])
    sent = _record("NotificationSent", {"recipient_masked": "j***@example.com", "note": "call 030 1234567"})
    scan_record(scan, "oms.notifications.events/1@9", sent, [])
    assert [str(f) for f in scan.findings] == [
        "oms.orders.events/3@7 header dlq.reason: card number (411***11)",
        "oms.orders.events/3@7 OrderIntakeRejected.errors.message: payment token (tok_visa)",
        "oms.notifications.events/1@9 NotificationSent.note: phone number (030***67)",
    ]


def test_records_a_test_sent_as_an_upstream_system_are_inputs_not_leaks() -> None:
    scan = Scan()
    scan_record(scan, "oms.orders.intake/0@0", _record("SubmitOrder", {"payment_token": "tok_x"}, "upstream"), [])
    assert scan.findings == []


def test_a_dead_letter_is_searched_for_tokens_whatever_its_bytes() -> None:
    scan = Scan()
    scan_record(scan, "oms.order.dlq/0@0", b'{"payment_token":"[redacted]"', [])
    assert scan.findings == []
    scan_record(scan, "oms.order.dlq/0@1", b"not json tok_x", [])
    assert [f"{f.where}: {f.kind}" for f in scan.findings] == ["oms.order.dlq/0@1 value: payment token"]


def test_logs_are_scanned_from_where_the_session_began(tmp_path: Path) -> None:
    log = tmp_path / "order-service.log"
    log.write_text('{"event": "old run", "email": "old@example.com"}\n')
    start = {log: log.stat().st_size}
    with log.open("a") as out:
        out.write('{"event": "placed", "email": "j***@example.com"}\n')
        out.write('{"event": "sent", "from": "orders@oms.example", "to": "jane.doe@example.com"}\n')
    scan = Scan()
    assert scan_logs(scan, tmp_path, start) == 2
    assert [str(f) for f in scan.findings] == ["order-service.log:3: email address (jan***om)"]


def test_card_numbers_are_luhn_valid_issuer_numbers_not_any_long_digits() -> None:
    assert card_numbers("pay 4111-1111-1111-1111 now") == ["4111-1111-1111-1111"]
    assert card_numbers("took 0.1234567890123456 s, id 1234567890123456") == []
    assert card_numbers("00-0af7651916cd43dd4111111111111111a-01") == []


def test_an_id_whose_groups_are_digits_is_not_a_card_number() -> None:
    # 4111-1111-1111-1 is a Luhn-valid Visa-looking run inside this id; the id is not a card.
    assert card_numbers('{"event_id": "41111111-1111-1111-1111-abcdefabcdef"}') == []
    assert card_numbers("card 4111 1111 1111 1111") == ["4111 1111 1111 1111"]
