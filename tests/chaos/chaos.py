"""The chaos suite: the real system under faults, then its invariants from the APIs.

    make chaos [N=1000] [RATE=5] [SEED=1]
    uv run --frozen python tests/chaos/chaos.py --orders 1000 --rate 5 --seed 1 [--kills-per-service 2] ...

On the infrastructure of deploy/local/infra.sh (which it restarts: run it on your own ports), it starts a
fresh system (benchkit: its own database `oms_chaos`, Redis database, SMTP and SMS sinks, one process of
each service), receives stock, and then:

1. calm: a few orders with no fault, until they are final and the system settled; the services' logs must
   hold no ERROR line and no traceback for that phase (an operator's log is quiet when all is well);
2. chaos: N orders at RATE a second from an upstream client that retries timeouts and 503s with the same
   Idempotency-Key (chaoskit/upstream.py), while the seeded faults of chaoskit/faults.py happen: every
   service SIGKILLed and started again at random points, the broker restarted, PostgreSQL's postmaster
   killed and started again, consumed records re-published byte for byte, poison records injected;
3. settle: the client learns the outcome of every order it gave up on (GET by the order id its channel and
   external reference make), every order becomes final (or is listed stuck), no group lags, no outbox
   holds a row, no email is in flight;
4. the invariants (chaoskit/checks.py) as a table, the faults with their recovery times, the placing
   figures, and the ERROR lines and tracebacks of the chaos phase by service, logger and message.

Exit code 0 only when every invariant held and the calm phase logged no ERROR.
"""

import argparse
import asyncio
import logging
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchkit.invariants import Apis
from benchkit.kafka_io import LagWatch, end_offsets, partitions_of, skip_to_end
from benchkit.system import OPS_KEY, REPO, WAREHOUSE_KEY, BenchSystem, flush_redis, recreate_database
from chaoskit import checks, faults, logscan
from chaoskit.upstream import Placement, PlannedOrder, Upstream, plan, starting_stock
from oms_events import routes
from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime.kafka import ensure_topics
from oms_runtime.kafka_connection import KafkaConnection

DEFAULT_DATABASE_URL = "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
"""infra.sh's defaults, as the services' settings have them."""


@dataclass
class Options:
    orders: int = 150
    rate: float = 5.0
    seed: int = 1
    kills_per_service: int = 1
    broker_restarts: int = 1
    database_restarts: int = 0
    republish_rounds: int = 1
    poison_rounds: int = 1
    calm_orders: int = 12
    settle_timeout_s: float = 600.0
    http_port_base: int = 28400
    database: str = "oms_chaos"
    redis_db: int = 4
    partitions: int = 12


@dataclass
class Outcome:
    report: checks.Report
    calm: logscan.LogCounts
    chaos: logscan.LogCounts
    placement: Placement
    fault_log: faults.FaultLog
    crashes: list[str] = field(default_factory=list)
    placed_unacknowledged: int = 0
    never_placed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.report.held and self.calm.error_total == 0 and self.calm.traceback_total == 0


def consumer_groups() -> dict[str, tuple[str, ...]]:
    return {g.group_id: g.topics for g in routes.CONSUMERS}


async def start_system(opts: Options, state: Path, kafka: KafkaConnection) -> BenchSystem:
    await ensure_topics(kafka, ALL_TOPICS, partitions=opts.partitions)
    await skip_to_end(kafka, consumer_groups())
    database_url = await recreate_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), opts.database)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL).rsplit("/", 1)[0] + f"/{opts.redis_db}"
    await flush_redis(redis_url)
    run_state = state / "chaos"
    shutil.rmtree(run_state / "bench" / "mail", ignore_errors=True)
    shutil.rmtree(run_state / "bench" / "sms", ignore_errors=True)
    (run_state / "bench" / "mail").mkdir(parents=True)
    (run_state / "bench" / "sms").mkdir(parents=True)
    system = BenchSystem(run_state, kafka, database_url, redis_url, opts.http_port_base, 1, opts.partitions)
    try:
        await system.start()
    except BaseException:  # interrupted or failed: no service is left behind
        system.stop()
        raise
    return system


async def receive_stock(apis: Apis, stock: dict[tuple[str, str], int], run_id: str) -> None:
    for (sku, warehouse), units in stock.items():
        response = await apis("inventory-service").post(
            "/stock/receipts",
            json={
                "sku": sku,
                "warehouse_id": warehouse,
                "quantity": units,
                "reference": f"chaos-{run_id}-{sku}-{warehouse}",
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"stock receipt {sku}@{warehouse}: {response.status_code} {response.text}")


async def wait_final(apis: Apis, order_ids: list[str], timeout_s: float) -> list[str]:
    """Until every order is final; returns those that are not when the time is up."""
    deadline = time.monotonic() + timeout_s
    open_ids = list(order_ids)
    gate = asyncio.Semaphore(16)

    async def still_open(order_id: str) -> bool:
        async with gate:
            try:
                response = await apis("order-service").get(f"/orders/{order_id}")
            except httpx.HTTPError:
                return True
            return response.status_code != 200 or response.json()["status"] not in checks.FINAL

    while open_ids and time.monotonic() < deadline:
        flags = await asyncio.gather(*(still_open(o) for o in open_ids))
        open_ids = [o for o, flag in zip(open_ids, flags, strict=True) if flag]
        if open_ids:
            await asyncio.sleep(2)
    return open_ids


async def settle(lag: LagWatch, system: BenchSystem, timeout_s: float) -> bool:
    """No group lags, and the SMTP and SMS sinks got nothing new, for three readings in a row."""
    began = time.monotonic()
    stable, last = 0, (-1, -1)
    while stable < 3:
        if time.monotonic() - began > timeout_s:
            return False
        try:
            behind = await lag.total()
        except Exception:  # the broker restarting: not settled
            behind = -1
        sent = (len(list((system.spool / "mail").glob("*.eml"))), len(list((system.spool / "sms").glob("*.json"))))
        stable = stable + 1 if behind == 0 and sent == last else 0
        last = sent
        await asyncio.sleep(1.0)
    return True


async def watch_exits(system: BenchSystem, injector: faults.Injector, crashes: list[str], stop: asyncio.Event) -> None:
    """A process that exits when the run did not kill it is a crash: recorded, and started again."""
    while not stop.is_set():
        for process in system.exited():
            if injector.expecting_exit(process.name):
                continue
            crashes.append(f"{process.name} exited with {process.popen.returncode}:\n{process.tail(8)}")
            await system.relaunch(process, wait=False)
        await asyncio.sleep(0.5)


async def run(opts: Options, state: Path) -> Outcome:
    # The run's own clients speak plaintext to the local broker (the chaos run restarts it); the benchkit
    # parts take the connection settings, the chaos kit the address.
    connection = KafkaConnection.from_env()
    kafka = connection.bootstrap_servers
    rng = random.Random(opts.seed)
    run_id = f"{opts.seed}-{random.Random().getrandbits(32):08x}"
    stock = starting_stock(opts.orders + opts.calm_orders)
    calm_orders = plan(opts.calm_orders, f"{run_id}-calm", random.Random(opts.seed + 1))
    chaos_orders = plan(opts.orders, run_id, rng)
    schedule = faults.schedule(
        rng,
        opts.orders / opts.rate,
        opts.kills_per_service,
        opts.broker_restarts,
        opts.database_restarts,
        opts.republish_rounds,
        opts.poison_rounds,
    )
    began_at = datetime.now(UTC) - timedelta(minutes=1)
    print(f"chaos run {run_id}: {opts.orders} orders at {opts.rate:g}/s, seed {opts.seed}; {len(schedule)} faults:")
    print("  " + ", ".join(f"{f.label()} @{f.at_s:.0f}s" for f in schedule))
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    system = await start_system(opts, state, connection)
    seconds["start"] = time.monotonic() - t0
    print(f"system up in {seconds['start']:.0f} s (logs in {system.logs})")
    urls = {s: system.urls(s) for s in SERVICES}
    apis = Apis(urls, OPS_KEY, WAREHOUSE_KEY)
    upstream = Upstream(urls["order-service"][0], OPS_KEY)
    lag = LagWatch(connection, consumer_groups())
    crashes: list[str] = []
    stop_watch = asyncio.Event()
    injector = faults.Injector(system, kafka, state, rng)
    watcher = asyncio.create_task(watch_exits(system, injector, crashes, stop_watch))
    try:
        await lag.start()
        await receive_stock(apis, stock, run_id)

        calm_logs = logscan.sizes(system.logs)
        t = time.monotonic()
        calm = await upstream.run(calm_orders, min(opts.rate, 4.0))
        unfinished = await wait_final(apis, list(calm.accepted), 180)
        await settle(lag, system, 120)
        calm_counts = logscan.count(system.logs, calm_logs)
        seconds["calm"] = time.monotonic() - t
        print(
            f"calm: {len(calm.accepted)}/{len(calm_orders)} orders accepted, {len(unfinished)} not final; "
            f"{calm_counts.error_total} ERROR lines, {calm_counts.traceback_total} tracebacks in {seconds['calm']:.0f} s"
        )

        start_offsets = await end_offsets(connection, await partitions_of(connection))
        injector.remember_offsets(start_offsets)
        chaos_logs = logscan.sizes(system.logs)
        t = time.monotonic()
        placing = asyncio.create_task(upstream.run(chaos_orders, opts.rate))
        await injector.run(schedule, t)
        placement = await placing
        seconds["placing"] = placement.ended - placement.began
        seconds["faults"] = time.monotonic() - t
        print(
            f"placed: {len(placement.accepted)} accepted, {len(placement.gave_up)} given up, "
            f"refused {dict(placement.refused)}; attempts {dict(placement.attempts)}"
        )

        t = time.monotonic()
        unacknowledged: dict[str, PlannedOrder] = {}
        never = 0
        for order in placement.gave_up:
            if await upstream.outcome(order) is not None:
                unacknowledged[order.order_id] = order
            else:
                never += 1
        known = [*calm.accepted, *placement.accepted, *unacknowledged]
        not_final = await wait_final(apis, known, opts.settle_timeout_s)
        settled = await settle(lag, system, 180)
        seconds["settle"] = time.monotonic() - t
        print(f"settled in {seconds['settle']:.0f} s: {len(not_final)} orders not final, lag settled: {settled}")
        chaos_counts = logscan.count(system.logs, chaos_logs)

        report = checks.Report()
        accepted = {**calm.accepted, **placement.accepted}
        await checks.check_orders(report, apis, accepted, unacknowledged, f"CHAOS-{run_id}", began_at, stock)
        checks.check_sinks(report, report.figures.pop("facts"), system.spool / "mail", system.spool / "sms")
        await checks.check_dead_letters(report, kafka, start_offsets, injector.log.poison)
        await checks.check_outboxes(report, urls, system.database_url, kafka, start_offsets)
        lagging = report("no consumer group lags")
        lagging.checked = 1
        if not settled:
            lagging.fail(f"{await lag.total()} records not committed after settling")
        exits = report("no service exited by itself")
        exits.checked = len(system.processes)
        for crash in crashes:
            exits.fail(crash)
        faults_ok = report("every fault carried out")
        faults_ok.checked = len(schedule)
        for failure in injector.log.failures:
            faults_ok.fail(failure)
        return Outcome(
            report, calm_counts, chaos_counts, placement, injector.log, crashes, len(unacknowledged), never, seconds
        )
    finally:
        stop_watch.set()
        await watcher
        await upstream.close()
        await apis.close()
        await lag.close()
        system.stop()


def print_outcome(opts: Options, outcome: Outcome) -> None:
    p = outcome.placement
    print()
    print("== placing")
    print(
        f"{opts.orders} orders at {opts.rate:g}/s in {p.ended - p.began:.0f} s: {len(p.accepted)} accepted; "
        f"{len(p.gave_up)} given up by the client after retrying, of which {outcome.placed_unacknowledged} were placed "
        f"(learnt by GET) and {outcome.never_placed} never were; refused: {dict(p.refused) or 'none'}"
    )
    print(f"attempts by answer: {dict(sorted(p.attempts.items()))}; cancels: {dict(p.cancels) or 'none'}")
    print()
    print("== faults (offset into the run, fault, seconds until recovered)")
    for at, label, took in sorted(outcome.fault_log.done):
        print(f"  {at:6.1f} s  {label:<30} {took:5.1f} s")
    print(f"  records re-published: {outcome.fault_log.republished}; poison records: {len(outcome.fault_log.poison)}")
    print()
    print(f"== orders by status: {dict(outcome.report.statuses)}")
    figures = {k: v for k, v in outcome.report.figures.items() if k != "shipped_units"}
    print(f"   figures: {figures}; shipped units: {outcome.report.figures.get('shipped_units')}")
    print()
    print("== invariants")
    print(outcome.report.table())
    print()
    print(f"== logs: calm phase {outcome.calm.error_total} ERROR lines, {outcome.calm.traceback_total} tracebacks")
    print(outcome.calm.table())
    print(f"== logs: chaos phase {outcome.chaos.error_total} ERROR lines, {outcome.chaos.traceback_total} tracebacks")
    print(outcome.chaos.table())
    print()
    print("== seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in outcome.seconds.items()))
    print("RESULT: " + ("every invariant held, calm logs clean" if outcome.ok else "FAILED (see above)"))


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="orders per second")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--kills-per-service", type=int, default=None, help="default 1, 2 from 500 orders")
    parser.add_argument("--broker-restarts", type=int, default=defaults.broker_restarts)
    parser.add_argument("--database-restarts", type=int, default=None, help="default 0, 1 from 500 orders")
    parser.add_argument("--republish-rounds", type=int, default=None, help="default 1, 3 from 500 orders")
    parser.add_argument("--poison-rounds", type=int, default=None, help="default 1, 2 from 500 orders")
    parser.add_argument("--calm-orders", type=int, default=defaults.calm_orders)
    parser.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout_s)
    parser.add_argument("--http-port-base", type=int, default=int(os.environ.get("HTTP_PORT_BASE", "28400")))
    args = parser.parse_args(argv)
    big = args.orders >= 500
    return Options(
        orders=args.orders,
        rate=args.rate,
        seed=args.seed,
        kills_per_service=args.kills_per_service if args.kills_per_service is not None else (2 if big else 1),
        broker_restarts=args.broker_restarts,
        database_restarts=args.database_restarts if args.database_restarts is not None else (1 if big else 0),
        republish_rounds=args.republish_rounds if args.republish_rounds is not None else (3 if big else 1),
        poison_rounds=args.poison_rounds if args.poison_rounds is not None else (2 if big else 1),
        calm_orders=args.calm_orders,
        settle_timeout_s=args.settle_timeout,
        http_port_base=args.http_port_base,
    )


def state_dir() -> Path:
    return Path(os.environ.get("OMS_STATE_DIR", REPO / ".local")).resolve()


def main() -> int:
    opts = parse_args(sys.argv[1:])
    # aiokafka says at WARNING/ERROR what the faults do to the run's own clients (a broker away).
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    outcome = asyncio.run(run(opts, state_dir()))
    print_outcome(opts, outcome)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
