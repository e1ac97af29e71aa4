"""What every service's HTTP API shares: one error body, field-naming validation errors, and API keys.

- Every error answers `{"error", "message", "fields"}`; a validation error names each bad field as a dotted
  path (`lines.0.quantity`), so a caller can fix its request without reading our logs.
- API keys (header `X-API-Key`) carry a role. `ops` may do everything; the other roles are narrower and
  each service decides what they may do. Keys are configured as a JSON list (the API_KEYS setting).
- A `warehouse` key may name its `warehouse_id`: it then acts for that warehouse only (services refuse
  it for another one with 403, `Principal.require_warehouse`). A warehouse key without one acts for every
  warehouse, as before (kept for the keys configured before scoping existed; give each site its own).
"""

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Self

import structlog
from fastapi import FastAPI, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from oms_events.values import Channel

log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[FieldError] = []


def error_response(status_code: int, error: str, message: str, fields: list[FieldError] | None = None) -> JSONResponse:
    body = ErrorBody(error=error, message=message, fields=fields or [])
    return JSONResponse(status_code=status_code, content=body.model_dump())


def field_name(location: tuple[int | str, ...] | list[int | str], default: str = "body") -> str:
    """`("body", "lines", 0, "quantity")` -> `lines.0.quantity`."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "header", "path", "query"):
        parts = parts[1:]
    return ".".join(parts) or default


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


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (see API_KEYS)")


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

    def dependency(
        self, *, ops_only: bool = False, roles: frozenset[Role] | None = None
    ) -> Callable[[str | None], Awaitable[Principal]]:
        """A FastAPI dependency that admits any valid key, only ops keys, or ops plus the given roles."""

        async def authenticate(key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal:
            principal = self.principal(key)
            if principal is None:
                raise unauthenticated()
            if ops_only and not principal.is_ops:
                raise forbidden("This needs an ops key.")
            if roles is not None and not principal.is_ops and principal.role not in roles:
                allowed = ", ".join(sorted({Role.OPS.value, *(r.value for r in roles)}))
                raise forbidden(f"This needs a key of role {allowed}.")
            return principal

        return authenticate

    def optional_dependency(self) -> Callable[[str | None], Awaitable[Principal | None]]:
        async def maybe(key: Annotated[str | None, Security(_api_key_header)] = None) -> Principal | None:
            return self.principal(key)

        return maybe


def install_error_handlers(app: FastAPI) -> None:
    """Validation errors as 422 naming each field, HTTP errors in the same body; never a bare 500 page."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [FieldError(field=field_name(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        names = ", ".join(f.field for f in fields)
        return error_response(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "validation_failed", f"Invalid fields: {names}", fields
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = exc.error if isinstance(exc, AuthError) else "http_error"
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A dependency (database, cache) failing is the usual cause: the client may retry.
        log.exception("request failed", path=request.url.path)
        return error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "The service cannot answer now; retry later."
        )
