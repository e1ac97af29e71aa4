"""The services' HTTP APIs as the CLI calls them: one client per call, the operator's key, and a refusal
reported in one line (the API's error body) instead of a traceback."""

from typing import NoReturn

import httpx
import typer
from rich.console import Console

transport: httpx.AsyncBaseTransport | None = None
"""Tests put a transport here (a mock, or an app in process); None means the network."""

ORDER_SERVICE_URL = "http://127.0.0.1:8000"
FULFILMENT_SERVICE_URL = "http://127.0.0.1:8003"


def client(url: str, key: str | None, err: Console) -> httpx.AsyncClient:
    """A client of the service at `url` with the API key (exit 2 without one)."""
    if not key:
        err.print("[red]an API key is needed: set OMS_API_KEY or pass --api-key[/red]")
        raise typer.Exit(2)
    return httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30.0, transport=transport)


def fail(response: httpx.Response, err: Console) -> NoReturn:
    """Reports the API's refusal (`HTTP 403 forbidden: ...`) and exits 1."""
    try:
        body = response.json()
        message = f"{body.get('error', '')}: {body.get('message', '')}"
        fields = [f"{f['field']}: {f['message']}" for f in body.get("fields") or [] if isinstance(f, dict)]
        if fields:
            message += " (" + "; ".join(fields) + ")"
    except (ValueError, AttributeError, KeyError):
        message = response.text[:300]
    err.print(f"[red]HTTP {response.status_code} {message}[/red]")
    raise typer.Exit(1)
