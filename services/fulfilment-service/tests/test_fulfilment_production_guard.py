"""fulfilment-service in production: warehouses in automatic mode (shipped at once with made-up tracking
numbers, nobody picking) are refused at start unless ALLOW_SIMULATED_PROVIDERS=true."""

import contextlib

import pytest

from fulfilment_service.handlers import WarehouseMode
from fulfilment_service.main import FulfilmentSettings, build
from oms_runtime.environment import SimulationRefusedError
from oms_runtime.host import ServiceHost


def test_the_default_automatic_mode_is_refused_in_production() -> None:
    with pytest.raises(SimulationRefusedError, match="DEFAULT_WAREHOUSE_MODE=automatic"):
        build(FulfilmentSettings(oms_environment="production"))


def test_one_automatic_warehouse_is_refused_by_name() -> None:
    settings = FulfilmentSettings(
        oms_environment="production",
        default_warehouse_mode=WarehouseMode.MANUAL,
        warehouse_modes={"WH-BER": WarehouseMode.MANUAL, "WH-DEMO": WarehouseMode.AUTOMATIC},
    )
    with pytest.raises(SimulationRefusedError) as refused:
        build(settings)
    assert "WH-DEMO" in str(refused.value)
    assert "WH-BER" not in str(refused.value)


async def test_manual_warehouses_or_an_explicit_allowance_start() -> None:
    manual = build(FulfilmentSettings(oms_environment="production", default_warehouse_mode=WarehouseMode.MANUAL))
    allowed = build(FulfilmentSettings(oms_environment="production", allow_simulated_providers=True))
    for host in (manual, allowed):
        await _close(host)


async def _close(host: ServiceHost) -> None:
    """A host built and never started: its producer and engine hold nothing, but are closed all the same."""
    with contextlib.suppress(Exception):
        await host.producer.stop()
    await host.db.dispose()
