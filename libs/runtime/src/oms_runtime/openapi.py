"""OpenAPI documents of every service's HTTP API, generated from the code and checked in next to each service.

python -m oms_runtime.openapi --write    regenerate services/<name>/openapi.json for every service
python -m oms_runtime.openapi --check    exit 1 when a checked-in document differs from the code

Each document comes from the app the service really serves: its composition root (`<package>.main.build`,
found by `oms_runtime.composition`) builds the host with the settings' defaults, connecting to nothing,
and the document is that app's own.
The host's `/health/*` and `/metrics` sit in front of the app (`oms_runtime.ops_http`) and are described
in the README, not here.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

from oms_events.generated import GeneratedFiles, command
from oms_events.topics import SERVICES
from oms_runtime.composition import built_service

SERVICES_DIR = Path(__file__).resolve().parents[4] / "services"


def document_path(service: str) -> Path:
    """services/<name>/openapi.json, beside the service's pyproject.toml."""
    return SERVICES_DIR / service / "openapi.json"


async def _build_document(service: str) -> dict[str, Any]:
    async with built_service(service) as host:
        app = host.service_app
        if app is None:
            raise RuntimeError(f"{service} serves no HTTP API of its own")
        return dict(app.openapi())


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
