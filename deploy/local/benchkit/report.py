"""What a run prints: plain-text tables, one figure per cell, so a run can be pasted into
docs/benchmarks.md as it is."""

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchkit.procfs import Memory


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 1024 / 1024:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


@dataclass(frozen=True)
class ProcessRow:
    name: str
    processes: int
    cpu_ms_per_order: float
    cpu_percent: float
    idle_percent: float | None
    memory: Sequence[Memory]

    def above_idle(self, window_ms: float, orders: int) -> float | None:
        """An estimate: CPU ms per order less what the process burns idle over the same window. Matters
        when the run is slow (a busy machine, a small run): idle loops then add up to much per order."""
        if self.idle_percent is None:
            return None
        return max(0.0, self.cpu_ms_per_order - self.idle_percent / 100 * window_ms / orders)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def process_table(
    rows: Sequence[ProcessRow], total: ProcessRow, client: ProcessRow, window_ms: float, orders: int
) -> str:
    def cells(row: ProcessRow) -> list[str]:
        peak = max((m.peak_kib for m in row.memory), default=0)
        rss = sum(m.rss_kib for m in row.memory)
        above = row.above_idle(window_ms, orders)
        return [
            row.name,
            str(row.processes) if row.processes else "",
            f"{row.cpu_ms_per_order:,.1f}",
            "" if above is None else f"{above:,.1f}",
            f"{row.cpu_percent:,.0f}",
            "" if row.idle_percent is None else f"{row.idle_percent:,.1f}",
            _mib(peak) if row.memory else "",
            _mib(rss) if row.memory else "",
        ]

    ordered = sorted(rows, key=lambda r: -r.cpu_ms_per_order)
    return table(
        [
            "process",
            "procs",
            "CPU ms per order",
            "above idle (est.)",
            "% of a core (run)",
            "% of a core (idle)",
            "peak RSS MiB (max)",
            "RSS MiB now (sum)",
        ],
        [*(cells(r) for r in ordered), cells(total), cells(client)],
    )


def messages_table(per_topic: Mapping[str, int], orders: int) -> str:
    rows = [[topic, f"{count:,}", f"{count / orders:.2f}"] for topic, count in sorted(per_topic.items()) if count]
    total = sum(per_topic.values())
    return table(["topic", "messages", "per order"], [*rows, ["total", f"{total:,}", f"{total / orders:.2f}"]])
