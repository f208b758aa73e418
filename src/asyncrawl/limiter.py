"""A multi-window sliding-log rate limiter with a shared cooldown.

Every :class:`Rate` says "at most ``limit`` sends in any window of ``period`` seconds", and all
windows hold at once (OpenDART: 900 a minute *and* 18,000 a day). The limit is a window, not a
pace: while every window has room, :meth:`RateLimiter.acquire` returns at once, so 240 requests
under ``1000/1m`` all start at time zero instead of being spread over the minute.

The limiter keeps a log of its sends (loop time and weight). A send occupies a slot of a window
for ``period + guard`` seconds. The upstream counts requests when they *arrive*, not when they
were sent, and the arrival can be anywhere between the send and its answer: a loaded machine
may hold a request in its event loop or socket buffer for a second, then let it go together
with the next window's first sends. So the engine takes *holds*: :meth:`RateLimiter.hold`
admits a send like :meth:`RateLimiter.acquire`, but the slot stays taken while the request is
in flight, and its ``period + guard`` starts when :meth:`Hold.release` says the answer came
back (or the attempt gave up). Every request the upstream counted in any window of ``period``
seconds was then either in flight or in the log when the last of them was admitted, so the
window holds at the upstream whatever the delays. The cost is one response time per slot per
window (0.2 s in a minute for OpenDART). ``acquire`` and ``try_acquire`` record the send at
admission, for callers that cannot say when it ended; their guard absorbs ordinary network
delay. The default guard of each window is ``max(0.05, 1% of its period)`` seconds (0.6 s for a
minute, 864 s for a day); pass ``guard`` to use one value for every window.

:meth:`RateLimiter.cooldown` pauses every waiter until a point in time (the upstream said "slow
down", or a burst of refused connections looks like an IP block). With ``adaptive=True`` the
start of each cooldown also halves every window's effective limit (never below 1); it then
recovers by a tenth of the configured limit per window period without a new cooldown.

:meth:`RateLimiter.export_state` turns the recent sends into a small JSON-able mapping (at most a
few kilobytes even for 18,000 sends in a day), so the next process (the next Lambda invocation)
resumes the same windows with :meth:`RateLimiter.import_state`. Loop clocks differ between
processes, so the state is anchored to the wall clock. It is conservative: ages are rounded
down, so no exported send is ever treated as earlier than it really was.

Time is read only from the running loop (``loop.time()``) and waits are ``loop.call_at``
timers, so tests run on virtual time (``looptime``) and never sleep.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asyncrawl.errors import ConfigError, ContinuationError

__all__ = ["DEFAULT_RATES", "STATE_VERSION", "Hold", "Rate", "RateLimiter"]

#: The version written by :meth:`RateLimiter.export_state` and accepted by ``import_state``.
STATE_VERSION = 1

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
# Exported ages are quantised to 1/_QUANTA of a window's span: at most _QUANTA runs per tier
# keeps the state a few kilobytes whatever the number of sends, at a cost of 0.2% of a span.
_QUANTA = 500
# Recovery of an adaptive limit: this fraction of the configured limit per window period.
_RECOVERY = 0.1


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` sends in any window of ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError("rate.limit", f"must be a whole number >= 1, got {self.limit!r}")
        if not (isinstance(self.period, int | float) and math.isfinite(self.period)):
            raise ConfigError("rate.period", f"must be a number of seconds, got {self.period!r}")
        if self.period <= 0:
            raise ConfigError("rate.period", f"must be > 0 seconds, got {self.period!r}")
        object.__setattr__(self, "period", float(self.period))

    @classmethod
    def of(cls, limit: int, period: float | timedelta) -> Rate:
        """A rate whose period is given in seconds or as a ``timedelta``."""
        seconds = period.total_seconds() if isinstance(period, timedelta) else period
        return cls(limit, seconds)

    @classmethod
    def parse(cls, spec: str, *, field: str = "rate") -> Rate:
        """Read ``N/DURATION`` such as ``900/1m``, ``18000/1d``, ``10/6s`` or ``5/60``.

        DURATION is a number with an optional unit ``s``, ``m``, ``h`` or ``d`` (no unit means
        seconds). Errors raise :class:`~asyncrawl.errors.ConfigError` naming ``field``.
        """
        match = _SPEC.match(spec) if isinstance(spec, str) else None
        if match is None:
            raise ConfigError(field, f"{spec!r} is not N/DURATION such as 900/1m or 18000/1d")
        limit, amount, unit = match.groups()
        seconds = float(amount) * _UNITS[unit or "s"]
        if int(limit) < 1 or seconds <= 0:
            raise ConfigError(field, f"{spec!r}: N and DURATION must be > 0, e.g. 900/1m")
        return cls(int(limit), seconds)

    def __str__(self) -> str:
        for unit in ("d", "h", "m"):
            count = self.period / _UNITS[unit]
            if count == int(count):
                return f"{self.limit}/{int(count)}{unit}"
        seconds = int(self.period) if self.period == int(self.period) else self.period
        return f"{self.limit}/{seconds}s"


#: OpenDART's thresholds less 10%: 900 a minute and 18,000 a day.
DEFAULT_RATES = (Rate(900, 60), Rate(18000, 86400))


class _Window:
    """The send log of one rate: (loop time, weight), oldest first."""

    __slots__ = ("guard", "rate", "sends", "span", "total")

    def __init__(self, rate: Rate, guard: float) -> None:
        self.rate = rate
        self.guard = guard
        #: How long one send occupies a slot.
        self.span = rate.period + guard
        self.sends: deque[tuple[float, int]] = deque()
        self.total = 0

    def prune(self, now: float) -> None:
        sends = self.sends
        while sends and sends[0][0] + self.span <= now:
            self.total -= sends.popleft()[1]

    def ready_at(self, limit: int, weight: int, held: int, now: float) -> float:
        """The earliest time ``weight`` more fits under ``limit`` (``-inf`` now, ``inf`` never).

        ``held`` sends are in flight: a slot they hold frees no sooner than ``span`` after
        their release, so when the log alone cannot make room the answer is that lower bound.
        """
        excess = self.total + held + weight - limit
        if excess <= 0:
            return -math.inf
        if weight > limit:
            return math.inf
        if excess > self.total:
            return now + self.span
        freed = 0
        for sent, size in self.sends:
            freed += size
            if freed >= excess:
                return sent + self.span
        # Unreachable while weight <= limit (the whole log frees at least the excess).
        return math.inf

    def record(self, at: float, weight: int) -> None:
        self.sends.append((at, weight))
        self.total += weight


class Hold:
    """A send admitted by :meth:`RateLimiter.hold`: its slots are taken until :meth:`release`.

    Release it once the answer has come back or the attempt gave up (in a ``finally``); a
    second release does nothing. A hold never released keeps its slots for good.
    """

    __slots__ = ("_limiter", "weight")

    def __init__(self, limiter: RateLimiter, weight: int) -> None:
        self._limiter: RateLimiter | None = limiter
        self.weight = weight

    def release(self) -> None:
        """The request is over: its slots expire one window span from now."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self.weight, sent=True)

    def cancel(self) -> None:
        """Nothing was sent after all: the slots are free at once."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self.weight, sent=False)


class _Waiter:
    __slots__ = ("wakeup",)

    def __init__(self) -> None:
        self.wakeup: asyncio.Future[bool] | None = None


def _resolve(future: asyncio.Future[bool], by_timer: bool) -> None:
    if not future.done():
        future.set_result(by_timer)


class RateLimiter:
    """Admit sends so that every window holds, waiting only when one is full.

    Waiters are served first come, first served. A cancelled ``acquire`` records nothing and
    lets the next waiter go. One limiter belongs to one event loop.
    """

    def __init__(
        self,
        rates: Sequence[Rate] = DEFAULT_RATES,
        *,
        guard: float | None = None,
        adaptive: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not rates:
            raise ConfigError("rates", "give at least one rate such as 900/1m")
        if guard is not None and not (math.isfinite(guard) and guard >= 0):
            raise ConfigError("guard", f"must be a number of seconds >= 0, got {guard!r}")
        self.rates = tuple(rates)
        self.adaptive = adaptive
        self._wall_clock = wall_clock
        self._windows = [
            _Window(rate, max(0.05, rate.period / 100) if guard is None else guard)
            for rate in self.rates
        ]
        self._waiters: deque[_Waiter] = deque()
        # Weight admitted by hold() and not yet released: it counts in every window.
        self._held = 0
        # Weights already checked against every window (the check runs once per weight).
        self._valid_weights: set[int] = set()
        self._cooling_until = -math.inf
        # The limiter's clock never runs behind a timer that has fired: a loop may fire a timer
        # a clock tick early, and re-checking at that tick would spin without time moving.
        self._floor = -math.inf
        # Adaptive state: when the last cut happened and each window's limit right after it.
        self._cut_at = -math.inf
        self._cut_limits = [rate.limit for rate in self.rates]

    # -- introspection ---------------------------------------------------------------------

    def _now(self) -> float:
        return max(asyncio.get_running_loop().time(), self._floor)

    @property
    def cooling_until(self) -> float | None:
        """Loop time the active cooldown ends, or ``None`` when none is active."""
        now = self._now()
        return self._cooling_until if self._cooling_until > now else None

    @property
    def in_cooldown(self) -> bool:
        """Whether a cooldown is active now."""
        return self.cooling_until is not None

    def sent_in_window(self, period: float) -> int:
        """Weight sent within the last ``period + guard`` seconds of the window for ``period``."""
        now = self._now()
        for window in self._windows:
            if window.rate.period == period:
                window.prune(now)
                return window.total + self._held
        raise ConfigError("period", f"no window of {period!r} s; windows: {self._describe()}")

    def effective_limits(self) -> tuple[int, ...]:
        """Each window's limit now (below the configured one after an adaptive cut)."""
        now = self._now()
        return tuple(self._limit(index, now) for index in range(len(self._windows)))

    def _describe(self) -> str:
        return ", ".join(str(rate) for rate in self.rates)

    # -- admission -------------------------------------------------------------------------

    async def acquire(self, weight: int = 1, *, before: float | None = None) -> bool:
        """Wait until every window has room for ``weight`` and no cooldown is active; record it.

        Returns ``True`` once admitted. With ``before`` (a loop time, the caller's deadline),
        returns ``False`` without recording anything as soon as admission is known to come later
        than ``before``, and never waits past it.
        """
        return await self._admit(weight, before, held=False)

    async def hold(self, weight: int = 1, *, before: float | None = None) -> Hold | None:
        """Like :meth:`acquire`, but the slots stay taken until the returned hold is released.

        ``None`` where ``acquire`` would return ``False``. Use it when the caller can say when
        the request ended: the window then holds at the upstream, whatever the network delay.
        """
        if await self._admit(weight, before, held=True):
            return Hold(self, weight)
        return None

    def try_hold(self, weight: int = 1) -> Hold | None:
        """Like :meth:`try_acquire`, as a :class:`Hold` (``None``: no room now, never waits)."""
        if self._try_admit(weight, held=True):
            return Hold(self, weight)
        return None

    async def _admit(self, weight: int, before: float | None, *, held: bool) -> bool:
        self._check_weight(weight)
        loop = asyncio.get_running_loop()
        now = self._now()
        # Ignores waiters ahead, so it is a lower bound: enough to refuse a hopeless deadline.
        at = self._admission_time(weight, now)
        if not self._waiters and at <= now:
            self._take(now, weight, held)
            return True
        if before is not None and self._no_sooner_than(weight, now, at) > before:
            return False
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            while True:
                now = self._now()
                if self._waiters[0] is waiter:
                    at = self._admission_time(weight, now)
                    if at <= now:
                        self._take(now, weight, held)
                        return True
                    wake_at: float | None = at
                    if before is not None:
                        if now >= before or self._no_sooner_than(weight, now, at) > before:
                            return False
                        wake_at = min(at, before)
                elif before is not None and now >= before:
                    return False
                else:
                    wake_at = before
                if await self._park(loop, waiter, wake_at) and wake_at is not None:
                    self._floor = max(self._floor, wake_at)
        finally:
            self._waiters.remove(waiter)
            self._wake_head()

    def try_acquire(self, weight: int = 1) -> bool:
        """Record a send now if every window has room and nobody is waiting; never waits.

        The fast path: most sends find room, and this spares them a coroutine.
        """
        return self._try_admit(weight, held=False)

    def _try_admit(self, weight: int, *, held: bool) -> bool:
        self._check_weight(weight)
        now = self._now()
        if self._waiters or now < self._cooling_until:
            return False
        if self.adaptive:
            admitted = self._admission_time(weight, now) <= now
        else:
            # Fixed limits: a send fits now when it fits in every window now.
            admitted = True
            taken = self._held + weight
            for window in self._windows:
                window.prune(now)
                if window.total + taken > window.rate.limit:
                    admitted = False
        if admitted:
            self._take(now, weight, held)
        return admitted

    def _check_weight(self, weight: int) -> None:
        if weight in self._valid_weights:
            return
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ConfigError("weight", f"must be a whole number >= 1, got {weight!r}")
        too_small = [str(rate) for rate in self.rates if rate.limit < weight]
        if too_small:
            raise ConfigError("weight", f"{weight} exceeds the limit of {', '.join(too_small)}")
        self._valid_weights.add(weight)

    async def _park(
        self, loop: asyncio.AbstractEventLoop, waiter: _Waiter, wake_at: float | None
    ) -> bool:
        """Sleep until ``wake_at`` or until someone wakes this waiter; ``True`` for the timer."""
        future: asyncio.Future[bool] = loop.create_future()
        waiter.wakeup = future
        timer = None if wake_at is None else loop.call_at(wake_at, _resolve, future, True)
        try:
            return await future
        finally:
            waiter.wakeup = None
            if timer is not None:
                timer.cancel()

    def _wake_head(self) -> None:
        """Let the first waiter re-check: it moved up, or the state it waits on changed."""
        if self._waiters:
            wakeup = self._waiters[0].wakeup
            if wakeup is not None:
                _resolve(wakeup, False)

    def _no_sooner_than(self, weight: int, now: float, at: float) -> float:
        """A firm lower bound of the admission time ``at``: with sends held, one may yet be
        cancelled (nothing sent), which frees its slot at once, so the bound is the time as if
        none were held."""
        return self._admission_time(weight, now, held=0) if self._held else at

    def _admission_time(self, weight: int, now: float, *, held: int | None = None) -> float:
        """The earliest loop time >= ``now`` at which ``weight`` may be sent (``inf``: never).

        When room needs a held send to be released, this is a lower bound (nobody can date the
        release): the waiter re-checks at it, or sooner when a hold is released.
        """
        for window in self._windows:
            window.prune(now)
        at = max(now, self._cooling_until)
        held = self._held if held is None else held
        # An adaptive limit grows in steps, so a send that does not fit yet may fit after the
        # next step even before any old send expires: advance to whichever comes first.
        while True:
            ready = -math.inf
            step = math.inf
            for index, window in enumerate(self._windows):
                ready = max(ready, window.ready_at(self._limit(index, at), weight, held, now))
                step = min(step, self._next_step(index, at))
            if ready <= at:
                return at
            if math.isinf(ready) and math.isinf(step):
                return math.inf
            at = max(at, min(ready, step))

    def _take(self, now: float, weight: int, held: bool) -> None:
        if held:
            self._held += weight
        else:
            self._record(now, weight)

    def _record(self, now: float, weight: int) -> None:
        for window in self._windows:
            window.record(now, weight)

    def _release(self, weight: int, *, sent: bool) -> None:
        """A held send ended: its slots move to the log at the current time (or are freed)."""
        self._held -= weight
        if sent:
            self._record(self._now(), weight)
        self._wake_head()

    # -- cooldown and adaptive limits ------------------------------------------------------

    def cooldown(self, seconds: float) -> None:
        """Pause every sender until ``seconds`` from now; an active cooldown is only extended.

        With ``adaptive=True``, a cooldown that starts while none is active (a new episode, not
        sixteen workers reporting the same signal) halves every window's effective limit.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ConfigError("seconds", f"must be a number of seconds >= 0, got {seconds!r}")
        now = self._now()
        if self.adaptive and self._cooling_until <= now:
            self._cut_limits = [
                max(1, self._limit(index, now) // 2) for index in range(len(self._windows))
            ]
            self._cut_at = now
        self._cooling_until = max(self._cooling_until, now + seconds)
        self._wake_head()

    def _limit(self, index: int, at: float) -> int:
        configured = self.rates[index].limit
        if not self.adaptive or self._cut_limits[index] >= configured:
            return configured
        steps = math.floor((at - self._cut_at) / self.rates[index].period)
        return min(configured, self._cut_limits[index] + steps * self._recovery(index))

    def _next_step(self, index: int, at: float) -> float:
        """When the adaptive limit of a window next grows (``inf``: it is not cut)."""
        if self._limit(index, at) >= self.rates[index].limit:
            return math.inf
        period = self.rates[index].period
        return self._cut_at + (math.floor((at - self._cut_at) / period) + 1) * period

    def _recovery(self, index: int) -> int:
        return max(1, math.ceil(self.rates[index].limit * _RECOVERY))

    # -- state across processes ------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Recent sends and the active cooldown as a compact JSON-able mapping.

        Shape (version 1; all times integer milliseconds)::

            {"v": 1, "at": <wall clock at export, rounded up>, "cooldown": <ms left>,
             "tiers": [{"from": <age>, "q": <quantum>, "runs": [d0, n0, d1, n1, ...]}]}

        Each tier covers ages from ``from`` up to the next window's span; ages are rounded down
        to a multiple of ``q`` (a 500th of the span) and run-length coded: ``d`` is the step in
        quanta from the previous run, ``n`` the weight sent in that quantum. Rounding ``at`` up
        and ages down places every send at or after its real time, so windows only get stricter.
        Sends still held (in flight) are exported as sent at the moment of export.
        """
        loop_now = self._now()
        at_ms = math.ceil(self._wall_clock() * 1000)
        log = self._longest_log(loop_now)
        spans = sorted({math.floor(window.span * 1000) for window in self._windows})
        tiers: list[dict[str, Any]] = []
        start = 0
        for end in spans:
            quantum = max(1, end // _QUANTA)
            runs: list[int] = []
            previous = 0
            # The last tier has no upper bound: a send rounding to the span's last millisecond
            # has not expired yet and must not be dropped.
            last = end == spans[-1]
            for sent, weight in log:
                age = math.floor((loop_now - sent) * 1000)
                if age < start or (age >= end and not last):
                    continue
                unit = (age - start) // quantum
                if runs and unit == previous:
                    runs[-1] += weight
                else:
                    runs += [unit - previous, weight]
                    previous = unit
            tiers.append({"from": start, "q": quantum, "runs": runs})
            start = end
        cooldown_ms = math.ceil(max(0.0, self._cooling_until - loop_now) * 1000)
        return {"v": STATE_VERSION, "at": at_ms, "cooldown": cooldown_ms, "tiers": tiers}

    def _longest_log(self, now: float) -> list[tuple[float, int]]:
        """Every unexpired send, newest first (the window with the longest span holds them)."""
        longest = max(self._windows, key=lambda window: window.span)
        longest.prune(now)
        # A send still in flight is exported as sent now: the next process cannot release it.
        in_flight = [(now, self._held)] if self._held else []
        return [*in_flight, *reversed(longest.sends)]

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Restore sends and the cooldown exported by another process's :meth:`export_state`.

        Raises :class:`~asyncrawl.errors.ContinuationError` when ``state`` is not such a mapping.
        Sends already in this limiter are kept; the imported ones are merged in.
        """
        at_ms, cooldown_ms, sends_ms = _parse_state(state)
        loop_now = self._now()
        # A wall clock that went backwards would make old sends look newer: harmless, so only
        # a negative elapsed time is clamped.
        elapsed = max(0.0, self._wall_clock() - at_ms / 1000)
        imported = sorted((loop_now - elapsed - age / 1000, weight) for age, weight in sends_ms)
        for window in self._windows:
            merged = sorted([*window.sends, *imported])
            window.sends = deque(merged)
            window.total = sum(weight for _, weight in merged)
            window.prune(loop_now)
        self._cooling_until = max(self._cooling_until, loop_now - elapsed + cooldown_ms / 1000)
        self._wake_head()


def _parse_state(state: Mapping[str, Any]) -> tuple[int, int, list[tuple[int, int]]]:
    """Validate an exported state: (at, cooldown, [(age, weight), ...]) in milliseconds."""

    def whole(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ContinuationError(f"rate limiter state: {what} must be an integer >= 0")
        return value

    if not isinstance(state, Mapping):
        raise ContinuationError("rate limiter state: expected a mapping")
    if state.get("v") != STATE_VERSION:
        raise ContinuationError(
            f"rate limiter state: unknown version {state.get('v')!r}, expected {STATE_VERSION}"
        )
    at = whole(state.get("at"), "'at'")
    cooldown = whole(state.get("cooldown"), "'cooldown'")
    tiers = state.get("tiers")
    if not isinstance(tiers, list):
        raise ContinuationError("rate limiter state: 'tiers' must be a list")
    sends: list[tuple[int, int]] = []
    for tier in tiers:
        if not isinstance(tier, Mapping):
            raise ContinuationError("rate limiter state: each tier must be a mapping")
        start = whole(tier.get("from"), "a tier's 'from'")
        quantum = whole(tier.get("q"), "a tier's 'q'")
        runs = tier.get("runs")
        if not isinstance(runs, list) or len(runs) % 2:
            raise ContinuationError("rate limiter state: a tier's 'runs' must be pairs of ints")
        unit = 0
        for step, weight in zip(runs[::2], runs[1::2], strict=True):
            unit += whole(step, "a run's step")
            sends.append((start + unit * quantum, whole(weight, "a run's weight")))
    return at, cooldown, sends
