"""The API's error bodies, one shape for every route: `{"error", "message", "fields"}`."""

from fastapi.responses import JSONResponse

from order_service.entrypoints.schemas import ErrorBody, FieldError


def error_response(status_code: int, error: str, message: str, fields: list[FieldError] | None = None) -> JSONResponse:
    body = ErrorBody(error=error, message=message, fields=fields or [])
    return JSONResponse(status_code=status_code, content=body.model_dump())


def field_name(location: tuple[int | str, ...] | list[int | str], default: str = "body") -> str:
    """`("body", "lines", 0, "quantity")` -> `lines.0.quantity`."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "header", "path", "query"):
        parts = parts[1:]
    return ".".join(parts) or default
