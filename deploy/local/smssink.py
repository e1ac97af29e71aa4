"""A local SMS provider for `make run`: speaks the provider API notification-service uses and keeps every
message as a .json file. Never sends a real text message.

    uv run python deploy/local/smssink.py --dir .local/sms --port 1026 [--webhook-token T --report-after 1]

Prints one line per message with the masked number and the text. With --report-after, reports each
message that asked for it (`status_callback`) as delivered, that many seconds later, like a provider.
"""

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from notification_service.domain.notifications import mask_phone
from notification_service.testing import LocalSmsProvider, ReceivedSms


def announce(message: ReceivedSms) -> None:
    print(f"{message.received_at[11:19]} sms to {mask_phone(message.to)}: {message.body!r} -> {message.id}", flush=True)


def main(directory: Path, host: str, port: int, webhook_token: str | None, report_after: float | None) -> None:
    provider = LocalSmsProvider(
        host,
        port,
        spool=directory,
        on_message=announce,
        webhook_token=webhook_token,
        auto_report_after_s=report_after,
    ).start()
    print(f"smssink listening on {provider.url}, writing to {directory}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        provider.stop()
        print("smssink stopped", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(".local/sms"), help="where to write .json files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1026)
    parser.add_argument("--webhook-token", default=None, help="sent as X-Webhook-Token with delivery reports")
    parser.add_argument("--report-after", type=float, default=None, help="seconds until a delivery report")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    args.dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        main(args.dir, args.host, args.port, args.webhook_token, args.report_after)
