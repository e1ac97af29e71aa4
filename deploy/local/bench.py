"""Benchmarks the whole system on this machine and prints what an order costs, in one run.

    make bench [N=2000] [CLIENTS=32] [RATE=75 DURATION=60] [REPLICAS=1] [PARTITIONS=12]
    uv run --frozen python deploy/local/bench.py --orders 2000 --clients 32 [--rate 75 --duration 60]
                                                 [--replicas 2] [--partitions 12] [--use-running] ...

By default it starts its own system: a fresh database (`oms_bench`), a flushed Redis database, the SMTP
and SMS sinks and K replicas of every service in the same consumer groups, on the infrastructure of
deploy/local/infra.sh; with --use-running it measures what services.sh started instead. Then:

1. warm-up: a few orders, until the system has settled (no consumer lag, no email in flight);
2. idle: CPU of every process over a few seconds without load;
3. the run: N orders by C clients as fast as they are taken (closed loop), or R orders/s for D s
   whatever the answers (open loop, --rate); each order timed from its OrderPlaced to its OrderShipped
   (order-service's stamps on the orders topic); the run ends when every order ended and the system
   settled again. CPU (utime+stime from /proc, whole process trees, see benchkit/procfs.py) and the
   end offsets of every oms.* topic are read just before and after it;
4. the invariants, from the services' APIs (benchkit/invariants.py);
5. the raw aiokafka produce -> consume -> commit pipeline on the same broker (benchkit/kafka_io.py).

Exit code 0 only when every order finished and every invariant held. See docs/benchmarks.md.
"""

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from sqlalchemy.engine import make_url

from benchkit import procfs
from benchkit.invariants import Apis, Verdict, add_stock, check, stock
from benchkit.kafka_io import (
    LagWatch,
    RawPipeline,
    end_offsets,
    messages_per_topic,
    partitions_of,
    raw_pipeline,
    recreate_topics,
    skip_to_end,
)
from benchkit.load import OrderWatcher, Placement, Placer
from benchkit.report import ProcessRow, load_average, machine, messages_table, process_table
from benchkit.stats import per_order, rate, summarize
from benchkit.system import (
    INFRA,
    OPS_KEY,
    REPO,
    SINKS,
    WAREHOUSE_KEY,
    BenchSystem,
    flush_redis,
    http_port,
    infra_pids,
    recreate_database,
    running_service_pids,
)
from oms_events.topics import ALL_TOPICS, SERVICES
from oms_runtime.kafka import ensure_topics


def consumer_groups() -> dict[str, tuple[str, ...]]:
    """Every consumer group the services run and the topics it reads: the table the Kubernetes manifests
    scale by (deploy/k8s/manifests.py), which tests/deploy checks against the composition roots."""
    spec = importlib.util.spec_from_file_location("oms_k8s_manifests", REPO / "deploy" / "k8s" / "manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table: dict[str, dict[str, tuple[str, ...]]] = module.CONSUMER_GROUPS
    return {group: topics for groups in table.values() for group, topics in groups.items()}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="orders of a closed-loop run (default 2000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of a closed-loop run")
    parser.add_argument("--rate", type=float, default=None, help="open loop: orders per second (e.g. 75)")
    parser.add_argument("--duration", type=float, default=60.0, help="open loop: seconds of placing (default 60)")
    parser.add_argument("--replicas", type=int, default=1, help="processes of every service (default 1)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=int(env.get("KAFKA_TOPIC_PARTITIONS", "12")),
        help="partitions of the keyed topics (KAFKA_TOPIC_PARTITIONS, default 12)",
    )
    parser.add_argument("--recreate-topics", action="store_true", help="delete every oms.* topic first")
    parser.add_argument("--warmup", type=int, default=20, help="orders placed and finished before measuring")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle measurement (0: none)")
    parser.add_argument("--raw-messages", type=int, default=50_000, help="records of the raw pipeline (0: none)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the orders to finish")
    parser.add_argument("--use-running", action="store_true", help="measure services.sh's services instead")
    parser.add_argument("--keep-running", action="store_true", help="leave the bench's services up afterwards")
    parser.add_argument("--http-port-base", type=int, default=int(env.get("HTTP_PORT_BASE", "8000")))
    parser.add_argument("--database", default="oms_bench", help="the database the bench's services get")
    parser.add_argument("--redis-db", type=int, default=3, help="the Redis database the bench's services get")
    args = parser.parse_args(argv)
    for name in ("orders", "clients", "replicas", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.replicas > args.partitions:
        parser.error(f"--replicas {args.replicas} > --partitions {args.partitions}: the extra replicas would idle")
    if args.use_running and args.replicas != 1:
        parser.error("--replicas starts the bench's own services; it cannot be used with --use-running")
    return args


@dataclass
class Target:
    """The system under test: where its APIs are, which processes to read, where its emails land."""

    urls: dict[str, list[str]]
    processes: dict[str, list[int]]
    mail_dir: Path
    ops_key: str = OPS_KEY
    warehouse_key: str = WAREHOUSE_KEY
    system: BenchSystem | None = None

    def emails(self) -> int:
        return sum(1 for _ in self.mail_dir.glob("*.eml")) if self.mail_dir.is_dir() else 0


def own_ticks() -> int:
    stat = procfs.read_stat(os.getpid())
    return stat.utime + stat.stime if stat else 0


async def settle(lag: LagWatch, emails: Callable[[], int], timeout_s: float = 180.0) -> float:
    """Waits until no group lags and the SMTP sink got no email for three readings in a row; returns the
    seconds it took."""
    began = time.monotonic()
    stable, last = 0, -1
    while stable < 3:
        if time.monotonic() - began > timeout_s:
            print(f"  (not settled after {timeout_s:.0f} s: {await lag.total()} records of lag)")
            break
        behind, sent = await lag.total(), emails()
        stable = stable + 1 if behind == 0 and sent == last else 0
        last = sent
        await asyncio.sleep(0.5)
    return time.monotonic() - began


async def start_target(args: argparse.Namespace, state: Path, kafka: str) -> Target:
    if args.use_running:
        urls = {s: [f"http://127.0.0.1:{http_port(args.http_port_base, s, 0)}"] for s in SERVICES}
        processes = running_service_pids(state)
        absent = sorted(set(SERVICES) - processes.keys())
        if absent:
            raise SystemExit(f"--use-running: not running (services.sh status): {', '.join(absent)}")
        # services.sh's local-only keys (deploy/local/services.sh).
        ops_key = os.environ.get("OMS_API_KEY", "local-ops-key-0123456789")
        return Target(urls, processes, state / "mail", ops_key, "local-warehouse-key-0123456789")
    if args.recreate_topics:
        print("deleting every oms.* topic")
        await recreate_topics(kafka)
    await ensure_topics(kafka, ALL_TOPICS, partitions=args.partitions)
    # A fresh database must not be fed what earlier runs left on the topics.
    await skip_to_end(kafka, consumer_groups())
    database_url = await recreate_database(os.environ.get("DATABASE_URL", _default_database()), args.database)
    redis_url = make_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")).set(database=str(args.redis_db))
    redis = redis_url.render_as_string(hide_password=False)
    await flush_redis(redis)
    system = BenchSystem(state, kafka, database_url, redis, args.http_port_base, args.replicas, args.partitions)
    print(f"starting {args.replicas} x 5 services and the sinks (logs in {system.logs})")
    began = time.monotonic()
    try:
        await system.start()
    except BaseException:
        system.stop()
        raise
    print(f"  up in {time.monotonic() - began:.0f} s")
    return Target({s: system.urls(s) for s in SERVICES}, system.groups(), state / "bench" / "mail", system=system)


def _default_database() -> str:
    return "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms"


async def place(args: argparse.Namespace, placer: Placer) -> Placement:
    if args.rate is not None:
        print(f"placing {args.rate:g} orders/s for {args.duration:g} s (open loop)")
        return await placer.open_loop(args.rate, args.duration)
    print(f"placing {args.orders} orders with {args.clients} clients (closed loop)")
    return await placer.closed_loop(args.orders, args.clients)


async def run(args: argparse.Namespace, state: Path) -> int:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mode = (
        f"open loop, {args.rate:g} orders/s for {args.duration:g} s"
        if args.rate is not None
        else f"closed loop, {args.orders} orders, {args.clients} clients"
    )
    print(f"machine: {machine()}; load average {load_average()} at start")
    print(
        f"settings: {mode}; {args.replicas} replica(s) per service; {args.partitions} partitions; "
        f"warm-up {args.warmup} orders; {'services.sh services' if args.use_running else 'fresh system'}"
    )
    infra = infra_pids(state)
    for name in INFRA:
        if name not in infra:
            print(f"  {name}: no pid file of infra.sh in {state}: its CPU is not counted")
    target = await start_target(args, state, kafka)
    groups = {**infra, **target.processes}
    lag = LagWatch(kafka, consumer_groups())
    await lag.start()
    apis = Apis(target.urls, target.ops_key, target.warehouse_key)
    placer = Placer(target.urls["order-service"], target.ops_key, uuid4().hex[:8], connections=max(args.clients, 64))
    try:
        measured = round(args.rate * args.duration) if args.rate is not None else args.orders
        await add_stock(apis, measured + args.warmup, reference=f"bench-{uuid4().hex[:12]}")
        watcher = OrderWatcher(kafka, await end_offsets(kafka, await partitions_of(kafka)))
        await watcher.start()
        if args.warmup:
            warm = await placer.closed_loop(args.warmup, min(args.clients, args.warmup))
            await watcher.wait_for(warm.accepted, 120)
        settled_s = await settle(lag, target.emails)
        print(f"warmed up ({args.warmup} orders; settled in {settled_s:.1f} s)")

        idle: dict[str, float] = {}
        if args.idle_seconds > 0:
            before_idle = procfs.read_cpu(groups)
            await asyncio.sleep(args.idle_seconds)
            idle_ms = procfs.cpu_ms(before_idle, procfs.read_cpu(groups), groups)
            idle = {name: ms / (args.idle_seconds * 10) for name, ms in idle_ms.items()}

        partitions = await partitions_of(kafka)
        offsets_before = await end_offsets(kafka, partitions)
        stock_before = await stock(apis)
        emails_before = target.emails()
        cpu_before, client_before, window_began = procfs.read_cpu(groups), own_ticks(), time.monotonic()
        placement = await place(args, placer)
        finished = await watcher.wait_for(placement.accepted, args.timeout)
        settle_s = await settle(lag, target.emails)
        cpu_after, client_after, window_s = procfs.read_cpu(groups), own_ticks(), time.monotonic() - window_began
        offsets_after = await end_offsets(kafka, await partitions_of(kafka))
        memory = {name: [m for pid in pids if (m := procfs.read_memory(pid))] for name, pids in groups.items()}
        await watcher.stop()

        print("checking the invariants through the APIs")
        verdict = await check(apis, placement.accepted, stock_before, lambda: target.emails() - emails_before)
        raw = await raw_pipeline(kafka, args.raw_messages, partitions=args.partitions) if args.raw_messages else None
    finally:
        await placer.close()
        await apis.close()
        await lag.close()
        if target.system is not None and not args.keep_running:
            target.system.stop()

    exited = sorted(cpu_after.missing | cpu_before.missing)
    report(
        args,
        placement,
        watcher,
        finished,
        groups,
        (cpu_before, cpu_after),
        (client_before, client_after),
        window_s,
        settle_s,
        idle,
        memory,
        messages_per_topic(offsets_before, offsets_after),
        verdict,
        raw,
    )
    print(f"machine load average {load_average()} at the end")
    if exited:
        print(f"WARNING: processes exited during the run: {exited}")
    ok = finished and verdict.ok and not placement.refused and not exited
    print("RESULT: " + ("every order finished and every invariant held" if ok else "FAILED (see above)"))
    return 0 if ok else 1


def report(
    args: argparse.Namespace,
    placement: Placement,
    watcher: OrderWatcher,
    finished: bool,
    groups: dict[str, list[int]],
    cpu: tuple[procfs.CpuReading, procfs.CpuReading],
    client: tuple[int, int],
    window_s: float,
    settle_s: float,
    idle: dict[str, float],
    memory: dict[str, list[procfs.Memory]],
    messages: dict[str, int],
    verdict: Verdict,
    raw: RawPipeline | None,
) -> None:
    accepted = placement.accepted
    outcomes = [watcher.outcomes[o] for o in accepted if o in watcher.outcomes]
    print()
    print("== orders")
    refused = ", ".join(f"{n} x {why}" for why, n in placement.refused.items()) or "none"
    print(
        f"placed {len(accepted):,} in {placement.seconds:.1f} s ({rate(len(accepted), placement.seconds):.1f} "
        f"orders/s accepted); refused: {refused}"
        + (
            f"; {placement.unknown_outcomes} x 503 (outcome not known in time) asked again"
            if placement.unknown_outcomes
            else ""
        )
        + (f"; {placement.late_starts} sent late (>100 ms after their slot)" if args.rate is not None else "")
    )
    if not outcomes:
        print("no order finished")
        return
    first = min(o.placed_at for o in outcomes)
    last = max(o.final_at for o in outcomes)
    span = (last - first).total_seconds()
    end_to_end = rate(len(outcomes), span)
    print(
        f"finished {len(outcomes):,}/{len(accepted):,}"
        + ("" if finished else f" ({len(accepted) - len(outcomes)} unfinished after {args.timeout:.0f} s)")
        + f"; end to end: {end_to_end:.1f} orders/s (first placed to last final: {span:.1f} s)"
    )
    shipped = [o.latency_ms for o in outcomes if o.status == "shipped"]
    if shipped:
        print(f"placed-to-shipped latency: {summarize(shipped).line()}")
    if placement.http_ms:
        print(f"POST /orders latency:      {summarize(placement.http_ms).line()}")

    orders = len(outcomes)
    before, after = cpu
    ms = procfs.cpu_ms(before, after, groups)
    window_ms = window_s * 1000
    names = [*SERVICES, *INFRA, *SINKS]
    rows = [
        ProcessRow(
            name,
            len(groups[name]),
            per_order(ms[name], orders),
            ms[name] / window_ms * 100,
            idle.get(name),
            memory.get(name, []),
        )
        for name in names
        if name in groups
    ]
    total_ms = sum(ms[r.name] for r in rows)
    total = ProcessRow(
        "total (system)",
        sum(r.processes for r in rows),
        per_order(total_ms, orders),
        total_ms / window_ms * 100,
        sum(r.idle_percent or 0 for r in rows) if idle else None,
        [],
    )
    client_ms = (client[1] - client[0]) * 1000 / procfs.CLOCK_TICKS_PER_S
    bench = ProcessRow(
        "bench client (not in total)", 1, per_order(client_ms, orders), client_ms / window_ms * 100, None, []
    )
    print()
    print(f"== CPU per order ({orders:,} orders; window {window_s:.1f} s, of which {settle_s:.1f} s settling)")
    print(process_table(rows, total, bench, window_ms, orders))

    print()
    print("== Kafka messages (end offsets of every oms.* topic before and after)")
    print(messages_table(messages, orders))
    per = sum(messages.values()) / orders
    system_rate = end_to_end * per
    if raw is not None:
        print()
        print("== raw aiokafka pipeline on the same broker (one process: produce -> consume -> commit)")
        print(
            f"{raw.messages:,} records of {raw.record_bytes} B over {raw.partitions} partitions in "
            f"{raw.seconds:.1f} s: {raw.per_second:,.0f} messages/s"
        )
        print(
            f"system: {end_to_end:.1f} orders/s x {per:.1f} messages per order = {system_rate:,.0f} messages/s; "
            f"ratio to the raw pipeline {system_rate / raw.per_second:.4f}"
        )

    print()
    print("== invariants (from the APIs)")
    print(f"order statuses: {dict(verdict.statuses)}")
    print(f"notifications: {dict(verdict.notifications)}")
    if verdict.ok:
        print("OK: every order final, one capture per order, stock conserved, one notification per kind per order")
    for problem in verdict.problems:
        print(f"PROBLEM: {problem}")


def main() -> int:
    args = parse_args(sys.argv[1:])
    # aiokafka retries a coordinator that a fresh broker is still loading, and says so at WARNING.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    state = Path(os.environ.get("OMS_STATE_DIR", REPO / ".local")).resolve()
    return asyncio.run(run(args, state))


if __name__ == "__main__":
    raise SystemExit(main())
