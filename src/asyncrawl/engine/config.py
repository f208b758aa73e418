"""How a run crawls: :class:`CrawlConfig`, validated once, durations converted once.

Every duration accepts seconds or a ``timedelta`` and is stored as float seconds after
validation; the engine reads the ``*_s`` properties, typed as floats, and converts nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, cast

from ..breaker import BreakerConfig
from ..errors import ConfigError
from ..limiter import DEFAULT_RATES, Rate
from ..retry import RetryPolicy

__all__ = ["MAX_CONCURRENCY", "CrawlConfig"]

#: The most items in flight one run may have: above it a run only spends memory and sockets.
MAX_CONCURRENCY = 1000


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _positive_seconds(value: float | timedelta, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigError(name, f"must be a number of seconds or a timedelta, got {value!r}")
    seconds = _seconds(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(name, f"must be a positive, finite number of seconds, got {value!r}")
    return seconds


def _whole(value: object, name: str, *, low: int, high: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"must be a whole number from {low} to {high}, got {value!r}{fix}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlConfig:
    """How a run crawls. Durations accept seconds or ``timedelta``.

    Defaults suit OpenDART: 16 workers, 900 per minute and 18,000 per day (10% under its
    thresholds), 30 s per attempt, 5 attempts with capped, jittered exponential back-off.
    """

    #: Items in flight at once, over all hosts.
    concurrency: int = 16
    #: Items in flight at once per host (default: ``concurrency``).
    per_host: int | None = None
    #: Rate windows that all hold at once ("at most N in any window of W").
    rates: tuple[Rate, ...] = DEFAULT_RATES
    #: Rate windows each host gets on its own, besides ``rates`` (a site crawl's politeness:
    #: e.g. ``(Rate(1, 1.0),)`` for one request per second per host). Empty: none.
    per_host_rates: tuple[Rate, ...] = ()
    #: Halve the windows' limits on each "slow down" signal and recover slowly (see limiter).
    adaptive_rate: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    #: Seconds one HTTP attempt may take, body included.
    attempt_timeout: float | timedelta = 30.0
    #: Time budget for the run, from its start; ``None`` for no limit.
    deadline: float | timedelta | None = None
    #: Seconds attempts in flight at the deadline (or a fatal stop) may still finish in.
    grace: float | timedelta = 2.0
    #: Send a second copy of an idempotent request after this many seconds without an answer;
    #: ``"auto"``: after the ``hedge_quantile`` of the latencies seen so far (at least
    #: ``hedge_floor``). Hedges pass the rate limiter, go only when a window has room now, and
    #: are capped by ``hedge_max_fraction``.
    hedge_after: float | timedelta | Literal["auto"] | None = None
    #: Hedges are at most this fraction of the requests sent so far (they spend quota).
    hedge_max_fraction: float = 0.02
    #: With ``hedge_after="auto"``: the latency quantile after which a copy is sent.
    hedge_quantile: float = 0.95
    #: With ``hedge_after="auto"``: never hedge sooner than this many seconds.
    hedge_floor: float | timedelta = 0.05
    #: Pause when the upstream says "slow down" without saying for how long.
    slowdown_pause: float | timedelta = 60.0
    #: Finished results held for a slow consumer before workers wait (default 2x concurrency).
    buffer: int | None = None
    #: Seed for back-off jitter (reproducible runs and tests); ``None`` for fresh randomness.
    seed: int | None = None
    #: Deepest discovered item crawled (seeds are depth 0, their follow-ups 1, ...); deeper
    #: ones are counted ``skipped``. ``None``: no limit.
    max_depth: int | None = None
    #: Most items crawled in the run, seeds and discovered; the rest are counted ``skipped``
    #: (an endless input is not read past it). ``None``: no limit.
    max_items: int | None = None

    def __post_init__(self) -> None:
        _whole(
            self.concurrency,
            "concurrency",
            low=1,
            high=MAX_CONCURRENCY,
            fix="; more items in flight than that only spends memory and sockets: lower it, "
            "and raise the rate windows instead if the upstream allows more",
        )
        if self.per_host is not None:
            _whole(
                self.per_host,
                "per_host",
                low=1,
                high=MAX_CONCURRENCY,
                fix=", or None for no per-host limit",
            )
        if not self.rates or not all(isinstance(rate, Rate) for rate in self.rates):
            raise ConfigError("rates", "give at least one window, e.g. (Rate(900, 60),)")
        if not isinstance(self.per_host_rates, tuple) or not all(
            isinstance(rate, Rate) for rate in self.per_host_rates
        ):
            raise ConfigError(
                "per_host_rates", "give a tuple of windows, e.g. (Rate(1, 1.0),), or () for none"
            )
        if self.buffer is not None:
            _whole(self.buffer, "buffer", low=1, high=100_000, fix="")
        if self.max_depth is not None:
            _whole(self.max_depth, "max_depth", low=0, high=10**6, fix=", or None for no limit")
        if self.max_items is not None:
            _whole(self.max_items, "max_items", low=0, high=10**12, fix=", or None for no limit")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ConfigError("seed", f"must be a whole number or None, got {self.seed!r}")
        # Normalise durations to float seconds (frozen: set through object.__setattr__).
        for name in ("attempt_timeout", "grace", "slowdown_pause", "hedge_floor"):
            object.__setattr__(self, name, _positive_seconds(getattr(self, name), name))
        for name in ("hedge_max_fraction", "hedge_quantile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(name, f"must be a fraction from 0 to 1, got {value!r}")
        for name in ("deadline", "hedge_after"):
            if name == "hedge_after" and self.hedge_after == "auto":
                continue
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _positive_seconds(getattr(self, name), name))

    # -- durations in seconds (converted once, in __post_init__) ---------------------------

    @property
    def attempt_timeout_s(self) -> float:
        """Seconds one attempt may take."""
        return cast(float, self.attempt_timeout)

    @property
    def grace_s(self) -> float:
        """Seconds attempts in flight get after a stop."""
        return cast(float, self.grace)

    @property
    def deadline_s(self) -> float | None:
        """The run's time budget in seconds, or None."""
        return cast("float | None", self.deadline)

    @property
    def slowdown_pause_s(self) -> float:
        """Seconds everyone pauses on a "slow down" without a Retry-After."""
        return cast(float, self.slowdown_pause)

    @property
    def hedge_floor_s(self) -> float:
        """The shortest learned hedge delay, in seconds."""
        return cast(float, self.hedge_floor)

    @property
    def hedge_after_s(self) -> float | None:
        """The fixed hedge delay in seconds; None when hedging is off or learned."""
        return None if self.hedge_after in (None, "auto") else cast(float, self.hedge_after)
