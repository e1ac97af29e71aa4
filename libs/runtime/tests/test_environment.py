"""OMS_ENVIRONMENT=production refuses a service that would only pretend, unless ALLOW_SIMULATED_PROVIDERS says
it may; elsewhere the simulations are the point (local runs, tests, demos)."""

import pytest

from oms_runtime.environment import SimulationRefusedError, refuse_simulations
from oms_runtime.host import ServiceHost
from oms_runtime.settings import ServiceSettings


class PretendingSettings(ServiceSettings):
    def simulations(self) -> list[str]:
        return ["GATEWAY=toy takes no money", "warehouses ship nothing"]


def test_production_refuses_every_simulation_by_name_and_says_how_to_allow_it() -> None:
    with pytest.raises(SimulationRefusedError) as refused:
        refuse_simulations("toy-service", PretendingSettings(oms_environment="production"))
    message = str(refused.value)
    assert message.startswith("toy-service refuses to start: OMS_ENVIRONMENT=production")
    assert "GATEWAY=toy takes no money; warehouses ship nothing" in message
    assert "ALLOW_SIMULATED_PROVIDERS=true" in message
    # A SystemExit with a message: the process ends with status 1 and the reason on stderr.
    assert isinstance(refused.value, SystemExit)
    assert refused.value.code == message


def test_production_starts_when_told_explicitly_or_when_nothing_is_simulated() -> None:
    refuse_simulations("toy-service", PretendingSettings(oms_environment="production", allow_simulated_providers=True))
    refuse_simulations("real-service", ServiceSettings(oms_environment="production"))


def test_development_runs_the_simulations(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_simulations("toy-service", PretendingSettings())
    monkeypatch.setenv("OMS_ENVIRONMENT", "production")
    with pytest.raises(SimulationRefusedError):
        refuse_simulations("toy-service", PretendingSettings())
    monkeypatch.setenv("ALLOW_SIMULATED_PROVIDERS", "true")
    refuse_simulations("toy-service", PretendingSettings())


def test_the_service_host_refuses_before_it_builds_anything() -> None:
    with pytest.raises(SimulationRefusedError, match="toy-service refuses"):
        ServiceHost("toy-service", PretendingSettings(oms_environment="production"))
