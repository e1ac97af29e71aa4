"""The chaos suite's small, seeded run in `make test`: 150 orders at 5 a second while every service is
SIGKILLed once, the broker restarts once, consumed records are re-published and poison is injected; every
invariant must hold and the calm phase must log no ERROR (tests/chaos/chaos.py says what each one is).

It restarts the broker it runs on and starts services in the services' own consumer groups, so it runs in
a pytest session of its own (`make test` runs it after the integration tests), never beside them.
"""

import os

import pytest

import chaos

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


async def test_every_invariant_holds_under_faults_and_a_calm_run_logs_no_error() -> None:
    for name, default in (
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    ):
        os.environ.setdefault(name, default)
    opts = chaos.Options(
        orders=int(os.environ.get("CHAOS_SMALL_ORDERS", "150")),
        rate=5.0,
        seed=int(os.environ.get("CHAOS_SEED", "7")),
        kills_per_service=1,
        broker_restarts=1,
        database_restarts=0,
        republish_rounds=1,
        poison_rounds=1,
        http_port_base=int(os.environ.get("HTTP_PORT_BASE", "28400")),
    )
    outcome = await chaos.run(opts, chaos.state_dir())
    chaos.print_outcome(opts, outcome)
    assert outcome.calm.error_total == 0, f"the calm phase logged ERROR lines:\n{outcome.calm.table()}"
    assert outcome.calm.traceback_total == 0, f"the calm phase logged tracebacks:\n{outcome.calm.table()}"
    assert outcome.report.held, f"invariants violated:\n{outcome.report.table()}"
