"""Start-up steps that wait for their dependency instead of exiting.

A service started while the broker restarts or PostgreSQL recovers from a crash would, if its first
connection failed, exit; its supervisor would start it into the same outage again and again (a crash loop,
and `services.sh` or a Kubernetes back-off giving up). The host runs every step that needs the broker or the
database through `until_reachable`: retried with exponential back-off and jitter (tenacity), capped at
MAX_WAIT_S between attempts and never given up, each failed attempt a WARNING naming the step, the attempt
and the reason; the host's readiness says "starting: <step>" meanwhile and `/health/live` answers.

Only a programming error (PROGRAMMING_ERRORS) ends the start at once, with its traceback: no amount of
waiting fixes it. Everything else a step raises (refused or reset connections, timeouts, "the database
system is starting up", a coordinator not available, a topic without a leader yet) is a dependency that is
not there yet.
"""

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from oms_runtime.logging import get_logger

log = get_logger(__name__)

INITIAL_WAIT_S = 0.5
MAX_WAIT_S = 10.0
"""The longest wait between two attempts: a dependency back is noticed within about this long."""

PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    NameError,
    ImportError,
    AssertionError,
    KeyError,
    IndexError,
    NotImplementedError,
    SyntaxError,
)


def _waitable(exc: BaseException) -> bool:
    # Not a cancellation or an exit (BaseException): a SIGTERM during the wait stops the service.
    return isinstance(exc, Exception) and not isinstance(exc, PROGRAMMING_ERRORS)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]


async def until_reachable(
    step: str,
    attempt: Callable[[], Awaitable[None]],
    service: str,
    *,
    initial_wait_s: float = INITIAL_WAIT_S,
    max_wait_s: float = MAX_WAIT_S,
) -> int:
    """Runs `attempt` until it succeeds; returns how many attempts it took."""

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        log.warning(
            "start-up waits for a dependency",
            service=service,
            step=step,
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 2),
            reason=_reason(outcome.exception() if outcome is not None else None),
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(_waitable),
        wait=wait_exponential_jitter(multiplier=initial_wait_s, max=max_wait_s, jitter=initial_wait_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    async for try_ in retrying:
        with try_:
            attempts = try_.retry_state.attempt_number
            await attempt()
    if attempts > 1:
        log.info("start-up step done after waiting", service=service, step=step, attempts=attempts)
    return attempts
