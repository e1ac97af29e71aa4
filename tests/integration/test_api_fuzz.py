"""Schemathesis against the running services: every operation of every service's OpenAPI document, with
generated requests valid and invalid, must answer without a server error, only with statuses its document
lists, and inside the schema documented for each (issue 13, item 5).

A bounded number of examples per operation and mode (API_FUZZ_EXAMPLES, 5 in `make test`), derandomized
so a run is repeatable. The requests carry the ops key and really act (orders with unknown skus are
placed and rejected, warehouses are made): this module runs after every other one of the session
(conftest.py orders it last), so no other test meets what it made.
"""

import asyncio
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode

from harness import OPS_KEY, System

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "5"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]

pytestmark = pytest.mark.runs_last


def _fuzz(document: dict[str, Any], base_url: str) -> tuple[list[str], int]:
    """Failures (operation, mode, what schemathesis said) and the number of requests sent."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(base_url=base_url, headers={"X-API-Key": OPS_KEY}, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # schemathesis' FailureGroup: every distinct failure, with a curl to repeat it
                failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    return failures, sent


@pytest.mark.parametrize(
    "service", ["order-service", "inventory-service", "payment-service", "fulfilment-service", "notification-service"]
)
async def test_every_answer_is_documented_and_none_is_a_server_error(system: System, service: str) -> None:
    async with system.http(service=service) as http:
        document = (await http.get("/openapi.json")).json()
    failures, sent = await asyncio.to_thread(_fuzz, document, system.http_urls[service])
    assert sent >= len(document["paths"]), "every operation got requests"
    assert not failures, "\n\n".join(failures)
