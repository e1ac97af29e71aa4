"""The HTTP parts every service shares: key roles and the one error body naming each bad field."""

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from oms_runtime.http_api import API_KEYS_ADAPTER, ApiKeyAuthenticator, Principal, Role, install_error_handlers

KEYS = [
    {"name": "ops", "key": "ops-key-0123456789", "role": "ops"},
    {"name": "web", "key": "web-key-0123456789", "role": "channel", "channel": "web"},
    {"name": "wh", "key": "warehouse-key-0123456789", "role": "warehouse"},
]


class Body(BaseModel):
    quantity: int = Field(gt=0)


def app() -> FastAPI:
    auth = ApiKeyAuthenticator(API_KEYS_ADAPTER.validate_python(KEYS))
    api = FastAPI()
    install_error_handlers(api)
    staff = auth.dependency(roles=frozenset({Role.WAREHOUSE}))

    @api.post("/picks")
    async def pick(body: Body, principal: Annotated[Principal, Depends(staff)]) -> dict[str, str]:
        return {"by": principal.name}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database went away")

    return api


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_roles_admit_ops_and_the_named_role_only(client: httpx.AsyncClient) -> None:
    for key, expected in [("ops-key-0123456789", 200), ("warehouse-key-0123456789", 200), ("web-key-0123456789", 403)]:
        response = await client.post("/picks", json={"quantity": 1}, headers={"X-API-Key": key})
        assert response.status_code == expected, response.text
    forbidden = await client.post("/picks", json={"quantity": 1}, headers={"X-API-Key": "web-key-0123456789"})
    assert forbidden.json()["error"] == "forbidden"
    missing = await client.post("/picks", json={"quantity": 1})
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthenticated")
    wrong = await client.post("/picks", json={"quantity": 1}, headers={"X-API-Key": "not-a-key-0123456789"})
    assert wrong.status_code == 401


async def test_bad_input_names_the_field_and_failures_are_503_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/picks", json={"quantity": 0}, headers={"X-API-Key": "ops-key-0123456789"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["quantity"]
    boom = await client.get("/boom")
    assert (boom.status_code, boom.json()["error"]) == (503, "unavailable")


def test_a_channel_key_must_name_its_channel_and_others_must_not() -> None:
    with pytest.raises(ValidationError):
        API_KEYS_ADAPTER.validate_python([{"name": "x", "key": "k" * 16, "role": "channel"}])
    with pytest.raises(ValidationError):
        API_KEYS_ADAPTER.validate_python([{"name": "x", "key": "k" * 16, "role": "carrier", "channel": "web"}])


def test_only_a_warehouse_key_may_name_its_warehouse() -> None:
    [scoped] = API_KEYS_ADAPTER.validate_python(
        [{"name": "ber", "key": "k" * 16, "role": "warehouse", "warehouse_id": "WH-BER"}]
    )
    assert scoped.warehouse_id == "WH-BER"
    for role in ("ops", "carrier"):
        with pytest.raises(ValidationError, match="only a warehouse key"):
            API_KEYS_ADAPTER.validate_python([{"name": "x", "key": "k" * 16, "role": role, "warehouse_id": "WH-BER"}])
    with pytest.raises(ValidationError):
        API_KEYS_ADAPTER.validate_python([{"name": "x", "key": "k" * 16, "role": "warehouse", "warehouse_id": ""}])


def test_a_scoped_warehouse_key_acts_for_its_warehouse_only_and_an_unscoped_one_for_every_warehouse() -> None:
    auth = ApiKeyAuthenticator(
        API_KEYS_ADAPTER.validate_python(
            [
                *KEYS,
                {"name": "ber", "key": "berlin-key-0123456789", "role": "warehouse", "warehouse_id": "WH-BER"},
            ]
        )
    )
    berlin = auth.principal("berlin-key-0123456789")
    assert berlin is not None
    assert berlin.warehouse_id == "WH-BER"
    assert berlin.may_act_for("WH-BER")
    assert not berlin.may_act_for("WH-HAM")
    berlin.require_warehouse("WH-BER")
    with pytest.raises(StarletteHTTPException) as refused:
        berlin.require_warehouse("WH-HAM", "shipment 42")
    assert refused.value.status_code == 403
    assert (
        str(refused.value.detail) == "This key acts for warehouse WH-BER only; shipment 42 belongs to warehouse WH-HAM."
    )
    for unscoped in ("warehouse-key-0123456789", "ops-key-0123456789"):
        principal = auth.principal(unscoped)
        assert principal is not None
        assert principal.warehouse_id is None
        principal.require_warehouse("WH-HAM")
