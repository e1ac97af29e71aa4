"""The checked-in OpenAPI document is the one the code generates, and it documents the API's rules."""

import json

from order_service.openapi import DOCUMENT, generate


def test_checked_in_openapi_matches_the_code() -> None:
    assert DOCUMENT.read_text() == generate(), "run `make openapi` and commit services/order-service/openapi.json"


def test_the_document_names_the_key_and_every_route() -> None:
    document = json.loads(generate())
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
