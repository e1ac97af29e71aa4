"""The prod overlays run production (OMS_ENVIRONMENT=production), with no simulated provider left for the
services to refuse; the base and dev keep the developer's simulations, and the same settings under
production are refused (oms_runtime.environment)."""

from typing import Any

import pytest

from k8s_build import OVERLAYS, build, manifests
from oms_events.topics import SERVICES
from oms_runtime.environment import SimulationRefusedError, refuse_simulations
from oms_runtime.settings import ServiceSettings


def _settings(documents: list[dict[str, Any]], service: str) -> ServiceSettings:
    """The service's settings as its pod would read them from its ConfigMap (the files and secrets the pod
    gets from the cluster left out: they do not decide what is simulated)."""
    [config] = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{service}-config"]
    cls: type[ServiceSettings] = manifests.settings_class(service)
    with pytest.MonkeyPatch.context() as env:
        for name in cls.model_fields:
            env.delenv(name.upper(), raising=False)
        for key, value in config["data"].items():
            if key != "KAFKA_SSL_CAFILE":
                env.setenv(key, value)
        env.setenv("KAFKA_SASL_PASSWORD", "from-the-kafka-user-secret")
        env.setenv("TRACKING_TOKEN_SECRET", "x" * 32)
        return cls()


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o.startswith("prod")])
def test_prod_runs_production_without_a_simulated_provider(overlay: str) -> None:
    documents = build(overlay)
    for service in SERVICES:
        settings = _settings(documents, service)
        assert settings.oms_environment == "production", f"{overlay}: {service}"
        assert settings.allow_simulated_providers is False, f"{overlay}: {service}"
        assert settings.simulations() == [], f"{overlay}: {service} would refuse to start"
        refuse_simulations(service, settings)


def test_dev_keeps_the_simulations_that_production_refuses() -> None:
    documents = build("dev")
    simulated = {}
    for service in SERVICES:
        settings = _settings(documents, service)
        assert settings.oms_environment == "development"
        simulated[service] = settings.simulations()
        if simulated[service]:
            production = settings.model_copy(update={"oms_environment": "production"})
            with pytest.raises(SimulationRefusedError, match=f"{service} refuses to start"):
                refuse_simulations(service, production)
    # The simulated gateway, automatic warehouses and demo stock: what a dev cluster runs on.
    assert {s for s, found in simulated.items() if found} == {
        "payment-service",
        "fulfilment-service",
        "inventory-service",
    }
