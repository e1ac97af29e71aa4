"""A local SMS provider speaking the API `adapters/http_sms.py` uses: for tests and local runs only.

It is a real HTTP server (stdlib, its own thread) that keeps what arrives, answers an idempotency key it
has seen with the first message (`200`, nothing new sent), and can be told to fail: a number that is
unsubscribed, a number it cannot reach, or the next N requests answered with a given status. It can
report each message as delivered to the message's `status_callback`, as a provider does.
"""

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReceivedSms:
    id: str
    to: str
    sender: str
    body: str
    reference: str
    idempotency_key: str
    received_at: str
    status_callback: str = ""


@dataclass
class _Failure:
    status: int
    code: str
    times: int


@dataclass
class ProviderState:
    api_key: str | None = None
    messages: list[ReceivedSms] = field(default_factory=list)
    requests: int = 0
    unsubscribed: set[str] = field(default_factory=set)
    failures: list[_Failure] = field(default_factory=list)
    by_key: dict[str, ReceivedSms] = field(default_factory=dict)
    spool: Path | None = None
    on_message: Callable[[ReceivedSms], None] | None = None
    webhook_token: str | None = None
    auto_report_after_s: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))


def delivery_report(message: ReceivedSms, status: str, error_code: str | None = None) -> dict[str, Any]:
    """The body of the delivery report the provider posts to the message's `status_callback`."""
    return {"id": message.id, "status": status, "error_code": error_code}


def _post_report(state: ProviderState, message: ReceivedSms, status: str) -> None:
    """Posts a report, retrying a few times (a report can overtake the sender's own record of the send)."""
    headers = {"Content-Type": "application/json"}
    if state.webhook_token:
        headers["X-Webhook-Token"] = state.webhook_token
    raw = json.dumps(delivery_report(message, status)).encode()
    for attempt in range(5):
        request = urllib.request.Request(message.status_callback, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5 * (attempt + 1))


def _handler(state: ProviderState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `messages`
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, code: str, message: str) -> None:
            self._answer(status, {"error": {"code": code, "message": message}})

        def do_GET(self) -> None:
            if self.path == "/v1/messages":
                with state.lock:
                    listed = [m.__dict__ for m in state.messages]
                self._answer(200, {"messages": listed})
            else:
                self._error(404, "not_found", "no such resource")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with state.lock:
                state.requests += 1
                if self.path != "/v1/messages":
                    return self._error(404, "not_found", "no such resource")
                if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
                    return self._error(401, "unauthorized", "bad or missing API key")
                if state.failures:
                    failure = state.failures[0]
                    failure.times -= 1
                    if failure.times <= 0:
                        state.failures.pop(0)
                    return self._error(failure.status, failure.code, "failure injected by the test")
                try:
                    body = json.loads(raw)
                    to, text = str(body["to"]), str(body["body"])
                except (ValueError, KeyError, TypeError):
                    return self._error(400, "invalid_request", "JSON with `to` and `body` expected")
                key = self.headers.get("Idempotency-Key")
                if not key:
                    return self._error(400, "idempotency_key_required", "an Idempotency-Key header is required")
                if key in state.by_key:
                    first = state.by_key[key]
                    if (first.to, first.body) != (to, text):
                        return self._error(409, "idempotency_key_reused", "this key was used for another message")
                    return self._answer(200, {"id": first.id, "status": "queued", "replayed": True})
                if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
                    return self._error(400, "invalid_number", "not an E.164 number")
                if to in state.unsubscribed:
                    return self._error(422, "unsubscribed", "the recipient has opted out (STOP)")
                message = ReceivedSms(
                    # Unique across runs, as a provider's ids are (not a counter that restarts at 1).
                    id=f"SM{next(state.ids):04d}{uuid.uuid4().hex[:12]}",
                    to=to,
                    sender=str(body.get("from", "")),
                    body=text,
                    reference=str(body.get("reference", "")),
                    idempotency_key=key,
                    received_at=datetime.now(UTC).isoformat(),
                    status_callback=str(body.get("status_callback") or ""),
                )
                state.messages.append(message)
                state.by_key[key] = message
                if state.spool is not None:
                    (state.spool / f"{message.id}.json").write_text(json.dumps(message.__dict__, indent=2))
                if state.on_message is not None:
                    state.on_message(message)
                if state.auto_report_after_s is not None and message.status_callback:
                    timer = threading.Timer(state.auto_report_after_s, _post_report, (state, message, "delivered"))
                    timer.daemon = True
                    timer.start()
            return self._answer(201, {"id": message.id, "status": "queued"})

    return Handler


class LocalSmsProvider:
    """`with LocalSmsProvider() as sms: ... sms.url ... sms.messages`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        spool: Path | None = None,
        on_message: Callable[[ReceivedSms], None] | None = None,
        webhook_token: str | None = None,
        auto_report_after_s: float | None = None,
    ) -> None:
        """`auto_report_after_s`: report every message with a `status_callback` as delivered after that long."""
        self.state = ProviderState(
            api_key=api_key,
            spool=spool,
            on_message=on_message,
            webhook_token=webhook_token,
            auto_report_after_s=auto_report_after_s,
        )
        self._server = ThreadingHTTPServer((host, port), _handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sms-provider", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def messages(self) -> list[ReceivedSms]:
        with self.state.lock:
            return list(self.state.messages)

    @property
    def requests(self) -> int:
        with self.state.lock:
            return self.state.requests

    def unsubscribe(self, number: str) -> None:
        with self.state.lock:
            self.state.unsubscribed.add(number)

    def fail_next(self, status: int, code: str = "unavailable", times: int = 1) -> None:
        with self.state.lock:
            self.state.failures.append(_Failure(status, code, times))

    def start(self) -> "LocalSmsProvider":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalSmsProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
