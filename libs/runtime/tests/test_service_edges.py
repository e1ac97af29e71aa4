"""Every operation of every service's HTTP API, read from the app it really serves (its OpenAPI document
and its routes): what no route may forget.

- every text field, query, path and header parameter refuses NUL (`PlainText` or a pattern that does);
- every integer is bounded, within a BIGINT;
- every operation with a body checks credentials before reading it, and refuses a body past the limit;
- every error answer is documented with the error body, 503 on every operation.
A new route that misses one fails here, naming the operation and the field.
"""

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from oms_events.topics import SERVICES
from oms_events.values import INT64_MAX
from oms_runtime.openapi import document_path
from oms_runtime.testing_http import edge_client

DOCUMENTS = {service: json.loads(document_path(service).read_text()) for service in SERVICES}
SCHEMA_FORMATS = ("uuid", "date", "date-time", "time")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _leaves(document: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every string and number a request may carry."""
    schema = _resolve(document, schema)
    for combined in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(combined, []):
            yield from _leaves(document, sub, path)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            yield from _leaves(document, sub, f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            yield from _leaves(document, schema["additionalProperties"], f"{path}.*")
    elif kind == "array":
        yield from _leaves(document, schema.get("items", {}), f"{path}[]")
    elif kind in ("string", "integer", "number"):
        yield path, schema


def _operations() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for service, document in DOCUMENTS.items():
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                yield service, method.upper(), path, operation


def _request_leaves(document: dict[str, Any], operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for parameter in operation.get("parameters", []):
        yield from _leaves(document, parameter["schema"], f"{parameter['in']}:{parameter['name']}")
    for media in operation.get("requestBody", {}).get("content", {}).values():
        yield from _leaves(document, media["schema"], "body")


def _refuses_nul(schema: dict[str, Any]) -> bool:
    if "enum" in schema or "const" in schema or schema.get("format") in SCHEMA_FORMATS:
        return True  # a closed set, or a format the validator parses
    pattern = schema.get("pattern")
    return pattern is not None and not any(re.search(pattern, s) for s in ("\x00", "a\x00", "\x00a", "A1\x00"))


def test_every_text_a_request_carries_refuses_nul() -> None:
    missing = [
        f"{service} {method} {path}: {field}"
        for service, method, path, operation in _operations()
        for field, schema in _request_leaves(DOCUMENTS[service], operation)
        if schema.get("type") == "string" and not _refuses_nul(schema)
    ]
    assert missing == [], "use oms_events.values.PlainText (or a pattern without NUL) for:\n" + "\n".join(missing)


def test_every_integer_a_request_carries_is_bounded_within_a_bigint() -> None:
    unbounded = []
    for service, method, path, operation in _operations():
        for field, schema in _request_leaves(DOCUMENTS[service], operation):
            if schema.get("type") != "integer":
                continue
            high = schema.get("maximum", schema.get("exclusiveMaximum"))
            low = schema.get("minimum", schema.get("exclusiveMinimum"))
            if high is None or low is None or high > INT64_MAX or low < -INT64_MAX - 1:
                unbounded.append(f"{service} {method} {path}: {field} [{low}, {high}]")
    assert unbounded == [], "bound these to their column:\n" + "\n".join(unbounded)


def test_every_error_answer_is_documented_with_the_error_body() -> None:
    for service, method, path, operation in _operations():
        responses = operation["responses"]
        where = f"{service} {method} {path}"
        assert "503" in responses, where
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= responses.keys(), where
        if operation.get("parameters"):
            assert "422" in responses, where
        for code, answer in responses.items():
            if int(code) >= 400:
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{where} {code}"


def _url(document: dict[str, Any], path: str, operation: dict[str, Any]) -> str:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            schema = _resolve(document, parameter["schema"])
            sample = str(uuid4()) if schema.get("format") == "uuid" else "A1"
            path = path.replace("{" + parameter["name"] + "}", sample)
    return path


class Body:
    """A JSON body streamed to the app that remembers whether it was read."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        yield b'{"x": "' + b"y" * self.size + b'"}'


BODY_OPERATIONS = [(s, m, p, op) for s, m, p, op in _operations() if "requestBody" in op]


@pytest.mark.parametrize(
    ("service", "method", "path", "operation"),
    BODY_OPERATIONS,
    ids=[f"{s}:{m}:{p}" for s, m, p, _ in BODY_OPERATIONS],
)
async def test_every_body_is_refused_unread_without_credentials_and_past_the_limit(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    url = _url(DOCUMENTS[service], path, operation)
    async with edge_client(service, http_max_body_bytes=4096) as client:
        body = Body()
        refused = await client.request(method, url, content=body, headers={"Content-Type": "application/json"})
        assert refused.status_code in (401, 403, 404), refused.text
        assert refused.json()["fields"] == []
        assert not body.read, f"{service} {method} {path} read the body of a caller without credentials"
        large = Body(8192)
        too_large = await client.request(
            method, url, content=large, headers={"Content-Type": "application/json", "Content-Length": "8206"}
        )
        assert (too_large.status_code, too_large.json()["error"]) == (413, "body_too_large")
        assert not large.read


async def test_the_edge_client_answers_a_request_past_the_edge_with_503() -> None:
    """The premise of every service's bad-input tests: a good request reaches the (absent) database."""
    async with edge_client(
        "payment-service", api_keys='[{"name": "o", "key": "edge-ops-0123456789", "role": "ops"}]'
    ) as client:
        response: httpx.Response = await client.get(
            f"/payments/{uuid4()}", headers={"X-API-Key": "edge-ops-0123456789"}
        )
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")
