"""The benchmark's arithmetic and its /proc reading (deploy/local/benchkit): the figures in
docs/benchmarks.md are only as right as these."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from benchkit import procfs
from benchkit.kafka_io import messages_per_topic
from benchkit.report import ProcessRow, messages_table
from benchkit.stats import per_order, percentile, rate, summarize

# A real line of a process whose name holds a space and parentheses (field 2 is up to 16 characters).
STAT = (
    "4242 (tricky (name) x) S 4000 4242 4000 0 -1 4194560 1983 0 0 0 "
    "731 112 55 9 20 0 3 0 123456 456789012 12345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"
)

STATUS = """Name:\tpython
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  512000 kB
VmSize:\t  500000 kB
VmHWM:\t  123456 kB
VmRSS:\t   98765 kB
Threads:\t3
"""


def test_stat_fields_are_read_after_the_last_parenthesis() -> None:
    stat = procfs.parse_stat(STAT)
    assert (stat.pid, stat.comm, stat.ppid) == (4242, "tricky (name) x", 4000)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (731, 112, 55, 9)
    assert stat.ticks == 731 + 112 + 55 + 9


@pytest.mark.parametrize("line", ["", "4242 tricky S 1", "4242 (x) S 1 2 3"])
def test_a_line_that_is_not_a_stat_line_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="stat line"):
        procfs.parse_stat(line)


def test_status_gives_rss_and_its_peak_and_zero_for_a_kernel_thread() -> None:
    assert procfs.parse_status(STATUS) == procfs.Memory(rss_kib=98765, peak_kib=123456)
    assert procfs.parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n") == procfs.Memory(0, 0)


def _fake_proc(root: Path, processes: dict[int, tuple[int, int, int, int, int]]) -> Path:
    """pid -> (ppid, utime, stime, cutime, cstime) as a /proc directory."""
    for pid, (ppid, utime, stime, cutime, cstime) in processes.items():
        (root / str(pid)).mkdir()
        fields = ["S", str(ppid), *["0"] * 9, str(utime), str(stime), str(cutime), str(cstime), *["0"] * 30]
        (root / str(pid) / "stat").write_text(f"{pid} (p{pid}) {' '.join(fields)}\n")
    (root / "self").mkdir()  # not a pid: ignored
    return root


def test_a_tree_sums_its_live_processes_and_their_reaped_children(tmp_path: Path) -> None:
    # 10 is a postmaster with two live backends (one with a child of its own) and exited ones in cutime;
    # 30 is unrelated and 11's child 13 is counted once, under 11's tree.
    proc = _fake_proc(
        tmp_path,
        {
            10: (1, 5, 5, 300, 100),
            11: (10, 20, 10, 0, 0),
            12: (10, 7, 3, 0, 0),
            13: (11, 1, 1, 0, 0),
            30: (1, 999, 999, 0, 0),
        },
    )
    stats = procfs.all_stats(proc)
    assert sorted(procfs.tree(10, stats)) == [10, 11, 12, 13]
    assert procfs.tree_ticks(10, stats) == 410 + 30 + 10 + 2
    assert procfs.tree_ticks(99, stats) is None
    reading = procfs.read_cpu({"postgres": [10], "other": [30], "gone": [99, 30]}, proc)
    assert reading.ticks == {"postgres": 452, "other": 1998, "gone": 1998}
    assert reading.missing == {"gone"}


def test_cpu_ms_is_the_difference_in_milliseconds() -> None:
    before = procfs.CpuReading({"a": 100, "b": 0}, frozenset())
    after = procfs.CpuReading({"a": 150, "b": 10}, frozenset())
    per_s = procfs.CLOCK_TICKS_PER_S
    assert procfs.cpu_ms(before, after, ["a", "b"]) == {"a": 50 * 1000 / per_s, "b": 10 * 1000 / per_s}


def test_the_real_proc_counts_a_child_that_burned_cpu_and_exited() -> None:
    """What the PostgreSQL figure relies on: an exited, reaped child's CPU stays in its parent's tree."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    parent_code = (
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        before = procfs.tree_ticks(os.getpid(), procfs.all_stats())
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "done"
        stats = procfs.all_stats()
        own = stats[parent.pid]
        assert own.cutime + own.cstime >= 0.25 * procfs.CLOCK_TICKS_PER_S, own
        after = procfs.tree_ticks(os.getpid(), stats)
        assert before is not None
        assert after is not None
        assert after - before >= 0.25 * procfs.CLOCK_TICKS_PER_S
        memory = procfs.read_memory(parent.pid)
        assert memory is not None
        assert 0 < memory.rss_kib <= memory.peak_kib
    finally:
        parent.communicate("", timeout=10)
    assert procfs.read_stat(parent.pid) is None


def test_percentiles_are_nearest_rank_values_that_were_measured() -> None:
    values = [float(v) for v in range(1, 1001)]  # 1..1000
    assert percentile(values, 0.5) == 500
    assert percentile(values, 0.95) == 950
    assert percentile(values, 0.99) == 990
    assert percentile(values, 1.0) == 1000
    assert percentile(list(reversed(values)), 0.99) == 990
    assert percentile([7.0], 0.99) == 7
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.51) == 3
    summary = summarize([5.0, 1.0, 3.0, 100.0])
    assert (summary.count, summary.p50, summary.p99, summary.max) == (4, 3, 100, 100)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 0)


def test_rates_and_per_order_figures() -> None:
    assert rate(300, 2.0) == 150
    assert rate(0, 2.0) == 0
    assert rate(5, 0.0) == 0
    assert per_order(260.0, 4) == 65
    with pytest.raises(ValueError, match="no orders"):
        per_order(1.0, 0)


def test_messages_per_topic_sums_the_partitions_growth_and_counts_new_partitions_from_zero() -> None:
    before = {TopicPartition("oms.a", 0): 10, TopicPartition("oms.a", 1): 5, TopicPartition("oms.b", 0): 7}
    after = {
        TopicPartition("oms.a", 0): 15,
        TopicPartition("oms.a", 1): 5,
        TopicPartition("oms.b", 0): 9,
        TopicPartition("oms.b", 1): 4,  # added while running
    }
    assert messages_per_topic(before, after) == {"oms.a": 5, "oms.b": 6}


def test_the_message_table_divides_by_orders_and_totals() -> None:
    text = messages_table({"oms.a": 40, "oms.b": 0, "oms.c": 60}, 20)
    lines = text.splitlines()
    assert lines[0].split("|")[1:4] == [" topic ", " messages ", " per order "]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["oms.a", "oms.c", "total"]
    assert lines[-1].split("|")[2:4] == ["      100 ", "      5.00 "]


def test_cpu_above_idle_takes_off_the_idle_rate_over_the_window() -> None:
    # 10 orders in 2 s; 50 ms of CPU per order, of which 5% of a core idle = 100 ms over 2 s = 10 per order.
    row = ProcessRow("svc", 1, 50.0, 25.0, 5.0, [])
    assert row.above_idle(2000, 10) == pytest.approx(40.0)
    assert ProcessRow("svc", 1, 5.0, 25.0, 50.0, []).above_idle(2000, 10) == 0
    assert ProcessRow("svc", 1, 5.0, 25.0, None, []).above_idle(2000, 10) is None
