"""The one error body of every service's HTTP API: `{"error", "message", "fields"}`.

A validation error names each bad field as a dotted path (`lines.0.quantity`), so a caller can fix its
request without reading our logs. Its own module so that the request guard (`oms_runtime.http_guard`) and
the API helpers (`oms_runtime.http_api`) both answer in it without importing each other.
"""

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[FieldError] = []


def error_response(
    status_code: int,
    error: str,
    message: str,
    fields: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=error, message=message, fields=fields or [])
    return JSONResponse(status_code=status_code, content=body.model_dump(), headers=headers)


def field_name(location: tuple[int | str, ...] | list[int | str], default: str = "body") -> str:
    """`("body", "lines", 0, "quantity")` -> `lines.0.quantity`."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "header", "path", "query"):
        parts = parts[1:]
    return ".".join(parts) or default
