"""Every service's OpenAPI document is checked in and is the one its composition root's app generates."""

import json
import subprocess
import sys

import pytest

from oms_events.topics import SERVICES
from oms_runtime.openapi import document_path


def test_every_document_is_generated_from_the_current_code() -> None:
    # A process of its own: building the hosts installs process-wide state (the tracer provider).
    result = subprocess.run(
        [sys.executable, "-m", "oms_runtime.openapi", "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"stale OpenAPI documents (run: make openapi, then commit them):\n{result.stderr}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_documents_its_api_and_its_api_key(service: str) -> None:
    path = document_path(service)
    assert path.is_file(), f"no {path.parent.name}/openapi.json: run `make openapi`"
    document = json.loads(path.read_text())
    assert document["info"]["title"] == f"OMS {service}"
    assert document["paths"], f"{service}'s document has no routes"
    schemes = document["components"]["securitySchemes"].values()
    assert any(s["type"] == "apiKey" and s["name"] == "X-API-Key" for s in schemes), f"{service}: no X-API-Key"
