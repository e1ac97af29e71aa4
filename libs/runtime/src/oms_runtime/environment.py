"""Production refuses to pretend: a service whose settings simulate a provider (the payment gateway that
takes test tokens, warehouses that ship at once with made-up tracking numbers, demo stock) does not start
under OMS_ENVIRONMENT=production unless ALLOW_SIMULATED_PROVIDERS=true says it may.

The defaults are made for a developer's machine, so a deployment that forgot one setting would otherwise
take orders it never charges and promise parcels nobody sends, and look healthy doing it. The check runs
when the service host is built, before anything connects, so the pod fails its start with the reason in
its log instead of serving.
"""

from oms_runtime.logging import get_logger
from oms_runtime.settings import ServiceSettings

log = get_logger(__name__)


class SimulationRefusedError(SystemExit):
    """The service would simulate a provider in production. A SystemExit: the process ends with the message
    on stderr and exit status 1, without a traceback that would bury the reason."""


def refuse_simulations(service: str, settings: ServiceSettings) -> None:
    simulated = settings.simulations()
    if not simulated or settings.oms_environment != "production":
        return
    if settings.allow_simulated_providers:
        log.warning("simulated providers allowed in production (ALLOW_SIMULATED_PROVIDERS)", simulated=simulated)
        return
    reason = (
        f"{service} refuses to start: OMS_ENVIRONMENT=production, but " + "; ".join(simulated) + ". Configure the "
        "real provider, or set ALLOW_SIMULATED_PROVIDERS=true to run with the simulation all the same."
    )
    log.error("simulated providers refused in production", simulated=simulated)
    raise SimulationRefusedError(reason)
