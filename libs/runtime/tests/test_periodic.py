"""The shared background loop: rounds at an interval, failures logged and retried, prompt stop, wake."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from oms_runtime.periodic import PeriodicTask

HOUR = 3600.0
GUARD_S = 5.0  # only a bound on a hang: every wait below ends long before it on a working loop


class Job:
    """Counts rounds; returns (or raises) what the test queued, then `default`."""

    def __init__(self, *results: object, default: object = 0) -> None:
        self.rounds = 0
        self._results = list(results)
        self._default = default
        self._reached: dict[int, asyncio.Event] = {}

    async def __call__(self) -> object:
        self.rounds += 1
        for n, event in self._reached.items():
            if self.rounds >= n:
                event.set()
        result = self._results.pop(0) if self._results else self._default
        if isinstance(result, Exception):
            raise result
        return result

    async def reach(self, n: int) -> None:
        event = self._reached.setdefault(n, asyncio.Event())
        if self.rounds >= n:
            event.set()
        await asyncio.wait_for(event.wait(), GUARD_S)


async def assert_rounds_stay(job: Job, rounds: int) -> None:
    """The loop had every chance to run again (many turns of the event loop) and did not."""
    await job.reach(rounds)
    for _ in range(20):
        await asyncio.sleep(0)
    assert job.rounds == rounds


def recording_sleep(pauses: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    return sleep


async def test_runs_a_round_at_start_and_then_one_every_interval() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=0.01)
    await task.start()
    try:
        await job.reach(3)
        assert task.running
    finally:
        await task.stop()
    assert not task.running


async def test_waits_the_interval_between_rounds() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    try:
        await assert_rounds_stay(job, 1)
    finally:
        await task.stop()


async def test_a_failed_round_is_logged_and_the_loop_goes_on() -> None:
    job = Job(RuntimeError("database restarting"), RuntimeError("still restarting"))
    task = PeriodicTask("sweeper", job, interval_s=0.01)
    with structlog.testing.capture_logs() as logs:
        await task.start()
        try:
            await job.reach(3)
        finally:
            await task.stop()
    failures = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(failures) == 2
    assert all(entry["task"] == "sweeper" for entry in failures)


async def test_a_failed_round_pauses_before_the_next_when_asked() -> None:
    pauses: list[float] = []
    job = Job(RuntimeError("provider down"))
    task = PeriodicTask("test", job, interval_s=0.01, failure_pause_s=1.5, sleep=recording_sleep(pauses))
    await task.start()
    try:
        await job.reach(2)
    finally:
        await task.stop()
    assert pauses[0] == 1.5
    assert pauses.count(1.5) == 1


async def test_stop_does_not_wait_for_the_rest_of_the_interval() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    await job.reach(1)
    await asyncio.wait_for(task.stop(), GUARD_S)
    assert not task.running


async def test_stop_cancels_a_round_in_flight() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = PeriodicTask("test", stuck, interval_s=HOUR)
    await task.start()
    await asyncio.wait_for(started.wait(), GUARD_S)
    await asyncio.wait_for(task.stop(), GUARD_S)
    assert cancelled.is_set()


async def test_stop_before_start_and_twice_is_harmless() -> None:
    task = PeriodicTask("test", Job(), interval_s=HOUR)
    await task.stop()
    await task.start()
    await task.stop()
    await task.stop()
    assert not task.running


async def test_start_twice_runs_one_loop() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    await task.start()
    try:
        await assert_rounds_stay(job, 1)
    finally:
        await task.stop()


async def test_wake_runs_the_next_round_without_waiting_for_the_interval() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    try:
        await job.reach(1)
        task.wake()
        await job.reach(2)
    finally:
        await task.stop()


async def test_a_busy_round_is_followed_at_once_only_when_asked() -> None:
    busy = Job(5, 3, default=0)
    task = PeriodicTask("test", busy, interval_s=HOUR, again_while_busy=True)
    await task.start()
    try:
        await assert_rounds_stay(busy, 3)  # two busy rounds, then the idle one that waits the hour
    finally:
        await task.stop()

    plain = Job(5, 3, default=0)
    task = PeriodicTask("test", plain, interval_s=HOUR)
    await task.start()
    try:
        await assert_rounds_stay(plain, 1)
    finally:
        await task.stop()


async def test_settles_after_every_wait() -> None:
    pauses: list[float] = []
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR, settle_s=0.02, sleep=recording_sleep(pauses))
    await task.start()
    try:
        await job.reach(1)
        assert pauses == []
        task.wake()
        await job.reach(2)
        assert pauses == [0.02]
    finally:
        await task.stop()


async def test_a_draining_stop_finishes_the_round_in_flight_and_the_busy_ones_after_it() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    rounds: list[str] = []

    async def batch() -> int:
        rounds.append("started")
        if len(rounds) == 1:
            entered.set()
            await release.wait()
            rounds[-1] = "finished"
            return 5  # busy: there may be more
        rounds[-1] = "finished"
        return 3 if len(rounds) == 2 else 0

    task = PeriodicTask("test", batch, interval_s=HOUR, again_while_busy=True)
    await task.start()
    await asyncio.wait_for(entered.wait(), GUARD_S)
    stopping = asyncio.create_task(task.stop(drain=True))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()  # not cut off in the middle of a round
    release.set()
    await asyncio.wait_for(stopping, GUARD_S)
    assert rounds == ["finished", "finished", "finished"]  # busy, busy, then idle: done
    assert not task.running


async def test_a_draining_stop_does_not_wait_out_the_interval() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    await job.reach(1)
    await asyncio.wait_for(task.stop(drain=True), GUARD_S)
    assert job.rounds == 2  # woken for one last round, which found nothing
    assert not task.running


async def test_a_draining_stop_ends_on_a_failed_round() -> None:
    job = Job(0, RuntimeError("broker gone"), default=1)
    task = PeriodicTask("test", job, interval_s=HOUR, again_while_busy=True)
    await task.start()
    await job.reach(1)
    await asyncio.wait_for(task.stop(drain=True), GUARD_S)
    assert job.rounds == 2


async def test_a_loop_drained_once_starts_again() -> None:
    job = Job()
    task = PeriodicTask("test", job, interval_s=HOUR)
    await task.start()
    await job.reach(1)
    await task.stop(drain=True)
    await task.start()
    try:
        await assert_rounds_stay(job, 3)  # the restart's first round, and it keeps waiting
    finally:
        await task.stop()


async def test_a_round_failed_by_a_dependency_outage_is_a_warning_with_its_reason() -> None:
    job = Job(ConnectionRefusedError(111, "Connect call failed"), ConnectionRefusedError(111, "Connect call failed"))
    task = PeriodicTask("sweeper", job, interval_s=0.01)
    with structlog.testing.capture_logs() as logs:
        await task.start()
        try:
            await job.reach(3)
        finally:
            await task.stop()
    assert [entry for entry in logs if entry["log_level"] == "error"] == []
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 2
    assert all("Connect call failed" in entry["reason"] and "exc_info" not in entry for entry in warnings)
