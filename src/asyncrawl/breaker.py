"""The circuit breaker: tells a passing failure from an upstream that has stopped answering.

Two signals end a run rather than an item:

- **Refused or reset connections.** OpenDART blocks an IP that sends too fast, and the block
  shows up as refused or reset connections, not as an answer. ``reset_burst`` such errors in a
  row (no success between) answer :attr:`BreakerAction.PAUSE`: every worker pauses for
  ``reset_pause`` seconds (the engine calls ``RateLimiter.cooldown``) instead of retrying
  harder. A burst after ``reset_pauses_before_fatal`` pauses, still without a success, answers
  :attr:`BreakerAction.FATAL`: the IP is likely blocked.
- **"Slow down" that never ends.** Each cooldown is an *episode*; a SlowDown for a request sent
  before the current episode began belongs to it, so sixteen workers hitting the limit at once
  count once. ``slowdowns_before_fatal`` episodes in a row without a success answer FATAL: the
  quota is probably gone for the day.
- **Answers nobody can use.** ``unusable_streak`` :class:`~asyncrawl.outcomes.Unusable`
  answers in a row, with no usable answer between, answer FATAL: when every answer is HTML
  where JSON was expected, or a 404 from a wrong base URL, retrying each item only spends quota.

Errors and successes of requests sent before the current pause or episode began say nothing
about the upstream *now*, so when the engine passes ``sent_at`` (the loop time the request was
sent) they are not counted. Time is the running loop's clock.
"""

from __future__ import annotations

import asyncio
import enum
import math
from dataclasses import dataclass

from asyncrawl.errors import ConfigError

__all__ = ["BreakerAction", "BreakerConfig", "BreakerVerdict", "CircuitBreaker"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """When the breaker pauses the run and when it gives up.

    The defaults: 5 resets in a row are more than a flaky connection (the retry policy absorbs
    one or two) yet few enough to stop before a block gets longer; a 30 s pause lets a
    short-lived block or overload pass; 3 pauses (about 1.5 minutes of trying) before calling it
    a block; 3 "slow down" episodes in a row mean the quota is gone, not a momentary limit.
    """

    #: Connection errors in a row (no success between) that make the run pause.
    reset_burst: int = 5
    #: Seconds every worker pauses after such a burst.
    reset_pause: float = 30.0
    #: Pauses without a success after which the next burst is fatal.
    reset_pauses_before_fatal: int = 3
    #: "Slow down" episodes in a row (no success between) that are fatal.
    slowdowns_before_fatal: int = 3
    #: Unusable answers in a row (no usable answer between) that stop the run.
    unusable_streak: int = 10

    def __post_init__(self) -> None:
        for name in (
            "reset_burst",
            "reset_pauses_before_fatal",
            "slowdowns_before_fatal",
            "unusable_streak",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"must be a whole number >= 1, got {value!r}")
        pause = self.reset_pause
        if not (isinstance(pause, int | float) and math.isfinite(pause) and pause >= 0):
            raise ConfigError("reset_pause", f"must be a number of seconds >= 0, got {pause!r}")


class BreakerAction(enum.Enum):
    """What the engine should do after a recorded event."""

    #: Carry on (the item itself may still be retried).
    NONE = "none"
    #: Every worker pauses for :attr:`BreakerVerdict.pause` seconds.
    PAUSE = "pause"
    #: End the run: the upstream refuses it.
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class BreakerVerdict:
    """The breaker's answer: an action, why, and for a pause how long."""

    action: BreakerAction
    reason: str = ""
    pause: float = 0.0


_CARRY_ON = BreakerVerdict(BreakerAction.NONE)
_BLOCKED = "connections refused or reset repeatedly: the upstream may have blocked this IP"
_QUOTA = "the upstream kept answering 'slow down': quota exhausted?"


class CircuitBreaker:
    """Counts connection errors and "slow down" episodes between successes."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config if config is not None else BreakerConfig()
        self._errors = 0
        self._pauses = 0
        self._paused_at = -math.inf
        self._episodes = 0
        self._episode_at = -math.inf
        self._unusable = 0

    @property
    def connection_errors(self) -> int:
        """Connection errors counted since the last success or pause."""
        return self._errors

    @property
    def pauses(self) -> int:
        """Pauses ordered since the last success."""
        return self._pauses

    @property
    def unusable_answers(self) -> int:
        """Unusable answers in a row since the last usable one."""
        return self._unusable

    @property
    def slowdown_episodes(self) -> int:
        """Episodes of "slow down" since the last success."""
        return self._episodes

    def record_success(self, sent_at: float | None = None) -> None:
        """An answer arrived: the upstream is reachable and not limiting, so start over.

        A success for a request sent before the current pause or episode began is older news
        than the signal and does not reset the counts. Any usable answer ends an unusable streak.
        """
        self._unusable = 0
        if sent_at is not None and sent_at < max(self._paused_at, self._episode_at):
            return
        self._errors = 0
        self._pauses = 0
        self._episodes = 0

    def record_connection_error(self, sent_at: float | None = None) -> BreakerVerdict:
        """A connection was refused or reset (or closed before an answer)."""
        if sent_at is not None and sent_at < self._paused_at:
            return _CARRY_ON
        self._errors += 1
        if self._errors < self.config.reset_burst:
            return _CARRY_ON
        self._errors = 0
        self._pauses += 1
        if self._pauses > self.config.reset_pauses_before_fatal:
            return BreakerVerdict(BreakerAction.FATAL, _BLOCKED)
        self._paused_at = asyncio.get_running_loop().time()
        reason = (
            f"{self.config.reset_burst} connections refused or reset in a row: "
            f"pausing {self.config.reset_pause:g} s (possible IP block)"
        )
        return BreakerVerdict(BreakerAction.PAUSE, reason, self.config.reset_pause)

    def record_slowdown(self, sent_at: float) -> BreakerVerdict:
        """The upstream said "slow down" to a request sent at loop time ``sent_at``.

        Returns FATAL when this starts episode number ``slowdowns_before_fatal`` with no
        success in between; otherwise NONE (the engine cools down as the outcome says).
        """
        if sent_at < self._episode_at:
            return _CARRY_ON
        self._episode_at = asyncio.get_running_loop().time()
        self._episodes += 1
        if self._episodes >= self.config.slowdowns_before_fatal:
            return BreakerVerdict(BreakerAction.FATAL, _QUOTA)
        return _CARRY_ON

    def record_unusable(self, reason: str) -> BreakerVerdict:
        """An answer arrived that the Source cannot use (``reason`` says why).

        Returns FATAL on the ``unusable_streak``-th in a row, naming the last one.
        """
        self._unusable += 1
        if self._unusable < self.config.unusable_streak:
            return _CARRY_ON
        return BreakerVerdict(
            BreakerAction.FATAL,
            f"{self._unusable} unusable answers in a row, the last: {reason} "
            "(wrong base URL, or the upstream changed its format?)",
        )
