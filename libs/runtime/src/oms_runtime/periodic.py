"""A background loop a service runs beside its consumers: a sweeper, a dispatcher, anything that polls.

One round of `job` now, then one every `interval_s` until the service stops. A round that fails is
logged and the loop goes on: the next round is the retry, so one bad round (the database restarting,
a provider timing out) never ends the loop for the life of the process. Stopping cancels the task,
so shutdown does not wait for the rest of an interval or a round in flight; each round commits its
work in transactions of its own, so a cancelled round leaves nothing half done. A loop that must not
be cut off in a round (the outbox relay: a batch sent but not yet marked published would be sent
again) stops with `drain=True` instead: it finishes rounds until one finds nothing to do.

Start and stop it with the service: `host.on_start(task.start)` and `host.on_stop(task.stop)`.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from oms_runtime.logging import get_logger
from oms_runtime.outages import is_outage, reason

log = get_logger(__name__)


class PeriodicTask:
    """Runs `job` every `interval_s` in a background task, from `start` until `stop`.

    - `again_while_busy`: a round whose job returns a truthy value (e.g. how many rows it handled,
      when it handles a batch at most) is followed at once by the next, without waiting.
    - `wake()` ends the wait early (e.g. new work was committed); `settle_s` is a short pause after
      every wait, so work whose wake came just before its commit has landed when the round reads it.
    - `failure_pause_s`: an extra pause after a failed round, so a loop that is woken often does not
      spin on a dependency that is down.
    """

    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        *,
        interval_s: float,
        again_while_busy: bool = False,
        settle_s: float = 0.0,
        failure_pause_s: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self._job = job
        self._interval_s = interval_s
        self._again_while_busy = again_while_busy
        self._settle_s = settle_s
        self._failure_pause_s = failure_pause_s
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Run the next round now rather than at the end of the interval."""
        self._wake.set()

    async def start(self) -> None:
        if self.running:
            return
        self._draining = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, *, drain: bool = False) -> None:
        """Cancels the loop; with `drain`, lets it run rounds until one is idle (or fails), then end."""
        if self._task is None:
            return
        if drain:
            self._draining = True
            self._wake.set()
        else:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            busy = False
            try:
                busy = bool(await self._job()) and self._again_while_busy
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_outage(exc):
                    log.warning(
                        "background round failed: a dependency is unavailable; will retry",
                        task=self.name,
                        reason=reason(exc),
                    )
                else:
                    log.exception("background round failed; will retry", task=self.name)
                if self._failure_pause_s:
                    await self._sleep(self._failure_pause_s)
            if busy:
                continue
            if self._draining:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
            self._wake.clear()
            if self._settle_s:
                await self._sleep(self._settle_s)
