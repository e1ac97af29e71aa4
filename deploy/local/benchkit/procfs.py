"""CPU time and memory of processes, read from /proc: what the benchmark divides by the orders it placed.

`utime` and `stime` are a process's own CPU; `cutime` and `cstime` hold the CPU of its children that
exited and were reaped. Summing all four over a live process tree therefore counts every process of the
tree once, also those that came and went between two readings (PostgreSQL backends of a pool that
reconnected): a child's CPU moves from its own entry into its parent's `cutime` when it is reaped.
"""

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the benchmark uses (CPU in clock ticks)."""

    pid: int
    comm: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def ticks(self) -> int:
        """Own CPU plus that of the reaped children."""
        return self.utime + self.stime + self.cutime + self.cstime


@dataclass(frozen=True)
class Memory:
    """Resident set size now and its peak (VmRSS, VmHWM), in KiB."""

    rss_kib: int
    peak_kib: int


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name sits in parentheses and may itself hold spaces and
    parentheses, so the fields after it start at the last ')'."""
    head, closing, tail = text.rpartition(")")
    pid_text, opening, comm = head.partition(" (")
    if not closing or not opening:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    fields = tail.split()
    # proc(5) numbers the fields from 1: field n (n >= 3, the state) is fields[n - 3].
    if len(fields) < 15:
        raise ValueError(f"a /proc/<pid>/stat line with {len(fields) + 2} fields, expected at least 17")
    return ProcStat(
        pid=int(pid_text),
        comm=comm,
        ppid=int(fields[4 - 3]),
        utime=int(fields[14 - 3]),
        stime=int(fields[15 - 3]),
        cutime=int(fields[16 - 3]),
        cstime=int(fields[17 - 3]),
    )


def parse_status(text: str) -> Memory:
    """VmRSS and VmHWM of /proc/<pid>/status (absent for kernel threads and zombies: 0)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            number, _, unit = value.strip().partition(" ")
            if unit.strip() != "kB":
                raise ValueError(f"{key} in unexpected unit: {line!r}")
            values[key] = int(number)
    return Memory(rss_kib=values.get("VmRSS", 0), peak_kib=values.get("VmHWM", 0))


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """None when the process is gone."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def read_memory(pid: int, proc: Path = PROC) -> Memory | None:
    try:
        return parse_status((proc / str(pid) / "status").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process's stat, read once (a process that exits while being read is left out)."""
    found: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                found[stat.pid] = stat
    return found


def tree(root: int, stats: Mapping[int, ProcStat]) -> list[int]:
    """The root and all its live descendants (empty when the root is gone)."""
    if root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_ticks(root: int, stats: Mapping[int, ProcStat]) -> int | None:
    """CPU ticks of a process tree so far (see the module's docstring); None when the root is gone."""
    pids = tree(root, stats)
    return sum(stats[p].ticks for p in pids) if pids else None


@dataclass(frozen=True)
class CpuReading:
    """Ticks per named group of process trees, and the groups one of whose roots was gone."""

    ticks: dict[str, int]
    missing: frozenset[str]


def read_cpu(groups: Mapping[str, Sequence[int]], proc: Path = PROC) -> CpuReading:
    stats = all_stats(proc)
    ticks: dict[str, int] = {}
    missing: set[str] = set()
    for name, roots in groups.items():
        total = 0
        for root in roots:
            value = tree_ticks(root, stats)
            if value is None:
                missing.add(name)
            else:
                total += value
        ticks[name] = total
    return CpuReading(ticks, frozenset(missing))


def cpu_ms(before: CpuReading, after: CpuReading, names: Iterable[str]) -> dict[str, float]:
    """Milliseconds of CPU per group between two readings."""
    return {n: (after.ticks.get(n, 0) - before.ticks.get(n, 0)) * 1000 / CLOCK_TICKS_PER_S for n in names}
