"""payment-service in production: the simulated gateway (test tokens, a local ledger) is refused at start
unless ALLOW_SIMULATED_PROVIDERS=true; a real gateway's settings start."""

import contextlib
import os
import subprocess
import sys

import pytest

from oms_runtime.environment import SimulationRefusedError
from oms_runtime.host import ServiceHost
from payment_service.main import PaymentSettings, build


async def test_production_refuses_the_simulated_gateway_unless_told_so() -> None:
    with pytest.raises(SimulationRefusedError, match="PAYMENT_GATEWAY=simulated"):
        build(PaymentSettings(oms_environment="production"))
    await _close(build(PaymentSettings(oms_environment="production", allow_simulated_providers=True)))


async def test_production_starts_with_a_real_gateway() -> None:
    settings = PaymentSettings(
        oms_environment="production",
        payment_gateway="stripe_like",
        gateway_base_url="https://payments.example.com",
        gateway_api_key="sk_live_example",
    )
    assert settings.simulations() == []
    await _close(build(settings))


def test_the_process_exits_at_start_with_the_reason() -> None:
    """Before it connects to anything: the broker and database here do not exist."""
    env = {
        **os.environ,
        "OMS_ENVIRONMENT": "production",
        "PAYMENT_GATEWAY": "simulated",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "DATABASE_URL": "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none",
        "LOG_FORMAT": "json",
    }
    env.pop("ALLOW_SIMULATED_PROVIDERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "payment_service.main"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "payment-service refuses to start: OMS_ENVIRONMENT=production" in done.stderr
    assert "Traceback" not in done.stderr


async def _close(host: ServiceHost) -> None:
    """A host built and never started: its producer and engine hold nothing, but are closed all the same."""
    with contextlib.suppress(Exception):
        await host.producer.stop()
    await host.db.dispose()
