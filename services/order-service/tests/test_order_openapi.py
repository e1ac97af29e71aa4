"""The checked-in OpenAPI document documents the API's rules (tests/deploy checks it matches the code)."""

import json

from oms_runtime.openapi import document_path


def test_the_document_names_the_key_and_every_route() -> None:
    document = json.loads(document_path("order-service").read_text())
    assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    paths = set(document["paths"])
    assert {
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/cancel",
        "/orders/{order_id}/actions",
        "/orders/{order_id}/tracking",
        "/orders/stuck",
    } <= paths
    responses = document["paths"]["/orders"]["post"]["responses"]
    assert {"201", "422"} <= set(responses)
