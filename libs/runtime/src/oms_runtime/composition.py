"""A service's composition root found by name and built without connecting to anything.

The OpenAPI generator (`oms_runtime.openapi`) documents the app a service really serves, and the tests of
the HTTP edge send requests to it; both build the host from `<package>.main.build(settings)` with the
settings' defaults (and what a service refuses to start without). Found by name, as the manifests
generator finds the settings, so the runtime does not depend on the services.
"""

import importlib
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from pydantic import SecretStr

from oms_runtime.host import ServiceHost
from oms_runtime.settings import ServiceSettings

REQUIRED_SETTINGS: dict[str, dict[str, Any]] = {
    "order-service": {"tracking_token_secret": SecretStr("openapi-generation-only")},
}
"""Settings a service refuses to start without; their values do not change its API."""


def main_module(service: str) -> ModuleType:
    return importlib.import_module(f"{service.replace('-', '_')}.main")


def settings_of(service: str, **overrides: Any) -> ServiceSettings:
    """The service's settings: the defaults, whatever the environment says, plus `overrides`."""
    module = main_module(service)
    [cls] = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, ServiceSettings) and c.__module__ == module.__name__
    ]
    defaults = cls.model_construct(**REQUIRED_SETTINGS.get(service, {}))
    return defaults.model_copy(update=overrides)


@asynccontextmanager
async def built_service(service: str, **overrides: Any) -> AsyncIterator[ServiceHost]:
    """The service's host, built and never started (nothing is connected); released afterwards.

    Must be entered in a running event loop: the host's Kafka producer is created in one.
    """
    module = main_module(service)
    host: ServiceHost = module.build(settings_of(service, **overrides))
    try:
        yield host
    finally:
        await host.producer.stop()
        await host.db.dispose()
