"""What every service's HTTP API shares: one error body, field-naming validation errors, API keys, guards.

- Every error answers `{"error", "message", "fields"}` (`oms_runtime.http_errors`); a validation error
  names each bad field as a dotted path (`lines.0.quantity`), at most `MAX_REPORTED_FIELDS` of them.
- API keys (header `X-API-Key`) carry a role. `ops` may do everything; the other roles are narrower and
  each service decides what they may do. Keys are configured as a JSON list (the API_KEYS setting).
- A `warehouse` key may name its `warehouse_id`: it then acts for that warehouse only (services refuse
  it for another one with 403, `Principal.require_warehouse`). A warehouse key without one acts for every
  warehouse, as before (kept for the keys configured before scoping existed; give each site its own).
- Keys are checked before a route's body is read (`KeyCheck` is a `PreBodyCheck`, run by the request
  guard, `oms_runtime.http_guard`), bodies are limited in size, and a failure is a 503 that leaves the
  connection usable.
- `ServiceApi` is the FastAPI app of every service: the handlers and the guard installed, and an OpenAPI
  document that lists every error status the routes answer, each with the error body.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from fastapi import FastAPI, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from oms_events.values import Channel
from oms_events.version import VERSION
from oms_runtime.api_docs import install_docs, readable_operation_id
from oms_runtime.http_errors import ErrorBody, FieldError, error_response, field_name
from oms_runtime.http_guard import (
    DEFAULT_MAX_BODY_BYTES,
    BodyTooLargeError,
    PreBodyCheck,
    RequestGuard,
    route_answers,
)

__all__ = [
    "API_KEYS_ADAPTER",
    "API_KEY_HEADER",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_REPORTED_FIELDS",
    "ApiKeyAuthenticator",
    "ApiKeyConfig",
    "AuthError",
    "ErrorBody",
    "FieldError",
    "KeyCheck",
    "OptionalKey",
    "PreBodyCheck",
    "Principal",
    "Role",
    "ServiceApi",
    "error_response",
    "field_name",
    "forbidden",
    "install_error_handlers",
    "same_secret",
    "unauthenticated",
]

MAX_REPORTED_FIELDS: Final = 50
"""A 422 names at most this many bad fields: a body of 100,000 unknown keys gets a short answer."""


def same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of any two texts (hmac.compare_digest refuses non-ASCII str)."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class Role(StrEnum):
    OPS = "ops"
    CHANNEL = "channel"
    WAREHOUSE = "warehouse"
    CARRIER = "carrier"


class ApiKeyConfig(BaseModel):
    """One entry of the API_KEYS setting (a JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    key: SecretStr = Field(min_length=16)
    role: Role
    channel: Channel | None = None
    warehouse_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Warehouse keys only: the one warehouse the key acts for (without it: every warehouse)",
    )

    @model_validator(mode="after")
    def _channel_keys_name_their_channel(self) -> Self:
        if (self.role is Role.CHANNEL) != (self.channel is not None):
            raise ValueError("a channel key needs `channel`; other keys must not have one")
        if self.warehouse_id is not None and self.role is not Role.WAREHOUSE:
            raise ValueError("only a warehouse key may name a `warehouse_id`")
        return self


API_KEYS_ADAPTER = TypeAdapter(list[ApiKeyConfig])


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    channel: str | None
    warehouse_id: str | None = None
    """Set for a warehouse key limited to one warehouse."""

    @property
    def is_ops(self) -> bool:
        return self.role is Role.OPS

    def may_see(self, channel: str) -> bool:
        return self.is_ops or self.channel == channel

    def may_act_for(self, warehouse_id: str) -> bool:
        """False only for a key limited to another warehouse."""
        return self.warehouse_id is None or self.warehouse_id == warehouse_id

    def require_warehouse(self, warehouse_id: str, what: str = "") -> None:
        """Raises 403 `forbidden` when the key is limited to another warehouse; `what` names the thing."""
        if not self.may_act_for(warehouse_id):
            subject = f"{what} belongs to warehouse {warehouse_id}" if what else f"warehouse {warehouse_id}"
            raise forbidden(f"This key acts for warehouse {self.warehouse_id} only; {subject}.")


class AuthError(StarletteHTTPException):
    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.error = error


def unauthenticated() -> AuthError:
    return AuthError(status.HTTP_401_UNAUTHORIZED, "unauthenticated", "A valid X-API-Key header is required.")


def forbidden(message: str) -> AuthError:
    return AuthError(status.HTTP_403_FORBIDDEN, "forbidden", message)


API_KEY_HEADER: Final = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key (see API_KEYS)")


class KeyCheck(PreBodyCheck):
    """The FastAPI dependency of a route that needs a key: any valid key, an ops key, or ops plus roles.

    A `PreBodyCheck`: the request guard runs it before the route's body is read, so a caller without a
    valid key learns nothing about the body the route expects, and a large body is never parsed for it.
    """

    def __init__(self, auth: "ApiKeyAuthenticator", *, ops_only: bool, roles: frozenset[Role] | None) -> None:
        self._auth = auth
        self._ops_only = ops_only
        self._roles = roles

    def principal(self, presented: str | None) -> Principal:
        principal = self._auth.principal(presented)
        if principal is None:
            raise unauthenticated()
        if self._ops_only and not principal.is_ops:
            raise forbidden("This needs an ops key.")
        if self._roles is not None and not principal.is_ops and principal.role not in self._roles:
            allowed = ", ".join(sorted({Role.OPS.value, *(r.value for r in self._roles)}))
            raise forbidden(f"This needs a key of role {allowed}.")
        return principal

    async def before_body(self, request: Request) -> None:
        self.principal(request.headers.get(API_KEY_HEADER))

    async def __call__(self, key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal:
        return self.principal(key)


class OptionalKey:
    """The FastAPI dependency of a route open to other credentials too: the key's principal, or None."""

    def __init__(self, auth: "ApiKeyAuthenticator") -> None:
        self._auth = auth

    async def __call__(self, key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal | None:
        return self._auth.principal(key)


class ApiKeyAuthenticator:
    def __init__(self, keys: list[ApiKeyConfig]) -> None:
        # Digests of equal length, compared in constant time.
        self._keys = [(hashlib.sha256(k.key.get_secret_value().encode()).digest(), k) for k in keys]

    @classmethod
    def from_json(cls, api_keys_json: str) -> Self:
        return cls(API_KEYS_ADAPTER.validate_json(api_keys_json))

    def principal(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, config in self._keys:
            if hmac.compare_digest(known, digest):
                found = config
        if found is None:
            return None
        return Principal(found.name, found.role, found.channel.value if found.channel else None, found.warehouse_id)

    def dependency(self, *, ops_only: bool = False, roles: frozenset[Role] | None = None) -> KeyCheck:
        """A FastAPI dependency that admits any valid key, only ops keys, or ops plus the given roles."""
        return KeyCheck(self, ops_only=ops_only, roles=roles)

    def optional_dependency(self) -> OptionalKey:
        return OptionalKey(self)


def install_error_handlers(app: FastAPI, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Validation errors as 422 naming each field, HTTP errors in the same body, the request guard (body
    limit, credentials before the body, 503 on a failure); never a bare 500 page."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        fields = [
            FieldError(field=field_name(e["loc"]), message=e["msg"], type=e["type"])
            for e in errors[:MAX_REPORTED_FIELDS]
        ]
        names = ", ".join(f.field for f in fields)
        if len(errors) > len(fields):
            names += f" and {len(errors) - len(fields)} more"
        return error_response(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "validation_failed", f"Invalid fields: {names}", fields
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, AuthError):
            code = exc.error
        elif isinstance(exc, BodyTooLargeError):
            code = "body_too_large"
        else:
            code = "http_error"
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)


# ---------------------------------------------------------------- the OpenAPI document

_ANSWERS: Final = {
    400: "The body cannot be read (not UTF-8, not parseable)",
    401: "No valid credentials (`unauthenticated`)",
    403: "The credentials do not allow this (`forbidden`)",
    404: "Not found, or not visible to these credentials",
    413: "The body is larger than HTTP_MAX_BODY_BYTES (`body_too_large`)",
    422: "Invalid fields, each named (`validation_failed`)",
    503: "A dependency (database, cache, broker) does not answer; retry later (`unavailable`)",
}
_ERROR_BODY_REF: Final = "#/components/schemas/ErrorBody"
_FASTAPI_VALIDATION_SCHEMAS: Final = ("HTTPValidationError", "ValidationError")


def document_answers(document: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Adds to every operation of an OpenAPI document the error statuses its route may answer besides its
    own: 503 always, 422 with parameters or a body, 400 and 413 with a body, and what its credential
    checks answer (401, 403). Every error answer has the error body (FastAPI's own 422 schema is replaced)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = models_json_schema([(ErrorBody, "serialization")], ref_template="#/components/schemas/{model}")
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document.get("paths", {}).get(context.path_format, {}).get(method.lower())
            if operation is None:
                continue
            answers = {status.HTTP_503_SERVICE_UNAVAILABLE} | route_answers(route)
            if operation.get("parameters") or "requestBody" in operation:
                answers.add(status.HTTP_422_UNPROCESSABLE_CONTENT)
            if "requestBody" in operation:
                answers |= {status.HTTP_400_BAD_REQUEST, status.HTTP_413_CONTENT_TOO_LARGE}
            responses = operation.setdefault("responses", {})
            for code in answers:
                responses.setdefault(str(code), {"description": _ANSWERS[code]})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    if response.get("description") == "Validation Error":  # FastAPI's
                        response["description"] = _ANSWERS[422]
                    response["content"] = {"application/json": {"schema": {"$ref": _ERROR_BODY_REF}}}
    referenced = json.dumps(document.get("paths"))
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in referenced:
            schemas.pop(name, None)
    return document


class ServiceApi(FastAPI):
    """The FastAPI app of a service: its error handlers and request guard installed, and an OpenAPI
    document that lists every status its routes answer (`document_answers`).

    Lean per request: FastAPI's own telemetry is off (the host's HTTP layer makes the server span,
    `oms_runtime.ops_http.OpsEdge`), and its middleware stack is the request guard, the exception
    handlers and the exit stack FastAPI needs. Starlette's ServerErrorMiddleware, FastAPI's exception
    telemetry and its body limit (a limit of its own, unset here) stay out unless they have something to
    do: the guard answers every failure before a response starts, and the body limit is the guard's
    (with FastAPI's `max_body_size` set, its stack is kept whole).
    """

    def __init__(self, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **kwargs: Any) -> None:
        # FastAPI's own pages load their assets from a public CDN: ours serve them from this process.
        docs_url = kwargs.pop("docs_url", "/docs")
        redoc_url = kwargs.pop("redoc_url", "/redoc")
        kwargs.setdefault("generate_unique_id_function", readable_operation_id)
        kwargs.setdefault("version", VERSION)  # the product's one version (oms_events.version)
        kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
        super().__init__(docs_url=None, redoc_url=None, **kwargs)
        install_error_handlers(self, max_body_bytes)
        if docs_url is not None:
            install_docs(self, docs_url, redoc_url)

    def openapi(self) -> dict[str, Any]:
        return document_answers(super().openapi(), self.routes)

    def build_middleware_stack(self) -> ASGIApp:
        if self.max_body_size is not None:
            return super().build_middleware_stack()  # FastAPI's own body limit: its stack as it is
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = ExceptionMiddleware(AsyncExitStackMiddleware(self.router), handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        if error_handler is not None or self.debug:
            app = ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)
        return app
