"""A webhook receiver for tests and local runs: a real HTTP server on 127.0.0.1 that keeps every request it
gets (headers and raw body) and answers with the status a test sets (200 by default, or a failure for a
while). It verifies nothing itself: tests check the signatures with a Standard Webhooks library."""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LocalWebhookReceiver:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[ReceivedRequest] = []
        self.answers: list[int] = []
        """The status each request (same index) was answered with."""
        self._lock = threading.Lock()
        self._answer: Callable[[ReceivedRequest], int] = lambda _: 200
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = ReceivedRequest(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with receiver._lock:
                    receiver.requests.append(request)
                    code = receiver._answer(request)
                    receiver.answers.append(code)
                body = b'{"ok": true}' if 200 <= code < 300 else b'{"error": "receiver failing"}'
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer_with(self, answer: Callable[[ReceivedRequest], int]) -> None:
        """How to answer from now on (a function of the request: e.g. 500 for a while)."""
        with self._lock:
            self._answer = answer

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[ReceivedRequest]:
        """The requests answered with a 2xx, in the order they came."""
        with self._lock:
            return [r for r, code in zip(self.requests, self.answers, strict=True) if 200 <= code < 300]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
