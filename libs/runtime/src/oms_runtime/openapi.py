"""OpenAPI documents of every service's HTTP API, generated from the code and checked in next to each service.

python -m oms_runtime.openapi --write    regenerate services/<name>/openapi.json for every service
python -m oms_runtime.openapi --check    exit 1 when a checked-in document differs from the code

Each document comes from the app the service really serves: its composition root (`<package>.main.build`)
builds the host with the settings' defaults, connecting to nothing, and the document is that app's own.
The host's `/health/*` and `/metrics` sit in front of the app (`oms_runtime.ops_http`) and are described
in the README, not here. The services are found by name, as the manifests generator finds their settings,
so the runtime does not depend on them.
"""

import asyncio
import importlib
import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import SecretStr

from oms_events.generated import GeneratedFiles, command
from oms_events.topics import SERVICES
from oms_runtime.host import ServiceHost
from oms_runtime.settings import ServiceSettings

SERVICES_DIR = Path(__file__).resolve().parents[4] / "services"

REQUIRED_SETTINGS: dict[str, dict[str, Any]] = {
    "order-service": {"tracking_token_secret": SecretStr("openapi-generation-only")},
}
"""Settings a service refuses to start without; their values do not change the document."""


def _main_module(service: str) -> ModuleType:
    return importlib.import_module(f"{service.replace('-', '_')}.main")


def document_path(service: str) -> Path:
    """services/<name>/openapi.json, beside the service's pyproject.toml."""
    return SERVICES_DIR / service / "openapi.json"


def _settings(service: str, module: ModuleType) -> ServiceSettings:
    [cls] = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, ServiceSettings) and c.__module__ == module.__name__
    ]
    # The defaults only, whatever the environment of the machine generating the document says.
    return cls.model_construct(**REQUIRED_SETTINGS.get(service, {}))


async def _build_document(service: str) -> dict[str, Any]:
    module = _main_module(service)
    host: ServiceHost = module.build(_settings(service, module))
    try:
        app = host.service_app
        if app is None:
            raise RuntimeError(f"{service} serves no HTTP API of its own")
        return dict(app.openapi())
    finally:
        # Built, never started: release what the constructors allocated (nothing is connected).
        await host.producer.stop()
        await host.db.dispose()


def document(service: str) -> str:
    """The service's OpenAPI document as checked in (sorted keys, so diffs stay small)."""
    # The host's Kafka producer must be created inside a running event loop.
    return json.dumps(asyncio.run(_build_document(service)), indent=2, sort_keys=True) + "\n"


def generate() -> dict[str, str]:
    """services/-relative path -> document, for every service."""
    return {f"{service}/openapi.json": document(service) for service in SERVICES}


def generated_files() -> GeneratedFiles:
    return GeneratedFiles(SERVICES_DIR, generate)


def main() -> int:
    return command(__doc__, [generated_files()], report="{problem} (run: make openapi)")


if __name__ == "__main__":
    raise SystemExit(main())
