"""The API documents people and generators read: operation ids that name what an operation does, and the
/docs and /redoc pages with every asset served by the service itself (no public CDN)."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from oms_runtime.api_docs import readable_operation_id
from oms_runtime.http_api import ServiceApi

REPO = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted((REPO / "services").glob("*/openapi.json"))
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


class _References(HTMLParser):
    """Every URL a page makes the browser load or link: src, href, and url(...) or "…" in its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value is not None]
        self._script = tag in {"script", "style"}

    def handle_endtag(self, tag: str) -> None:
        self._script = False

    def handle_data(self, data: str) -> None:
        if self._script:
            self.urls += re.findall(r"""(?:https?:)?//[^\s'"`)]+""", data)
            self.urls += re.findall(r"""url: ?['"]([^'"]+)['"]""", data)


def _app() -> ServiceApi:
    app = ServiceApi(title="test-service")

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    return app


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_reference_no_external_host_and_every_asset_is_served(page: str) -> None:
    client = TestClient(_app())
    answer = client.get(page)
    assert answer.status_code == 200
    parser = _References()
    parser.feed(answer.text)
    assert parser.urls, "the parser found no reference at all: it is broken"
    external = [u for u in parser.urls if re.match(r"^(?:[a-z]+:)?//", u)]
    assert external == [], f"{page} loads from other hosts: {external}"
    for url in parser.urls:
        if url.startswith("data:"):
            continue
        assert url.startswith("/"), url
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        assert len(fetched.content) > 1000 or url == "/openapi.json", url
    assert "validatorUrl" in answer.text or page == "/redoc", "Swagger UI's online validator is a public host"


def test_an_asset_outside_the_list_is_not_served() -> None:
    client = TestClient(_app())
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404
    assert client.get("/docs/assets/index.html").status_code == 404


def test_the_fallback_operation_id_is_the_handler_in_camel_case() -> None:
    [route] = [r for r in _app().routes if isinstance(r, APIRoute)]
    assert readable_operation_id(route) == "getThing"
    assert _app().openapi()["paths"]["/things/{thing_id}"]["get"]["operationId"] == "getThing"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.parent.name)
def test_every_operation_id_is_readable_and_unique(document: Path) -> None:
    """Not FastAPI's generated `place_order_orders_post`: camelCase, no path or method in it."""
    ids = [op["operationId"] for ops in json.loads(document.read_text())["paths"].values() for op in ops.values()]
    assert ids, document
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]+)*", operation_id), f"{operation_id}: not camelCase"
        assert not operation_id.lower().endswith(HTTP_METHODS), f"{operation_id}: ends in an HTTP method"
        assert len(operation_id) <= 40, f"{operation_id}: too long to be a method name"
