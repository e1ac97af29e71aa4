"""A local SMTP sink for `make run`: accepts every message and keeps it as an .eml file.

    uv run python deploy/local/mailsink.py --dir .local/mail --port 1025

Prints one line per message with the masked recipient and the subject. Never relays anything.

It reads nothing of a message but its Subject header: parsing each email with `email.policy.default`
(every header into objects, the MIME structure walked) was most of the sink's CPU, and `make bench`
counts the sink's CPU with the system's. The Subject is found in the header block and decoded (RFC 2047
encoded words, folded lines) with the stdlib's `email.header`.
"""

import argparse
import asyncio
import contextlib
import itertools
import re
import signal
import sys
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from oms_runtime.logging import mask_email

# The Subject field of a header block: its first line and any folded (indented) lines after it.
_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def subject_of(content: bytes) -> str:
    """The message's Subject, decoded (encoded words joined, folding undone); `(no subject)` without one."""
    end = _HEADER_END.search(content)
    found = _SUBJECT.search(content, 0, end.start() if end else len(content))
    if found is None:
        return "(no subject)"
    raw = re.sub(rb"\r?\n(?=[ \t])", b"", found.group(1)).strip().decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, ValueError, LookupError):  # a malformed encoded word: show it as it came
        return raw


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
        # A few KiB to a local file: written at once (a worker thread per message cost more than the write).
        path.write_bytes(content)
        recipients = ", ".join(mask_email(r) for r in envelope.rcpt_tos)
        subject = subject_of(content)
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
