"""After the session's tests: no payment token or card number on any topic, no customer contact where it
does not belong, and none of it in the services' logs.

What other teams read is every `oms.*` topic, and what operators read is the logs. The scan covers every
record the session added to every topic of `oms_events.topics` (dead-letter topics included: a dead letter
holds the original record, and its `dlq.*` headers are scanned too) and every line the services logged.

What travels in clear by design, and is therefore allowed (and nothing else):
- the payment token in `CapturePayment.payment_token` on oms.payments.commands: payment-service needs it to
  charge the card; only order-service writes that topic and only payment-service reads it (the KafkaUser
  ACLs of deploy/k8s);
- the customer's email and phone in `OrderPlaced.customer` on oms.orders.events: notification-service
  sends from them (issue 15 is about keeping contact data off the topics others read; until then they
  are there by design, and the scan pins them to those two fields).
Records that the tests themselves published as an upstream sender or a foreign system would (an envelope
whose producer is not an OMS service: intake submissions, a CapturePayment carrying a card number) are
inputs, not something the OMS wrote: they are skipped. A dead letter is something the OMS wrote whatever it
holds: its bytes are searched for payment tokens even when they are not an envelope (the dead-letter
publisher redacts every `payment_token`, so a dead-lettered intake submission does not keep the token it was
submitted with); the contact data an upstream sender put in its submission stays, for the operators who
repair it.

Logs: no token, no card number, no full email address (the business's own sender address aside) and no
phone number of the session's customers, in any field of any line.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime.kafka_connection import KafkaConnection

TOKEN = re.compile(r"\btok_[A-Za-z0-9_]+")
"""Every payment token of the simulated gateway the tests pay with (tok_approve, tok_decline_..., ...)."""

CARD_CANDIDATE = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?!\w)")
"""13 to 19 digits (spaces or dashes between them) standing alone: not a decimal fraction's digits, not a run
inside a hexadecimal id (a trace id often holds one)."""

CARD_ISSUER = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|6(?:011|5))")
"""Prefixes of Visa, Mastercard, American Express and Discover numbers: keeps long Luhn-valid counters out."""

FULL_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+*-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
"""An unmasked address (the logs mask one as `j***@example.com`, which this does not match)."""

PHONE_LIKE = re.compile(r"(?<![\w.])\+?\d[\d ()/-]{5,}\d(?![\w.])")
"""A run of digits as people write a phone number, international or national."""

OWN_ADDRESSES = frozenset({"orders@oms.example"})
"""The business's own sender address (notification-service's SMTP_FROM): not personal data."""

ALLOWED: dict[str, frozenset[tuple[str, str]]] = {
    "token": frozenset({("CapturePayment", "payment_token")}),
    "email": frozenset({("OrderPlaced", "customer.email")}),
    "phone": frozenset({("OrderPlaced", "customer.phone")}),
}
"""(message type, payload field) pairs that carry a kind of sensitive data by design (see the module doc)."""


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""An id: one whose first groups happen to be all digits reads as a dash-separated card number otherwise."""


def card_numbers(text: str) -> list[str]:
    found = []
    for match in CARD_CANDIDATE.finditer(UUID_TEXT.sub("<uuid>", text)):
        digits = re.sub(r"[ -]", "", match.group())
        if CARD_ISSUER.match(digits) and _luhn(digits):
            found.append(match.group())
    return found


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _subscriber(digits: str) -> str:
    """The last nine digits: the same number written with a country code (+49 30 ...) or without (030 ...)."""
    return digits[-9:]


@dataclass
class Finding:
    where: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} ({self.detail})"


@dataclass
class Scan:
    """The session's customer phone numbers (learnt from the OrderPlaced events and submissions: a phone has
    no shape a pattern could tell from other numbers), then what was found."""

    phones: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    def text(self, where: str, text: str, allowed: frozenset[str] = frozenset()) -> None:
        """Every kind of sensitive data in `text` except the `allowed` kinds."""
        if "token" not in allowed:
            self.findings += [Finding(where, "payment token", t) for t in TOKEN.findall(text)]
        self.findings += [Finding(where, "card number", _mask(c)) for c in card_numbers(text)]
        if "email" not in allowed:
            emails = [e for e in FULL_EMAIL.findall(text) if e.lower() not in OWN_ADDRESSES]
            self.findings += [Finding(where, "email address", _mask(e)) for e in emails]
        if "phone" not in allowed and self.phones:
            for run in PHONE_LIKE.findall(text):
                if _subscriber(_digits(run)) in self.phones:
                    self.findings.append(Finding(where, "phone number", _mask(run)))


def _mask(value: str) -> str:
    # The report itself is read by people and CI logs: it says which value, not the whole of it.
    return value[:3] + "***" + value[-2:] if len(value) > 6 else "***"


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, text) of every string in a JSON value; list indices are left out of the path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value, path)
    elif isinstance(node, str):
        yield path, node
    elif node is not None:
        yield path, json.dumps(node)


def _envelope(raw: bytes | None) -> dict[str, Any] | None:
    try:
        body = json.loads(raw or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("payload"), dict) else None


def scan_record(scan: Scan, where: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    for name, header in headers:
        scan.text(f"{where} header {name}", header.decode(errors="replace"))
    if where.split("/", 1)[0].endswith(".dlq"):
        scan.text(f"{where} value", (value or b"").decode(errors="replace"), frozenset({"email", "phone"}))
    envelope = _envelope(value)
    if envelope is None:
        # Not an envelope: bytes a test published as poison (a service only ever writes envelopes).
        return
    if envelope.get("producer") not in SERVICES:
        return
    message_type = str(envelope.get("type"))
    for path, text in _leaves({k: v for k, v in envelope.items() if k != "payload"}):
        scan.text(f"{where} envelope.{path}", text)
    for path, text in _leaves(envelope["payload"]):
        allowed = frozenset(kind for kind, fields in ALLOWED.items() if (message_type, path) in fields)
        scan.text(f"{where} {message_type}.{path}", text, allowed)


def learn_phones(scan: Scan, value: bytes | None) -> None:
    envelope = _envelope(value)
    if envelope is None or envelope.get("type") not in {"OrderPlaced", "SubmitOrder"}:
        return
    customer = envelope["payload"].get("customer")
    phone = customer.get("phone") if isinstance(customer, dict) else None
    if isinstance(phone, str) and len(_digits(phone)) >= 6:
        scan.phones.add(_subscriber(_digits(phone)))


async def end_offsets(kafka: KafkaConnection) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**kafka.client_args())
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in ALL_TOPICS])
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(**kafka.client_args(), enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def records_since(
    kafka: KafkaConnection, start: dict[TopicPartition, int]
) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """(topic/partition@offset, value, headers) of every record added since `start` (new partitions: all)."""
    ends = await end_offsets(kafka)
    wanted = {tp: (start.get(tp, 0), end) for tp, end in ends.items() if end > start.get(tp, 0)}
    found: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []
    if not wanted:
        return found
    consumer = AIOKafkaConsumer(**kafka.client_args(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        remaining = set(wanted)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=2000, max_records=5000)
            if not batches:
                raise AssertionError(f"the scan could not read to the end of {sorted(map(str, remaining))}")
            for tp, records in batches.items():
                for record in records:
                    if record.offset < wanted[tp][1]:
                        found.append((f"{tp.topic}/{tp.partition}@{record.offset}", record.value, list(record.headers)))
                if await consumer.position(tp) >= wanted[tp][1]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


def log_sizes(directory: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in directory.glob("*.log")} if directory.is_dir() else {}


def scan_logs(scan: Scan, directory: Path, start: dict[Path, int]) -> int:
    """Scan what each log gained since `start` (named by file and line number); returns the lines read."""
    lines = 0
    for path in sorted(directory.glob("*.log")):
        data = path.read_bytes()
        offset = start.get(path, 0)
        first = data[:offset].count(b"\n") + 1
        for number, line in enumerate(data[offset:].decode(errors="replace").splitlines(), start=first):
            lines += 1
            scan.text(f"{path.name}:{number}", line)
    return lines
