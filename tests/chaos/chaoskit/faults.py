"""The faults of a chaos run, on a schedule drawn from the seed before the run starts (the same seed, the
same faults at the same offsets into the run):

- `kill`: SIGKILL a service (no shutdown, no final commit), start it again after a pause;
- `broker`: restart the Kafka broker (infra.sh stop + start) while the services run;
- `database`: SIGKILL PostgreSQL's postmaster and start the cluster again (crash recovery);
- `republish`: re-publish records the services already consumed, byte for byte (key, value, headers, same
  partition), as a producer retrying after a lost acknowledgement or a consumer rewinding would deliver them;
- `poison`: records no consumer can process: bytes that are not JSON on every topic a service consumes, and
  envelopes whose payload fails validation on the command topics. Each must end in its dead-letter topic,
  once per consumer group that read it, and change nothing else.
"""

import asyncio
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from benchkit.system import REPO, BenchSystem, infra_pids
from oms_events import routes
from oms_events.envelope import Envelope
from oms_events.topics import SERVICES, dead_letter_topic

INFRA_SH = REPO / "deploy" / "local" / "infra.sh"
T = TypeVar("T")

BAD_PAYLOADS = {
    "oms.orders.intake": "SubmitOrder",
    "oms.inventory.commands": "ReserveStock",
    "oms.payments.commands": "CapturePayment",
    "oms.fulfilment.commands": "ShipOrder",
}
"""Command topics and the command their one consumer handles: an envelope of it with a payload that fails
validation is dead-lettered by that consumer (other groups would skip a type they do not handle)."""


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    target: str = ""

    def label(self) -> str:
        return f"{self.kind} {self.target}".strip()


@dataclass
class FaultLog:
    done: list[tuple[float, str, float]] = field(default_factory=list)
    """(offset into the run, fault, seconds until it was over: the process back and ready)."""
    republished: int = 0
    poison: dict[bytes, dict[str, int]] = field(default_factory=dict)
    """Each poison record's bytes -> dead-letter topic -> records expected there."""
    failures: list[str] = field(default_factory=list)


def schedule(
    rng: random.Random,
    run_s: float,
    kills_per_service: int,
    broker_restarts: int,
    database_restarts: int,
    republish_rounds: int,
    poison_rounds: int,
) -> list[Fault]:
    """Every fault at a random offset within the placing window (its first and last tenth left calm)."""

    def when() -> float:
        return rng.uniform(0.1 * run_s, 0.9 * run_s)

    faults = [Fault(when(), "kill", s) for s in SERVICES for _ in range(kills_per_service)]
    faults += [Fault(when(), "broker") for _ in range(broker_restarts)]
    faults += [Fault(when(), "database") for _ in range(database_restarts)]
    faults += [Fault(when(), "republish") for _ in range(republish_rounds)]
    faults += [Fault(when(), "poison") for _ in range(poison_rounds)]
    return sorted(faults, key=lambda f: f.at_s)


def _infra(*args: str) -> None:
    subprocess.run(["bash", str(INFRA_SH), *args], check=True, cwd=REPO, env=os.environ.copy(), capture_output=True)


class Injector:
    def __init__(self, system: BenchSystem, kafka: str, state: Path, rng: random.Random) -> None:
        self._system = system
        self._kafka = kafka
        self._state = state
        self._rng = rng
        self.log = FaultLog()
        self._restarting: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        self._start_offsets: dict[TopicPartition, int] = {}

    def expecting_exit(self, name: str) -> bool:
        return self._restarting[name] > 0

    def remember_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Where the run's records begin: only those are re-published."""
        self._start_offsets = offsets

    async def run(self, faults: list[Fault], began: float) -> None:
        """Each fault at its offset; a fault still in progress (a restart) does not delay the next one."""
        pending: list[asyncio.Task[None]] = []
        for fault in faults:
            delay = began + fault.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(self._one(fault, began)))
        await asyncio.gather(*pending)

    async def _one(self, fault: Fault, began: float) -> None:
        at = time.monotonic() - began
        try:
            if fault.kind == "kill":
                await self.kill(fault.target)
            elif fault.kind == "broker":
                await asyncio.to_thread(self.restart_broker)
            elif fault.kind == "database":
                await asyncio.to_thread(self.restart_database)
            elif fault.kind == "republish":
                count = self._rng.randint(40, 80)
                self.log.republished += await self._while_broker_away(lambda: self.republish(count))
            elif fault.kind == "poison":
                await self._while_broker_away(self.poison)
        except Exception as exc:
            self.log.failures.append(f"{fault.label()} at {at:.0f} s: {type(exc).__name__}: {exc}")
        self.log.done.append((at, fault.label(), time.monotonic() - began - at))

    async def _while_broker_away(self, attempt: Callable[[], Awaitable[T]], patience_s: float = 300.0) -> T:
        """A fault that needs the broker (another fault may have it restarting) waits for it."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return await attempt()
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(2)

    async def kill(self, service: str) -> None:
        process = self._system.process(f"{service}#1")
        pause = self._rng.uniform(0.5, 3.0)
        self._restarting[process.name] += 1
        try:
            # A second kill of a service still starting from the first waits until it is up again.
            async with self._locks.setdefault(process.name, asyncio.Lock()):
                self._system.kill(process)
                await asyncio.sleep(pause)
                await self._system.relaunch(process)
        finally:
            self._restarting[process.name] -= 1

    def restart_broker(self) -> None:
        _infra("stop", "kafka")
        time.sleep(self._rng.uniform(1.0, 4.0))
        _infra("start", "kafka")

    def restart_database(self) -> None:
        pids = infra_pids(self._state).get("postgres")
        if not pids:
            raise RuntimeError("no postmaster pid (infra.sh did not start PostgreSQL?)")
        os.kill(pids[0], signal.SIGKILL)
        time.sleep(self._rng.uniform(1.0, 3.0))
        # Backends notice their postmaster is gone and exit; until they have, the cluster cannot start.
        deadline = time.monotonic() + 120
        while True:
            try:
                _infra("start", "pg")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    async def republish(self, count: int) -> int:
        """`count` records the run already put on the services' topics, sent again unchanged."""
        topics = {t for group in routes.CONSUMERS for t in group.topics}
        consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka, enable_auto_commit=False, client_id="oms-chaos")
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka, acks="all", enable_idempotence=True, client_id="oms-chaos"
        )
        try:
            await consumer.start()
            await producer.start()
            partitions = [tp for tp in self._start_offsets if tp.topic in topics]
            ends = await consumer.end_offsets(partitions)
            chosen = [tp for tp in partitions if ends[tp] > self._start_offsets[tp]]
            sent = 0
            for tp in self._rng.sample(chosen, min(len(chosen), 24)):
                consumer.assign([tp])
                first = self._start_offsets[tp]
                consumer.seek(tp, self._rng.randint(first, max(first, ends[tp] - 10)))
                records = (await consumer.getmany(tp, timeout_ms=2000, max_records=max(1, count // 12))).get(tp, [])
                for record in records:
                    await producer.send_and_wait(
                        tp.topic, record.value, key=record.key, partition=tp.partition, headers=list(record.headers)
                    )
                    sent += 1
                if sent >= count:
                    break
            return sent
        finally:
            await producer.stop()
            await consumer.stop()

    async def poison(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka, acks="all", enable_idempotence=True, client_id="oms-chaos"
        )
        try:
            await producer.start()
            topics = sorted({t for group in routes.CONSUMERS for t in group.topics})
            for topic in topics:
                garbage = f"\x00not json {uuid4().hex} {{".encode()
                await producer.send_and_wait(topic, garbage, key=uuid4().hex.encode())
                self._expect(garbage, [g.service for g in routes.CONSUMERS if topic in g.topics])
            for topic, message_type in BAD_PAYLOADS.items():
                envelope = _bad_envelope(message_type)
                await producer.send_and_wait(topic, envelope, key=uuid4().hex.encode())
                handlers = [
                    g.service for g in routes.CONSUMERS if topic in g.topics and message_type in g.message_types
                ]
                self._expect(envelope, handlers)
        finally:
            await producer.stop()

    def _expect(self, value: bytes, services: list[str]) -> None:
        expected: dict[str, int] = {}
        for service in services:
            topic = dead_letter_topic(service)
            expected[topic] = expected.get(topic, 0) + 1
        self.log.poison[value] = expected


def _bad_envelope(message_type: str) -> bytes:
    """A well-formed envelope of the type, from a producer that is not an OMS service, whose payload lacks
    every required field."""
    order_id = str(uuid4())
    return Envelope(
        type=message_type,
        schema_version=1,
        producer="chaos-poison",
        correlation_id=order_id,
        payload={"order_id": order_id, "poison": True},
    ).to_bytes()
