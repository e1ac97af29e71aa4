"""How a service describes its HTTP API to people and generators: readable operation ids, and the `/docs`
(Swagger UI) and `/redoc` pages served with assets the service ships itself.

- Operation ids name what an operation does (`placeOrder`, `getOrder`, `listStuckOrders`), so an SDK
  generated from the OpenAPI document gets readable method names. Routes say theirs where they are declared
  (`operation_id=`); `readable_operation_id` is the fallback FastAPI calls for a route that does not: the
  handler's name in camelCase, never FastAPI's `place_order_orders_post`.
- FastAPI's pages load Swagger UI and ReDoc from a public CDN: a blank page on an air-gapped cluster. Here
  the assets come from the `fastapi-offline` package (pinned; Swagger UI 5, which reads OpenAPI 3.1) and are
  answered by the service under `/docs/assets/`. Swagger UI's online validator (a request to a public host)
  is switched off.
"""

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

ASSETS_DIR: Final = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}
NO_FAVICON: Final = "data:,"
"""FastAPI's default favicon is on a public host; the pages need none."""


def readable_operation_id(route: APIRoute) -> str:
    """`place_order` -> `placeOrder`: the handler's name in camelCase."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str | None = "/redoc") -> None:
    """Serve the Swagger UI page at `docs_url`, ReDoc at `redoc_url`, and their assets under
    `{docs_url}/assets/`, all from this process (not part of the OpenAPI document)."""
    assets_url = f"{docs_url}/assets"
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets_url}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets_url}/swagger-ui.css",
            swagger_favicon_url=NO_FAVICON,
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets_url}/redoc.standalone.js",
            redoc_favicon_url=NO_FAVICON,
            with_google_fonts=False,
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response(status_code=404)
        # The package's files change only with its pinned version: a day in the browser's cache is safe.
        headers = {"Cache-Control": "public, max-age=86400"}
        return FileResponse(ASSETS_DIR / name, media_type=ASSETS[name], headers=headers)

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    if redoc_url is not None:
        app.add_route(redoc_url, redoc, include_in_schema=False)
    app.add_route(f"{assets_url}/{{name}}", asset, include_in_schema=False)
