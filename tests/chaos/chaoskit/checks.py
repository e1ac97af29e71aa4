"""The invariants of a chaos run, checked once the system settled, from the services' APIs (and, where only
they tell, the sinks' files and the dead-letter topics). Each one is held or violated with a count and the
first few cases, so a failed run says what broke and where to look.
"""

import asyncio
import email.parser
import email.policy
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from benchkit.invariants import Apis, fetch_json
from chaoskit.upstream import PlannedOrder
from oms_events.topics import SERVICES, dead_letter_topic

FINAL = frozenset({"shipped", "rejected", "cancelled"})
SHIPPED_STATES = frozenset({"shipped", "in_transit", "out_for_delivery", "delivered"})


@dataclass
class Invariant:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.violations

    def fail(self, case: str) -> None:
        self.violations.append(case)


@dataclass
class Report:
    invariants: dict[str, Invariant] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    figures: dict[str, Any] = field(default_factory=dict)

    def __call__(self, name: str) -> Invariant:
        return self.invariants.setdefault(name, Invariant(name))

    @property
    def held(self) -> bool:
        return all(i.held for i in self.invariants.values())

    def table(self) -> str:
        width = max(len(n) for n in self.invariants)
        lines = [f"{'invariant':<{width}}  result    checked  violations", "-" * (width + 34)]
        for inv in self.invariants.values():
            result = "held" if inv.held else "VIOLATED"
            lines.append(f"{inv.name:<{width}}  {result:<8}  {inv.checked:>7}  {len(inv.violations):>10}")
        for inv in self.invariants.values():
            for case in inv.violations[:8]:
                lines.append(f"  {inv.name}: {case}")
            if len(inv.violations) > 8:
                lines.append(f"  {inv.name}: ... and {len(inv.violations) - 8} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class OrderFacts:
    order: dict[str, Any]
    payment: dict[str, Any] | None
    shipments: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


async def _gather_facts(apis: Apis, order_ids: Iterable[str]) -> dict[str, OrderFacts]:
    gate = asyncio.Semaphore(16)
    facts: dict[str, OrderFacts] = {}

    async def one(order_id: str) -> None:
        async with gate:
            order = await fetch_json(apis("order-service"), f"/orders/{order_id}")
            try:
                payment = await fetch_json(apis("payment-service"), f"/payments/{order_id}")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
                payment = None
            shipments = (await fetch_json(apis("fulfilment-service"), f"/orders/{order_id}/shipments"))["shipments"]
            sent = (await fetch_json(apis("notification-service"), f"/orders/{order_id}/notifications"))[
                "notifications"
            ]
            facts[order_id] = OrderFacts(order, payment, shipments, sent)

    await asyncio.gather(*(one(o) for o in order_ids))
    return facts


def shipped_units(shipment: dict[str, Any]) -> list[dict[str, Any]]:
    if shipment["status"] not in SHIPPED_STATES:
        return []
    return list(shipment["picked"] or shipment["lines"])


async def _search_references(apis: Apis, run_prefix: str, since: datetime) -> Counter[str]:
    """Every order of the run as order-service's search lists it, counted by external reference."""
    found: Counter[str] = Counter()
    for channel in ("web", "marketplace", "phone", "store"):
        cursor: str | None = None
        while True:
            params = {"channel": channel, "limit": "200", "placed_from": since.isoformat()}
            if cursor:
                params["cursor"] = cursor
            response = await apis("order-service").get("/orders", params=params)
            response.raise_for_status()
            page = response.json()
            for summary in page["orders"]:
                if summary["external_reference"].startswith(run_prefix):
                    found[summary["external_reference"]] += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return found


async def check_orders(
    report: Report,
    apis: Apis,
    accepted: Mapping[str, PlannedOrder],
    placed_unacknowledged: Mapping[str, PlannedOrder],
    run_prefix: str,
    since: datetime,
    start_stock: Mapping[tuple[str, str], int],
) -> None:
    known = {**accepted, **placed_unacknowledged}
    facts = await _gather_facts(apis, known)
    stuck_body = await fetch_json(apis("order-service"), "/orders/stuck?older_than_s=60")
    stuck = {o["order_id"] for o in stuck_body["orders"]}

    listed = await _search_references(apis, run_prefix, since)
    once = report("accepted order exists once")
    for order_id, planned in known.items():
        once.checked += 1
        ref = planned.body["external_reference"]
        if facts[order_id].order["external_reference"] != ref:
            once.fail(f"{order_id}: reference {facts[order_id].order['external_reference']} != {ref}")
        if listed[ref] != 1:
            once.fail(f"{ref}: listed {listed[ref]} times by the search")
    for ref, count in listed.items():
        if count > 1 and not any(p.body["external_reference"] == ref for p in known.values()):
            once.fail(f"{ref}: {count} orders for a reference the client does not know as placed")

    final = report("every order final or listed as stuck")
    for order_id, fact in facts.items():
        final.checked += 1
        status = fact.order["status"]
        report.statuses[status] += 1
        if status not in FINAL and order_id not in stuck:
            final.fail(f"{order_id} is {status}, not final and not in /orders/stuck")
    report.figures["stuck"] = len(stuck & set(facts))

    captures = report("one capture per order")
    money = report("captured - refunded = shipped value not returned (per order)")
    net_total = 0
    for order_id, fact in facts.items():
        captures.checked += 1
        money.checked += 1
        history = fact.payment["history"] if fact.payment else []
        captured_events = sum(1 for e in history if e["type"] == "PaymentCaptured")
        if captured_events > 1:
            captures.fail(f"{order_id}: {captured_events} PaymentCaptured")
        if fact.order["status"] == "shipped" and captured_events != 1:
            captures.fail(f"{order_id}: shipped with {captured_events} captures")
        prices = {line["sku"]: line["unit_price_minor"] for line in fact.order["lines"]}
        returned = sum(r.get("refund_minor") or 0 for r in fact.order.get("returns") or [] if r.get("refunded"))
        shipped_value = (
            sum(a["quantity"] * prices[a["sku"]] for s in fact.shipments for a in shipped_units(s)) - returned
        )
        captured = fact.payment["captured_minor"] if fact.payment else 0
        refunded = fact.payment["refunded_minor"] if fact.payment else 0
        net_total += captured - refunded
        if captured - refunded != shipped_value:
            money.fail(
                f"{order_id} ({fact.order['status']}): captured {captured} - refunded {refunded} != shipped {shipped_value}"
            )
    report.figures["net_minor"] = net_total

    await _check_reconciliation(report, apis, since, net_total)
    await _check_stock(report, apis, facts, start_stock, stuck)
    _check_notifications_api(report, facts)
    report.figures["facts"] = facts


async def _check_reconciliation(report: Report, apis: Apis, since: datetime, net_total: int) -> None:
    recon = report("captured - refunded = shipped value (reconciliation)")
    recon.checked = 1
    today = datetime.now(UTC).date()
    body = await fetch_json(
        apis("payment-service"), f"/reconciliation?date_from={since.date().isoformat()}&date_to={today.isoformat()}"
    )
    totals = [t for t in body["totals"] if t["currency"] == "EUR"]
    net = sum(t.get("net_minor", t.get("captured_minor", 0) - t.get("refunded_minor", 0)) for t in totals)
    if net != net_total:
        recon.fail(f"reconciliation nets {net} for the run's days, the orders {net_total}")


async def _check_stock(
    report: Report,
    apis: Apis,
    facts: Mapping[str, OrderFacts],
    start_stock: Mapping[tuple[str, str], int],
    stuck: set[str],
) -> None:
    shipped: Counter[tuple[str, str]] = Counter()
    restocked: Counter[tuple[str, str]] = Counter()
    for fact in facts.values():
        for shipment in fact.shipments:
            for a in shipped_units(shipment):
                shipped[(a["sku"], a["warehouse_id"])] += a["quantity"]
        for ret in fact.order.get("returns") or []:
            if ret.get("restocked"):
                for line in ret["lines"]:
                    restocked[(line["sku"], line["warehouse_id"])] += line["quantity"]
    conserved = report("on hand = start - shipped + restocked (per sku and warehouse)")
    oversell = report("no oversell (on hand, available >= 0; shipped <= received)")
    skus = sorted({sku for sku, _ in start_stock})
    for sku in skus:
        body = await fetch_json(apis("inventory-service"), f"/stock/{sku}")
        levels = {lv["warehouse_id"]: lv for lv in body["warehouses"]}
        for (s, warehouse), start in sorted(start_stock.items()):
            if s != sku:
                continue
            conserved.checked += 1
            oversell.checked += 1
            level = levels.get(warehouse, {"on_hand": 0, "reserved": 0, "available": 0})
            key = (sku, warehouse)
            expected = start - shipped[key] + restocked[key]
            if level["on_hand"] != expected:
                conserved.fail(
                    f"{sku}@{warehouse}: on hand {level['on_hand']}, expected {start} - {shipped[key]} shipped "
                    f"+ {restocked[key]} restocked = {expected}"
                )
            if not stuck and level["reserved"] != 0:
                conserved.fail(f"{sku}@{warehouse}: {level['reserved']} units still reserved with no order open")
            if level["on_hand"] < 0 or level["available"] < 0 or shipped[key] > start + restocked[key]:
                oversell.fail(
                    f"{sku}@{warehouse}: on hand {level['on_hand']}, available {level['available']}, "
                    f"shipped {shipped[key]} of {start}"
                )
    # Units shipped from a warehouse the run never stocked would be units out of nowhere.
    for key, units in shipped.items():
        if key not in start_stock:
            oversell.fail(f"{key[0]}@{key[1]}: {units} units shipped from a level the run never stocked")
    report.figures["shipped_units"] = dict(shipped)


def _check_notifications_api(report: Report, facts: Mapping[str, OrderFacts]) -> None:
    once = report("one message per order and kind (API)")
    for order_id, fact in facts.items():
        once.checked += 1
        kinds = Counter(f"{n['kind']}/{n['channel']}" for n in fact.notifications)
        doubled = sorted(k for k, count in kinds.items() if count > 1)
        if doubled:
            once.fail(f"{order_id}: more than one {doubled}")


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def check_sinks(report: Report, facts: Mapping[str, OrderFacts], mail_dir: Path, sms_dir: Path) -> None:
    """Each email and SMS the notification service recorded as sent arrived exactly once, and nothing
    arrived that it did not record."""
    emails: Counter[str] = Counter()
    for path in mail_dir.glob("*.eml"):
        head = path.read_bytes()[:8192]
        found = _MESSAGE_ID.search(head)
        if found is not None:
            emails[found.group(1).decode()] += 1
        else:
            parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
            emails[str(parsed.get("Message-ID", "(none)"))] += 1
    texts: Counter[str] = Counter()
    for path in sms_dir.glob("*.json"):
        # The SMS provider's Idempotency-Key is the notification id (the SMS's own reference is its kind).
        texts[json.loads(path.read_text())["idempotency_key"]] += 1
    sink = report("one message per order and kind (SMTP and SMS sinks)")
    expected_emails: set[str] = set()
    expected_texts: set[str] = set()
    for order_id, fact in facts.items():
        for n in fact.notifications:
            if n["status"] not in ("sent", "delivered"):
                continue
            sink.checked += 1
            if n["channel"] == "email":
                expected_emails.add(n["message_id"])
                if emails[n["message_id"]] != 1:
                    sink.fail(f"{order_id} {n['kind']} email: {emails[n['message_id']]} in the SMTP sink")
            else:
                expected_texts.add(n["notification_id"])
                if texts[n["notification_id"]] != 1:
                    sink.fail(f"{order_id} {n['kind']} SMS: {texts[n['notification_id']]} at the SMS sink")
    strays = sum(c for k, c in emails.items() if k not in expected_emails)
    strays_sms = sum(c for k, c in texts.items() if k not in expected_texts)
    if strays or strays_sms:
        sink.fail(f"{strays} emails and {strays_sms} SMS in the sinks that no run order's notification names")
    report.figures["emails"] = sum(emails.values())
    report.figures["sms"] = sum(texts.values())


async def check_dead_letters(
    report: Report, kafka: str, start: Mapping[TopicPartition, int], poison: Mapping[bytes, Mapping[str, int]]
) -> None:
    """Every poison record in each dead-letter topic it belongs in, exactly as many times as consumer groups
    of that service read it: counted per source record (the `dlq.source_*` headers), so that a record a
    producer wrote twice counts as two records, each to be dead-lettered once."""
    inv = report("every poison record in its dead-letter topic exactly once")
    dlq_topics = sorted({dead_letter_topic(s) for s in SERVICES})
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False, client_id="oms-chaos-dlq")
    await consumer.start()
    seen: dict[tuple[str, bytes], Counter[str]] = {}
    total = 0
    try:
        partitions = await _partitions(consumer, dlq_topics)
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp for tp in partitions if ends[tp] > start.get(tp, 0)}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=2000)).items():
                for record in records:
                    total += 1
                    headers = {k: v.decode(errors="replace") for k, v in record.headers}
                    source = "/".join(headers.get(f"dlq.source_{h}", "?") for h in ("topic", "partition", "offset"))
                    seen.setdefault((tp.topic, record.value), Counter())[source] += 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    copies = 0
    for value, expected in poison.items():
        for topic, count in expected.items():
            inv.checked += 1
            sources = seen.get((topic, value), Counter())
            copies += max(0, len(sources) - 1)
            if not sources:
                inv.fail(f"{value[:40]!r} not in {topic} (expected {count} times)")
            for source, times in sources.items():
                if times != count:
                    inv.fail(f"{value[:40]!r} from {source} in {topic}: {times} times, expected {count}")
        for (topic, v), sources in seen.items():
            if v == value and topic not in expected:
                inv.fail(f"{value[:40]!r} also in {topic} ({sum(sources.values())} times)")
    poison_values = set(poison)
    report.figures["dead_letters_other"] = sum(sum(c.values()) for (_, v), c in seen.items() if v not in poison_values)
    report.figures["dead_letters"] = total
    report.figures["poison_written_twice_by_the_producer"] = copies


async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    found = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        found += [TopicPartition(topic, p) for p in sorted(parts)]
    return found


_PENDING = re.compile(r"^oms_outbox_pending_messages(?:\{[^}]*\})?\s+([0-9.e+-]+)$", re.MULTILINE)


async def check_outboxes(
    report: Report,
    urls: Mapping[str, list[str]],
    database_url: str,
    kafka: str,
    start: Mapping[TopicPartition, int],
    within_s: float = 30.0,
) -> None:
    """Every committed outbox row's message is on its topic. The services' gauge
    (`oms_outbox_pending_messages`, rows not marked published) is read first, within a sweep or two; a row
    it still counts is looked up on its topic by its event id (the row's table is read for its id and
    topic: only the database tells which rows they are). A row whose message is there was published and
    only not marked yet (`unmarked_outbox_rows`, a figure); one whose message is not is a violation."""
    inv = report("outboxes drained (every committed row's message on its topic)")
    deadline = time.monotonic() + within_s
    lagging: list[str] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for service in SERVICES:
            for url in urls[service]:
                inv.checked += 1
                while True:
                    scraped = (await http.get(f"{url}/metrics")).text
                    pending = [float(v) for v in _PENDING.findall(scraped)]
                    if pending and all(v == 0 for v in pending):
                        break
                    if time.monotonic() > deadline:
                        lagging.append(service)
                        break
                    await asyncio.sleep(2)
    unmarked = 0
    if lagging:
        engine = create_async_engine(database_url)
        rows: list[tuple[str, str, str]] = []
        try:
            async with engine.connect() as conn:
                for service in lagging:
                    schema = service.replace("-", "_")
                    found = await conn.execute(
                        text(f'SELECT event_id, topic FROM "{schema}".outbox WHERE published_at IS NULL')
                    )
                    rows += [(service, str(event_id), topic) for event_id, topic in found.all()]
        finally:
            await engine.dispose()
        on_topics = await _event_ids_on(kafka, start, {topic for _, _, topic in rows})
        for service, event_id, topic in rows:
            if event_id in on_topics:
                unmarked += 1
            else:
                inv.fail(f"{service}: outbox row of event {event_id} for {topic} not published")
    report.figures["unmarked_outbox_rows"] = unmarked


async def _event_ids_on(kafka: str, start: Mapping[TopicPartition, int], topics: set[str]) -> set[str]:
    if not topics:
        return set()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False, client_id="oms-chaos-outbox")
    await consumer.start()
    found: set[str] = set()
    try:
        partitions = await _partitions(consumer, sorted(topics))
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp for tp in partitions if ends[tp] > start.get(tp, 0)}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).items():
                for record in records:
                    try:
                        found.add(str(json.loads(record.value)["event_id"]))
                    except (ValueError, KeyError, TypeError):
                        continue
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found
