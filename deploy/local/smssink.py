"""A local SMS provider for `make run`: speaks the provider API notification-service uses and keeps every
message as a .json file. Never sends a real text message.

    uv run python deploy/local/smssink.py --dir .local/sms --port 1026

Prints one line per message with the masked number and the text.
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


def main(directory: Path, host: str, port: int) -> None:
    provider = LocalSmsProvider(host, port, spool=directory, on_message=announce).start()
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
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    args.dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        main(args.dir, args.host, args.port)
