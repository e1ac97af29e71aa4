"""ERROR lines and tracebacks in the services' logs, between two points of a run, counted by service,
logger and message: an operator reads a log for the line that matters, so an expected, handled condition
(a retried dependency, a duplicate, a dead-lettered poison record, a refused request) must be a WARNING or
INFO with its reason, and an ERROR must be worth waking someone for.

Two kinds of lines reach a service's log: our own (structlog, one JSON object a line: `level`, `logger`,
`message`, and `exception` holding a traceback) and the standard library's (`LEVEL logger message`, a
traceback on the lines after it).
"""

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\d+")
ERROR_LEVELS = frozenset({"error", "critical", "fatal", "exception"})


def _shape(message: str) -> str:
    """The message with its ids and numbers blanked, so that one kind of line counts as one."""
    return _VARIABLE.sub("#", message.strip())[:140]


@dataclass
class LogCounts:
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(service, logger, message shape) -> ERROR (or worse) lines."""
    tracebacks: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    lines: int = 0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def traceback_total(self) -> int:
        return sum(self.tracebacks.values())

    def table(self) -> str:
        if not self.errors and not self.tracebacks:
            return "  (none)"
        keys = sorted(set(self.errors) | set(self.tracebacks), key=lambda k: -(self.errors[k] + self.tracebacks[k]))
        rows = [f"  {'ERROR':>6} {'tb':>5}  service / logger / message"]
        rows += [f"  {self.errors[k]:>6} {self.tracebacks[k]:>5}  {k[0]} / {k[1]} / {k[2]}" for k in keys]
        return "\n".join(rows)


def sizes(log_dir: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in log_dir.glob("*.log")}


def count(log_dir: Path, since: dict[Path, int], until: dict[Path, int] | None = None) -> LogCounts:
    """Counts what each log gained between the two readings of `sizes` (until: to the end now)."""
    counts = LogCounts()
    for path in sorted(log_dir.glob("*.log")):
        service = path.stem.rsplit("-", 1)[0] if path.stem[-1].isdigit() else path.stem
        with path.open("rb") as f:
            f.seek(since.get(path, 0))
            end = (until or {}).get(path)
            data = f.read() if end is None else f.read(max(0, end - since.get(path, 0)))
        last: tuple[str, str, str] = (service, "-", "(traceback without a record)")
        for raw in data.decode("utf-8", "replace").splitlines():
            counts.lines += 1
            line = raw.strip()
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                key = (service, str(record.get("logger", "-")), _shape(str(record.get("message", ""))))
                if str(record.get("level", "")).lower() in ERROR_LEVELS:
                    counts.errors[key] += 1
                if record.get("exception"):
                    counts.tracebacks[key] += 1
                last = key
            elif line.startswith("Traceback (most recent call last)"):
                counts.tracebacks[last] += 1
            else:
                level, _, rest = line.partition(" ")
                if level in ("ERROR", "CRITICAL"):
                    logger, _, message = rest.partition(" ")
                    last = (service, logger, _shape(message))
                    counts.errors[last] += 1
                elif level in ("WARNING", "INFO", "DEBUG"):
                    logger, _, message = rest.partition(" ")
                    last = (service, logger, _shape(message))
    return counts
