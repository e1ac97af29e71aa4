"""A local SMTP sink for `make run`: accepts every message and keeps it as an .eml file.

    uv run python deploy/local/mailsink.py --dir .local/mail --port 1025

Prints one line per message with the masked recipient and the subject. Never relays anything.
"""

import argparse
import asyncio
import contextlib
import email
import email.policy
import itertools
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from oms_runtime.logging import mask_email


class MaildirSink:
    """aiosmtpd handler: one .eml file per accepted message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        now = datetime.now(UTC)
        stem = f"{now:%Y%m%dT%H%M%S%f}-{next(self._counter):04d}"
        content: bytes = envelope.original_content or envelope.content
        path = self.directory / f"{stem}.eml"
        await asyncio.to_thread(path.write_bytes, content)
        message = email.message_from_bytes(content, policy=email.policy.default)
        recipients = ", ".join(mask_email(r) for r in envelope.rcpt_tos)
        subject = str(message.get("Subject", "(no subject)"))
        print(f"{now:%H:%M:%S} mail to {recipients}: {subject!r} -> {path}", flush=True)
        return f"250 OK queued as {stem}"


async def main(directory: Path, host: str, port: int) -> None:
    # decode_data=False keeps the raw bytes; the sink writes exactly what it was given.
    controller = Controller(MaildirSink(directory), hostname=host, port=port, decode_data=False)
    controller.start()
    print(f"mailsink listening on {host}:{port}, writing to {directory}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        controller.stop()
        print("mailsink stopped", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(".local/mail"), help="where to write .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    args.dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.dir, args.host, args.port))
