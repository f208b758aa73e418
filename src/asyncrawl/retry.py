"""The retry policy, built on tenacity: which errors retry, how long to wait, when to stop.

Whether an error is worth another attempt is a property of its type
(:attr:`asyncrawl.errors.AsyncrawlError.retryable`): every :class:`~asyncrawl.errors.FetchError`
and :class:`RetryableOutcome` retries; anything else (a bad key, a config error, a bug) goes
straight to the caller. Between attempts the wait is the larger of the upstream's
``Retry-After`` and an exponential back-off with full jitter (:func:`backoff_delay`).

Retrying stops when the attempts are used up, or when the next wait would end past the caller's
deadline (a loop time: the wait is not started at all). Then the caller sees the real last
error, never :class:`tenacity.RetryError`.

:func:`retrying` returns a fresh :class:`tenacity.AsyncRetrying` for one item. Use it either
as a loop, which also gives the attempt number::

    async for attempt in retrying(policy, deadline=deadline):
        with attempt:
            number = attempt.retry_state.attempt_number  # 1, 2, ...
            result = await fetch_once(item)

or by calling it: ``result = await retrying(policy)(fetch_once, item)``. The ``on_retry`` hook
hears of each retry (the failed attempt's number, its error, the wait) for run accounting.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import tenacity

from asyncrawl.errors import AsyncrawlError, ConfigError
from asyncrawl.outcomes import SlowDown, Transient, Unusable

__all__ = [
    "OnRetry",
    "RetryPolicy",
    "RetryableOutcome",
    "backoff_delay",
    "is_retryable",
    "retrying",
]

#: Called before each wait: the failed attempt's number (1-based), its error, the wait.
OnRetry = Callable[[int, BaseException, float], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry one item.

    The n-th retry waits a uniformly random time between 0 and
    ``min(max_delay, base_delay * multiplier ** (n - 1))`` seconds ("full jitter", so workers
    that failed together do not come back together), or the upstream's ``Retry-After`` if
    that is longer.
    """

    #: Attempts in all, the first included.
    max_attempts: int = 5
    #: Cap of the first wait, in seconds.
    base_delay: float = 0.5
    #: No back-off wait is capped higher than this (a ``Retry-After`` may be longer).
    max_delay: float = 30.0
    #: Growth of the cap from one retry to the next.
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ConfigError(
                "max_attempts", f"must be a whole number >= 1, got {self.max_attempts!r}"
            )
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(name, f"must be a number of seconds >= 0, got {value!r}")
        if self.max_delay < self.base_delay:
            raise ConfigError(
                "max_delay", f"must be >= base_delay ({self.base_delay}), got {self.max_delay}"
            )
        if not (
            isinstance(self.multiplier, int | float)
            and math.isfinite(self.multiplier)
            and self.multiplier >= 1
        ):
            raise ConfigError("multiplier", f"must be a number >= 1, got {self.multiplier!r}")


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): exponential, full jitter."""
    if attempt < 1:
        raise ConfigError("attempt", f"must be >= 1, got {attempt}")
    try:
        grown = policy.base_delay * policy.multiplier ** (attempt - 1)
    except OverflowError:
        grown = math.inf if policy.base_delay > 0 else 0.0
    return rng.uniform(0, min(policy.max_delay, grown))


class RetryableOutcome(AsyncrawlError):
    """Raised inside an attempt when the Source's answer says "try again".

    Carries the :class:`~asyncrawl.outcomes.Transient`, :class:`~asyncrawl.outcomes.SlowDown`
    or :class:`~asyncrawl.outcomes.Unusable` outcome; its ``retry_after`` sets the shortest wait
    before the next attempt.
    """

    retryable = True

    def __init__(self, outcome: Transient | SlowDown | Unusable) -> None:
        self.outcome = outcome
        super().__init__(f"{outcome.status}: {outcome.reason}")

    @property
    def retry_after(self) -> float | None:
        """Seconds the upstream asked to wait, if it said."""
        return self.outcome.retry_after

    @property
    def status(self) -> str:
        """The outcome's short status for run accounting."""
        return self.outcome.status


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed, decided by the error's type."""
    return isinstance(error, AsyncrawlError) and type(error).retryable


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def retrying(
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] | None = None,
    on_retry: OnRetry | None = None,
) -> tenacity.AsyncRetrying:
    """A fresh retry controller for one item (it keeps per-call state: do not share it).

    ``deadline`` is a time on ``clock`` (by default the running loop's clock): no wait that
    would end past it is started. ``rng`` drives the jitter (seed it in tests); ``sleep`` and
    ``clock`` are injectable so tests need no real time.
    """
    # Jitter only spreads retries out; it needs no cryptographic randomness.
    jitter = rng if rng is not None else random.Random()  # noqa: S311
    now = clock if clock is not None else _loop_time

    def wait(state: tenacity.RetryCallState) -> float:
        error = _failure(state)
        delay = backoff_delay(policy, state.attempt_number, jitter)
        retry_after = error.retry_after if isinstance(error, RetryableOutcome) else None
        return delay if retry_after is None else max(delay, retry_after)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        # tenacity computes the wait before asking whether to stop.
        return deadline is not None and now() + state.upcoming_sleep > deadline

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.attempt_number, _failure(state), state.upcoming_sleep)

    return tenacity.AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def _failure(state: tenacity.RetryCallState) -> BaseException:
    """The error of the attempt that just failed (tenacity only waits or stops after one)."""
    outcome = state.outcome
    error = None if outcome is None else outcome.exception()
    if error is None:  # pragma: no cover - tenacity retries only failed attempts here
        raise RuntimeError("retry policy consulted without a failed attempt")
    return error
