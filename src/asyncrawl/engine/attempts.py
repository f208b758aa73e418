"""Attempts: one item from its request to its final outcome.

For one item: admit (stopping? cooldown? rate windows) -> fetch one HTTP attempt (per-attempt
timeout, a per-host slot, optionally a hedge) -> the Source classifies the answer -> decide:
finished (ok / no data / failed), retry after a back-off, everyone pauses, or the whole run
stops. Retries follow the :class:`~asyncrawl.retry.RetryPolicy` (on tenacity); the circuit
breaker turns bursts of resets, endless "slow down" and streaks of unusable answers into pauses
or a fatal stop.

Idempotency. A request is sent twice only when that is safe: hedges are sent only for
idempotent requests (``Request.idempotent``, else by method), and a non-idempotent request
that may have reached the upstream (a timeout, a reset) is not retried: the item fails saying
so. A refused connection proves nothing was sent, so that is retried whatever the method.

Hedging is bounded: a hedge goes only when the rate windows have room now (it never waits,
never breaks a window), only while hedges are under ``hedge_max_fraction`` of the requests,
never waits for a per-host slot, and is counted apart (``RunSummary.hedges``). With
``hedge_after="auto"`` its delay is a high quantile of the latencies seen so far.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from typing import Generic, TypeVar

from ..breaker import BreakerAction, BreakerVerdict, CircuitBreaker
from ..errors import FetchError
from ..http import Fetcher, Request, Response
from ..limiter import Hold, Rate, RateLimiter
from ..outcomes import Failed, Fatal, FinalOutcome, NoData, Ok, SlowDown, Transient, Unusable
from ..redact import redact_text
from ..results import ItemResult
from ..retry import RetryableOutcome, is_retryable, retrying
from ..source import HostRates, Source
from .config import CrawlConfig
from .ledger import FOLD_EVERY, Ledger
from .lifecycle import RUNNING, Lifecycle

__all__ = ["Attempts"]

T = TypeVar("T")

log = logging.getLogger("asyncrawl.engine")

#: Connection-level failures that may mean the upstream blocked this IP.
_BLOCK_SIGNS = frozenset({"connection_reset", "connection_refused"})
#: Methods that may be sent twice with the effect of once (RFC 9110, section 9.2.2).
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
#: Failures that prove the request never left: safe to retry whatever the method.
_NOT_SENT = frozenset({"connection_refused"})
#: Answers between two recomputations of a learned hedge delay (a quantile walks the
#: histogram), and the answers needed before the first hedge.
_RELEARN_EVERY = 32


class _OutOfTime(Exception):
    """The deadline came before this item could finish: it stays remaining."""


class _Stopped(Exception):
    """The run was stopped: this item stays remaining."""


class _MaybeSent(Exception):
    """A non-idempotent request failed after it may have been sent: never retried."""

    def __init__(self, error: FetchError) -> None:
        super().__init__(str(error))
        self.error = error


def is_idempotent(request: Request) -> bool:
    """Whether ``request`` may be sent twice: as the Source says, else by its method."""
    said: bool | None = request.idempotent
    if said is None:
        return request.method.upper() in _IDEMPOTENT_METHODS
    return said


class Attempts(Generic[T]):
    """Runs items' attempts for one crawl: limiter, breaker, hedges, host slots, the fetcher."""

    def __init__(
        self,
        source: Source[T],
        *,
        fetcher: Fetcher,
        config: CrawlConfig,
        limiter: RateLimiter,
        ledger: Ledger[T],
        life: Lifecycle,
    ) -> None:
        self._source = source
        self._fetcher = fetcher
        self._config = config
        self._policy = config.retry
        self._limiter = limiter
        self._ledger = ledger
        self._life = life
        # Bound once: read on every attempt.
        self._in_flight = life.in_flight
        self._count_status = ledger.count_status
        self._samples = ledger.samples
        self._breaker = CircuitBreaker(config.breaker)
        self._rng = random.Random(config.seed)  # noqa: S311 - jitter, not cryptography
        # Read on every attempt, so worked out once (durations are already seconds).
        self._attempt_timeout = config.attempt_timeout_s
        self._grace = config.grace_s
        self._slowdown_pause = config.slowdown_pause_s
        self._hedging = config.hedge_after is not None
        self._hedge_learned = config.hedge_after == "auto"
        self._hedge_after = config.hedge_after_s or config.hedge_floor_s
        self._hedge_learned_at = 0  # answers seen when the learned delay was last worked out
        self._hedge_share = config.hedge_max_fraction
        # Each item holds one of `concurrency` workers and sends one attempt at a time, so
        # without a per_host limit a per-host semaphore could never make anyone wait: skip its
        # cost then. (Hedges are capped apart and never wait for a slot.)
        self._host_limited = config.per_host is not None
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        # Rate windows per host, besides the global ones: the config's for every host, and the
        # Source's own for some (robots.txt Crawl-delay). A limiter per host, made on first use
        # (None: that host has no windows).
        self._host_rates = config.per_host_rates
        self._rates_of_host = source.host_rates if isinstance(source, HostRates) else None
        self._host_windows = bool(self._host_rates) or self._rates_of_host is not None
        self._host_limiters: dict[str, RateLimiter | None] = {}

    async def crawl_item(self, key: str, item: T) -> ItemResult[T] | None:
        """The item's final result, or None when it must stay remaining."""
        try:
            request = self._source.request(item)
        except Exception as error:  # a Source bug fails this item, not the run
            return self._result(item, key, _source_failure(error), attempts=0)
        attempts = 1
        policy = self._policy
        try:
            # The first attempt runs outside tenacity: most items succeed at once, and setting
            # up a tenacity controller costs more than the rest of the engine's work per item.
            # A retryable failure is then replayed as the controller's first attempt, so its
            # decisions (wait, stop, the error raised) are exactly those of a controller that
            # ran the attempt itself.
            try:
                outcome = await self._attempt(item, request, retry=False)
            except Exception as error:
                if not is_retryable(error):
                    raise
                first_failure: Exception | None = error
            else:
                return self._result(item, key, outcome, attempts)
            controller = retrying(
                policy, deadline=self._life.deadline_at, rng=self._rng, sleep=self._wait
            )
            async for attempt in controller:
                with attempt:
                    if first_failure is not None:
                        replayed, first_failure = first_failure, None
                        raise replayed
                    attempts += 1
                    outcome = await self._attempt(item, request, retry=True)
        except (_OutOfTime, _Stopped):
            return None
        except _MaybeSent as unsafe:
            failed = Failed(
                reason=redact_text(
                    f"{request.method} not retried: it may have reached the upstream "
                    f"({unsafe.error}); set Request.idempotent=True if sending it twice is safe"
                ),
                status=unsafe.error.status,
            )
            return self._result(item, key, failed, attempts)
        except RetryableOutcome as error:
            if attempts < policy.max_attempts or self._life.stopping:
                return None  # stopped by the deadline, not by running out of attempts
            last = error.outcome
            return self._result(item, key, Failed(reason=last.reason, status=last.status), attempts)
        except FetchError as error:
            # A retryable error before the last attempt was cut short by a stop: the item stays
            # remaining. A non-retryable one (a body over the cap, say) fails the item at once.
            out_of_attempts = attempts >= policy.max_attempts or not is_retryable(error)
            if self._life.stopping or not out_of_attempts:
                return None
            failed = Failed(reason=redact_text(str(error)), status=error.status)
            return self._result(item, key, failed, attempts)
        return self._result(item, key, outcome, attempts)

    async def _hold(self, limiter: RateLimiter, weight: int) -> Hold:
        """A slot of every window of ``limiter``, held until the attempt ends."""
        hold = limiter.try_hold(weight)
        if hold is not None:
            return hold
        # Waiting for the limiter counts as in flight: a stop must not wait for a cooldown.
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            hold = await limiter.hold(weight, before=self._life.deadline_at)
        finally:
            if task is not None:
                self._in_flight.discard(task)
        if hold is None:
            raise _OutOfTime
        if self._life.stopping:
            hold.cancel()
            raise _Stopped
        return hold

    async def _wait(self, seconds: float) -> None:
        """A back-off wait that a stop cuts short (the item then stays remaining)."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    def _result(self, item: T, key: str, outcome: FinalOutcome, attempts: int) -> ItemResult[T]:
        return ItemResult(
            item=item, key=key, outcome=outcome, attempts=attempts, finished_at=time.time()
        )

    async def _attempt(self, item: T, request: Request, *, retry: bool) -> FinalOutcome:
        if self._life.state is not RUNNING:
            raise _Stopped
        # The slots are held while the request is in flight and their window starts when it
        # ends: the upstream counts arrivals, which a loaded loop or network may delay.
        host_hold: Hold | None = None
        host_limiter = self._host_limiter(request) if self._host_windows else None
        if host_limiter is not None:
            # The host's own windows first: waiting for them holds no global slot.
            host_hold = await self._hold(host_limiter, request.weight)
        try:
            hold = await self._hold(self._limiter, request.weight)
        except BaseException:
            if host_hold is not None:
                host_hold.cancel()  # nothing was sent
            raise
        try:
            return await self._send(item, request, retry=retry)
        finally:
            hold.release()
            if host_hold is not None:
                host_hold.release()

    async def _send(self, item: T, request: Request, *, retry: bool) -> FinalOutcome:
        sent_at = asyncio.get_running_loop().time()
        # Counted once the request is admitted: an attempt cut by a stop sent nothing.
        ledger = self._ledger
        ledger.requests += 1
        if retry:
            ledger.retries += 1
        try:
            if self._hedging and is_idempotent(request):
                response = await self._hedged(request, self._hedge_delay())
            else:
                response = await self._fetch(request)
        except FetchError as error:
            self._count_status(error.status)
            if error.status in _BLOCK_SIGNS:
                self._act(self._breaker.record_connection_error(sent_at))
            if error.status not in _NOT_SENT and not is_idempotent(request):
                raise _MaybeSent(error) from None
            raise
        samples = self._samples
        samples.append(response.elapsed)
        if len(samples) >= FOLD_EVERY:
            ledger.fold_latencies()
        try:
            outcome = self._source.classify(item, response)
        except Exception as error:  # a Source bug fails this item, not the run
            outcome = _source_failure(error)
        self._count_status(outcome.status)
        match outcome:
            case Ok() | NoData() | Failed():
                self._breaker.record_success(sent_at)
                return outcome
            case Transient():
                raise RetryableOutcome(outcome)
            case SlowDown():
                pause = outcome.retry_after
                self._cooldown(
                    pause if pause is not None else self._slowdown_pause,
                    f"the upstream said slow down ({outcome.status}: {outcome.reason})",
                )
                self._act(self._breaker.record_slowdown(sent_at))
                if self._life.fatal is not None:
                    raise _Stopped
                raise RetryableOutcome(outcome)
            case Unusable():
                self._act(self._breaker.record_unusable(outcome.reason), status="unusable")
                if self._life.fatal is not None:
                    raise _Stopped
                raise RetryableOutcome(outcome)
            case Fatal():
                self._life.stop_fatal(outcome.reason, outcome.status)
                raise _Stopped

    def _hedge_delay(self) -> float:
        """Seconds before a hedge: fixed, or learned from the latencies seen so far."""
        if self._hedge_learned:
            ledger = self._ledger
            seen = ledger.latency.count
            if seen >= self._hedge_learned_at + _RELEARN_EVERY:
                self._hedge_learned_at = seen
                self._hedge_after = max(
                    self._config.hedge_floor_s, ledger.latency.quantile(self._config.hedge_quantile)
                )
            elif seen < _RELEARN_EVERY:
                return math.inf  # nothing learned yet: no hedge
        return self._hedge_after

    def _may_hedge(self, request: Request) -> list[Hold] | None:
        """A hedge goes only within its share of the requests and when a window has room now:
        it must never make a first attempt wait, nor break a rate window. The holds it gets
        are released when the copy ends."""
        ledger = self._ledger
        weight = request.weight
        if self._life.stopping or ledger.hedges + 1 > self._hedge_share * ledger.requests:
            return None
        if self._host_limited and self._host_slot(request.host).locked():
            return None  # the host's slots are full: a hedge never waits for one
        holds: list[Hold] = []
        host_limiter = self._host_limiter(request) if self._host_windows else None
        if host_limiter is not None:
            host_hold = host_limiter.try_hold(weight)
            if host_hold is None:
                return None
            holds.append(host_hold)
        hold = self._limiter.try_hold(weight)
        if hold is None:
            for taken in holds:
                taken.cancel()
            return None
        holds.append(hold)
        return holds

    async def _hedged(self, request: Request, hedge_after: float) -> Response:
        """One attempt, with a second copy sent if the first has not answered in time."""
        if math.isinf(hedge_after):
            return await self._fetch(request)
        first = asyncio.ensure_future(self._fetch(request))
        tasks: set[asyncio.Future[Response]] = {first}
        try:
            done, _ = await asyncio.wait(tasks, timeout=hedge_after)
            holds = None if done else self._may_hedge(request)
            if holds is not None:
                self._ledger.requests += 1
                self._ledger.hedges += 1
                hedge = asyncio.ensure_future(self._fetch(request))
                hedge.add_done_callback(lambda _: _release_all(holds))
                tasks.add(hedge)
            last_error: BaseException | None = None
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():
                        last_error = _OutOfTime()  # abandoned at the deadline's grace
                        continue
                    error = task.exception()
                    if error is None:
                        return task.result()  # the first answer wins
                    last_error = error
            assert last_error is not None
            raise last_error
        finally:
            for task in tasks:
                task.cancel()

    async def _fetch(self, request: Request) -> Response:
        timeout = self._attempt_timeout
        cut_by_deadline = False
        deadline_at = self._life.deadline_at
        if deadline_at is not None:
            left = deadline_at + self._grace - asyncio.get_running_loop().time()
            if left <= 0:
                raise _OutOfTime
            if left < timeout:
                timeout, cut_by_deadline = left, True
        task = asyncio.current_task()
        assert task is not None  # workers and hedge copies are tasks
        in_flight = self._in_flight
        in_flight.add(task)
        try:
            if not self._host_limited:
                return await self._fetcher.fetch(request, timeout=timeout)
            async with self._host_slot(request.host):
                return await self._fetcher.fetch(request, timeout=timeout)
        except FetchError:
            if cut_by_deadline and self._life.stopping:
                raise _OutOfTime from None
            raise
        finally:
            in_flight.discard(task)

    def _host_limiter(self, request: Request) -> RateLimiter | None:
        host = request.host
        try:
            return self._host_limiters[host]
        except KeyError:
            pass
        rates = tuple(self._host_rates)
        if self._rates_of_host is not None:
            try:
                own = tuple(self._rates_of_host(request.url))
                if not all(isinstance(rate, Rate) for rate in own):
                    raise TypeError(f"expected Rate objects, got {own!r}")
            except Exception as error:  # a Source bug costs its windows, not the run
                log.warning(
                    "run %s: host_rates() of %s failed, using the configured windows only: %s",
                    self._life.run_id,
                    host,
                    redact_text(f"{type(error).__name__}: {error}"),
                )
                own = ()
            rates += own
        limiter = RateLimiter(rates) if rates else None
        self._host_limiters[host] = limiter
        return limiter

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._host_slots.get(host)
        if slot is None:
            slot = asyncio.Semaphore(self._config.per_host or self._config.concurrency)
            self._host_slots[host] = slot
        return slot

    # -- signals --------------------------------------------------------------------------

    def _act(self, verdict: BreakerVerdict, *, status: str = "circuit_open") -> None:
        if verdict.action is BreakerAction.PAUSE:
            self._cooldown(verdict.pause, verdict.reason)
        elif verdict.action is BreakerAction.FATAL:
            self._life.stop_fatal(verdict.reason, status)

    def _cooldown(self, seconds: float, reason: str) -> None:
        """Pause every sender; logged once per episode (sixteen workers, one line)."""
        if not self._limiter.in_cooldown:
            log.warning(
                "run %s: every worker pauses %g s: %s",
                self._life.run_id,
                seconds,
                redact_text(reason),
            )
        self._limiter.cooldown(seconds)


def _release_all(holds: list[Hold]) -> None:
    for hold in holds:
        hold.release()


def _source_failure(error: Exception) -> Failed:
    reason = redact_text(f"source error: {type(error).__name__}: {error}")
    return Failed(reason=reason, status="source_error")
