"""The processes a benchmark run measures: the infrastructure found from infra.sh's pid files, and the
services and sinks the bench starts itself (fresh database, known settings, K replicas of each service in
the same consumer groups) or, with --use-running, those services.sh started.

The chaos suite (tests/chaos) runs the same system and kills its processes: `kill` sends SIGKILL and
`relaunch` starts the process again with the same command and settings, appending to the same log.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from oms_events.topics import SERVICES
from oms_runtime.kafka_connection import KafkaConnection

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent

OPS_KEY = "bench-ops-key-0123456789abcdef"
WAREHOUSE_KEY = "bench-warehouse-key-0123456789abcdef"
SMS_WEBHOOK_TOKEN = "bench-sms-webhook-token-0123456789"
TRACKING_TOKEN_SECRET = "bench-tracking-secret-0123456789"
API_KEYS = json.dumps(
    [
        {"name": "bench-ops", "key": OPS_KEY, "role": "ops"},
        {"name": "bench-warehouse", "key": WAREHOUSE_KEY, "role": "warehouse"},
    ]
)
INFRA = ("kafka", "postgres", "redis")
SINKS = ("SMTP sink", "SMS sink")
STARTED_LINE = '"message": "service started"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_port(base: int, service: str, replica: int) -> int:
    """services.sh's scheme (base + the service's place) for replica 0; replica r adds 10 * r."""
    return base + SERVICES.index(service) + 10 * replica


def _pid_in(path: Path) -> int | None:
    try:
        first = path.read_text().split()[0]
    except (FileNotFoundError, IndexError):
        return None
    pid = int(first)
    return pid if Path(f"/proc/{pid}").exists() else None


def infra_pids(state: Path) -> dict[str, list[int]]:
    """Kafka's JVM, the postmaster (its backends are its children) and redis-server, from infra.sh's pid
    files; a component that infra.sh did not start (or that is down) is left out."""
    files = {
        "kafka": state / "kafka" / "kafka.pid",
        "postgres": state / "pg" / "data" / "postmaster.pid",
        "redis": state / "redis" / "redis.pid",
    }
    found = {name: _pid_in(path) for name, path in files.items()}
    return {name: [pid] for name, pid in found.items() if pid is not None}


def running_service_pids(state: Path) -> dict[str, list[int]]:
    """What services.sh started (its pid files in <state>/run)."""
    names = {**{s: s for s in SERVICES}, "mailsink": "SMTP sink", "smssink": "SMS sink"}
    found: dict[str, list[int]] = {}
    for file_name, group in names.items():
        pid = _pid_in(state / "run" / f"{file_name}.pid")
        if pid is not None:
            found.setdefault(group, []).append(pid)
    return found


@dataclass
class Process:
    name: str
    group: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    started_before: int = 0
    """`service started` lines the log held before this start (logs are appended to across runs)."""
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    killed: int = 0
    """Times it was killed on purpose (`BenchSystem.kill`): an exit that is not one of these is a crash."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def started_count(self) -> int:
        try:
            return self.log.read_text(errors="replace").count(STARTED_LINE)
        except FileNotFoundError:
            return 0

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class BenchSystem:
    """The sinks and K replicas of every service, started fresh; stopped with SIGTERM (then SIGKILL)."""

    state: Path
    kafka: KafkaConnection
    database_url: str
    redis_url: str
    http_port_base: int
    replicas: int
    partitions: int
    processes: list[Process] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    """Settings every service gets on top of the bench's own (the chaos suite shortens some timeouts)."""

    @property
    def spool(self) -> Path:
        """Where the sinks write: `mail/*.eml` and `sms/*.json`."""
        return self.state / "bench"

    @property
    def logs(self) -> Path:
        return self.state / "bench" / "logs"

    def urls(self, service: str) -> list[str]:
        return [f"http://127.0.0.1:{p.port}" for p in self.processes if p.group == service]

    def groups(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for p in self.processes:
            found.setdefault(p.group, []).append(p.pid)
        return found

    def _launch(self, name: str, group: str, argv: list[str], env: Mapping[str, str], port: int | None) -> Process:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name.replace('#', '-')}.log"
        before = log.read_text(errors="replace").count(STARTED_LINE) if log.exists() else 0
        process = Process(name, group, _popen(argv, env, log), log, port, before, list(argv), dict(env))
        self.processes.append(process)
        return process

    def process(self, name: str) -> Process:
        [found] = [p for p in self.processes if p.name == name]
        return found

    def kill(self, process: Process) -> None:
        """SIGKILL: no shutdown, no final commit, as a crashed node or an OOM kill."""
        process.killed += 1
        process.popen.kill()
        process.popen.wait(10)

    async def relaunch(self, process: Process, wait: bool = True) -> None:
        """The same command again (after `kill` or a crash); with `wait`, until it is started and ready."""
        if process.popen.poll() is None:
            raise RuntimeError(f"{process.name} is still running")
        process.started_before = process.started_count()
        process.popen = _popen(process.argv, process.env, process.log)
        if wait and process.port is not None and process.group not in SINKS:
            await self._wait_started(process)

    async def start(self) -> None:
        smtp_port, sms_port = free_port(), free_port()
        spool = self.state / "bench"
        self._launch(
            "mailsink",
            "SMTP sink",
            [sys.executable, "deploy/local/mailsink.py", "--dir", str(spool / "mail"), "--port", str(smtp_port)],
            {},
            smtp_port,
        )
        self._launch(
            "smssink",
            "SMS sink",
            [
                sys.executable,
                "deploy/local/smssink.py",
                "--dir",
                str(spool / "sms"),
                "--port",
                str(sms_port),
                "--webhook-token",
                SMS_WEBHOOK_TOKEN,
                "--report-after",
                "1",
            ],
            {},
            sms_port,
        )
        notification_port = http_port(self.http_port_base, "notification-service", 0)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "KAFKA_TOPIC_PARTITIONS": str(self.partitions),
            "API_KEYS": API_KEYS,
            "TRACKING_TOKEN_SECRET": TRACKING_TOKEN_SECRET,
            "SMTP_PORT": str(smtp_port),
            "SMS_PROVIDER_URL": f"http://127.0.0.1:{sms_port}",
            "SMS_WEBHOOK_TOKEN": SMS_WEBHOOK_TOKEN,
            "SMS_STATUS_CALLBACK_URL": f"http://127.0.0.1:{notification_port}/webhooks/sms/status",
            "LOG_FORMAT": "json",
            **self.extra_env,
        }
        # One replica of each service at a time: ten Python processes importing at once on two cores take
        # minutes, and each joining replica makes its groups rebalance anyway.
        for replica in range(self.replicas):
            services = []
            for service in SERVICES:
                port = http_port(self.http_port_base, service, replica)
                name = f"{service}#{replica + 1}"
                services.append(
                    self._launch(name, service, [str(VENV_BIN / service)], {**env, "HTTP_PORT": str(port)}, port)
                )
            await asyncio.gather(*(self._wait_started(p) for p in services))

    async def _wait_started(self, process: Process, timeout_s: float = 300.0) -> None:
        """Until the service logs that it started and its readiness probe answers 200."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.port}", timeout=5) as http:
            while True:
                if process.popen.poll() is not None:
                    raise RuntimeError(f"{process.name} exited during start; {process.log}:\n{process.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} not started after {timeout_s:.0f} s:\n{process.tail()}")
                if process.started_count() > process.started_before:
                    try:
                        if (await http.get("/health/ready")).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.3)

    def exited(self) -> list[Process]:
        return [p for p in self.processes if p.popen.poll() is not None]

    def stop(self, timeout_s: float = 30.0) -> None:
        for p in self.processes:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for p in self.processes:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)
        self.processes.clear()


def _popen(argv: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        out.write(f"===== {time.strftime('%Y-%m-%dT%H:%M:%S')} bench start =====\n".encode())
        return subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )


async def recreate_database(database_url: str, name: str) -> str:
    """Drops and creates the database; returns the URL of the new one."""
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


async def flush_redis(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
