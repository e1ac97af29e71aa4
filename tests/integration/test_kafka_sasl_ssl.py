"""Every service on a SASL_SSL broker (SCRAM-SHA-512 over TLS): an order goes from placed to shipped, and a
client without the credentials gets nothing.

The broker is a second one of deploy/local/infra.sh (`KAFKA_SECURITY=sasl_ssl`), on ports and in a state
directory of its own, so the rest of the suite keeps its PLAINTEXT broker; the services get the settings
`infra.sh env` prints, as `make run KAFKA_SECURITY=sasl_ssl` gives them. PostgreSQL and Redis are the
suite's, with a database of its own.
"""

import asyncio
import os
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import create_async_engine

from harness import (
    REPO,
    SERVICES,
    Infra,
    ServiceProcess,
    System,
    free_port,
    message_types,
    recreate_database,
    service_env,
    unique_sku,
)
from notification_service.testing import LocalSmsProvider
from oms_events import topics

INFRA_SH = REPO / "deploy" / "local" / "infra.sh"
DATABASE = "oms_integration_sasl_ssl"
SMS_WEBHOOK_TOKEN = "it-sasl-sms-webhook-token-0123456789"


class _Mailbox:
    """An SMTP sink: notification-service sends its emails somewhere, this test reads none of them."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        return "250 OK"


def _infra_sh(state: Path, ports: tuple[int, int], *args: str) -> str:
    main_state = Path(os.environ.get("OMS_STATE_DIR", REPO / ".local"))
    env = {
        **os.environ,
        "OMS_STATE_DIR": str(state),
        "KAFKA_PORT": str(ports[0]),
        "KAFKA_CONTROLLER_PORT": str(ports[1]),
        "KAFKA_SECURITY": "sasl_ssl",
        # The jars the suite's own broker runs on (`make test` starts it first): no second download.
        "KAFKA_LIB_DIR": str(main_state / "kafka" / "lib"),
    }
    done = subprocess.run(["bash", str(INFRA_SH), *args], env=env, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        raise RuntimeError(f"infra.sh {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def sasl_ssl_broker() -> Iterator[dict[str, str]]:
    """A SASL_SSL broker of its own; yields the client settings `infra.sh env` prints for it."""
    state = REPO / ".local" / f"test-sasl-ssl-{os.getpid()}"
    shutil.rmtree(state, ignore_errors=True)
    ports = (free_port(), free_port())
    try:
        _infra_sh(state, ports, "start", "kafka")
        lines = _infra_sh(state, ports, "env").splitlines()
        # Shell words (`env` quotes a path for `eval`).
        yield {
            name: shlex.split(value)[0]
            for name, value in (line.split("=", 1) for line in lines)
            if name.startswith("KAFKA_")
        }
    finally:
        _infra_sh(state, ports, "stop", "kafka")
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
async def sasl_system(sasl_ssl_broker: dict[str, str], sms_provider: LocalSmsProvider) -> AsyncIterator[System]:
    base = Infra.from_env()
    await recreate_database(base, DATABASE)
    infra = Infra(sasl_ssl_broker, base.with_database(DATABASE).database_url, base.redis_url)
    smtp_port = free_port()
    smtp = Controller(_Mailbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = service_env(
        infra, smtp_port=smtp_port, sms_provider_url=sms_provider.url, sms_webhook_token=SMS_WEBHOOK_TOKEN
    )
    ports = {name: free_port() for name in SERVICES}
    # Logs of their own (tests/integration's leak scan reads them too), beside the suite's system's.
    services = {
        name: ServiceProcess(f"{name}-sasl-ssl", module, {**env, "HTTP_PORT": str(ports[name])})
        for name, module in SERVICES.items()
    }
    engine = create_async_engine(infra.database_url)
    try:
        for service in services.values():
            service.start()
        await asyncio.gather(*(s.wait_started() for s in services.values()))
        yield System(infra, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, services, engine)
    finally:
        codes = {name: s.stop() for name, s in services.items()}
        smtp.stop()
        await engine.dispose()
    unclean = {name: code for name, code in codes.items() if code not in (0, None)}
    assert not unclean, f"services did not shut down cleanly on SIGTERM: {unclean}"


async def test_an_order_is_placed_and_shipped_with_every_service_on_sasl_ssl(sasl_system: System) -> None:
    assert sasl_system.infra.kafka_env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert sasl_system.infra.kafka.protocol == "SASL_SSL"
    sku = unique_sku()
    await sasl_system.set_stock(sku, {"WH-BER": 5})

    response = await sasl_system.place_order([(sku, 1, 2_500)])
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]

    order = await sasl_system.wait_for_status(order_id, {"shipped", "rejected", "needs_attention"}, timeout_s=120)
    assert order["status"] == "shipped", order
    # Every hop of the saga went over the authenticated listener (this test's own reads do too).
    assert message_types(await sasl_system.envelopes(topics.ORDERS_EVENTS, order_id)) == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderConfirmed",
        "OrderShipped",
    ]
    assert message_types(await sasl_system.envelopes(topics.PAYMENTS_EVENTS, order_id)) == [
        "PaymentAuthorised",
        "PaymentCaptured",
    ]
    await sasl_system.wait_for_stock(sku, {"WH-BER": (4, 0)})


@pytest.mark.parametrize("client", ["no TLS, no credentials", "TLS without credentials", "a wrong password"])
async def test_a_client_without_the_credentials_is_refused(sasl_system: System, client: str) -> None:
    args = sasl_system.infra.kafka.client_args()
    refused: dict[str, Any] = {
        "no TLS, no credentials": {"bootstrap_servers": args["bootstrap_servers"]},
        "TLS without credentials": {
            "bootstrap_servers": args["bootstrap_servers"],
            "security_protocol": "SSL",
            "ssl_context": args["ssl_context"],
        },
        "a wrong password": {**args, "sasl_plain_password": "not-the-password"},
    }[client]
    admin = AIOKafkaAdminClient(**refused, request_timeout_ms=5_000)
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(admin.start(), 30)
            await admin.list_topics()
    finally:
        await admin.close()
