"""The retry policy: what retries, how long it waits, when it stops, what the caller sees."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncrawl.errors import (
    AttemptTimeout,
    ConfigError,
    FetchError,
    SinkError,
    TransportError,
    UpstreamFatalError,
)
from asyncrawl.outcomes import SlowDown, Transient
from asyncrawl.retry import RetryableOutcome, RetryPolicy, backoff_delay, is_retryable, retrying


class FakeTime:
    """A clock and a sleep that advances it, recording every wait."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Raises the given errors in turn, then returns ``"done"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def transient(retry_after: float | None = None) -> RetryableOutcome:
    return RetryableOutcome(
        Transient(reason="HTTP 503", status="http_503", retry_after=retry_after)
    )


@pytest.mark.parametrize(
    "error",
    [
        FetchError("boom"),
        TransportError("connection reset", status="connection_reset"),
        AttemptTimeout("too slow", status="timeout"),
        transient(),
        RetryableOutcome(SlowDown(reason="020", status="020")),
        SinkError("s3 hiccup"),
    ],
)
async def test_retryable_errors_are_retried_until_success(error: Exception) -> None:
    fake = FakeTime()
    fn = Flaky(error, error)
    result: str = await retrying(RetryPolicy(), sleep=fake.sleep, clock=fake.clock)(fn)
    assert result == "done"
    assert fn.calls == 3
    assert len(fake.sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [
        UpstreamFatalError("bad key"),
        ConfigError("years", "bad"),
        ValueError("a bug"),
        RuntimeError("fetch error: connection reset"),  # words do not matter, the type does
    ],
)
async def test_other_errors_propagate_at_once_as_themselves(error: Exception) -> None:
    fake = FakeTime()
    fn = Flaky(error)
    with pytest.raises(type(error)) as caught:
        await retrying(RetryPolicy(), sleep=fake.sleep, clock=fake.clock)(fn)
    assert caught.value is error
    assert fn.calls == 1
    assert fake.sleeps == []


def test_retryability_is_a_property_of_the_type() -> None:
    assert is_retryable(TransportError("x"))
    assert is_retryable(transient())
    assert not is_retryable(UpstreamFatalError("x"))
    assert not is_retryable(OSError("connection reset"))


async def test_when_attempts_run_out_the_caller_sees_the_real_last_error() -> None:
    fake = FakeTime()
    errors = [TransportError(f"reset {n}") for n in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(TransportError) as caught:
        await retrying(RetryPolicy(max_attempts=5), sleep=fake.sleep, clock=fake.clock)(fn)
    assert caught.value is errors[-1]
    assert fn.calls == 5
    assert len(fake.sleeps) == 4


async def test_the_wait_sequence_is_full_jitter_exponential_back_off() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=6, base_delay=1.0, multiplier=3.0, max_delay=20.0)
    fn = Flaky(*(FetchError("x") for _ in range(5)))
    await retrying(policy, rng=random.Random(42), sleep=fake.sleep, clock=fake.clock)(fn)
    reference = random.Random(42)
    caps = [1.0, 3.0, 9.0, 20.0, 20.0]
    assert fake.sleeps == [reference.uniform(0, cap) for cap in caps]


@given(
    attempt=st.integers(1, 10_000),
    base=st.floats(0, 10),
    extra=st.floats(0, 100),
    multiplier=st.floats(1, 10),
    seed=st.integers(0, 2**32),
)
def test_property_back_off_stays_within_its_cap(
    attempt: int, base: float, extra: float, multiplier: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=base + extra, multiplier=multiplier)
    delay = backoff_delay(policy, attempt, random.Random(seed))
    # Past a few hundred doublings the growth overflows a float: the cap is max_delay then.
    grown = base * multiplier ** (attempt - 1) if attempt < 300 else policy.max_delay
    assert 0 <= delay <= min(policy.max_delay, grown)


async def test_retry_after_is_honoured_when_longer_than_the_back_off() -> None:
    fake = FakeTime()
    policy = RetryPolicy(base_delay=0.5, max_delay=1.0)
    fn = Flaky(transient(retry_after=12.0), transient(retry_after=0.0))
    await retrying(policy, sleep=fake.sleep, clock=fake.clock)(fn)
    assert fake.sleeps[0] == 12.0
    assert 0 <= fake.sleeps[1] <= 1.0


async def test_no_wait_runs_past_the_deadline_and_the_last_error_surfaces() -> None:
    fake = FakeTime()
    deadline = fake.now + 30
    last = transient(retry_after=25.0)
    fn = Flaky(transient(retry_after=10.0), last, transient())
    with pytest.raises(RetryableOutcome) as caught:
        await retrying(RetryPolicy(), deadline=deadline, sleep=fake.sleep, clock=fake.clock)(fn)
    # 10 s fits before the deadline; 25 s more would end past it, so retrying stops instead.
    assert caught.value is last
    assert fake.sleeps == [10.0]
    assert fn.calls == 2
    assert fake.now <= deadline


async def test_the_on_retry_hook_hears_attempt_error_and_wait() -> None:
    fake = FakeTime()
    heard: list[tuple[int, BaseException, float]] = []
    errors = [TransportError("a"), transient(retry_after=3.0)]
    fn = Flaky(*errors)
    await retrying(
        RetryPolicy(),
        sleep=fake.sleep,
        clock=fake.clock,
        on_retry=lambda attempt, error, wait: heard.append((attempt, error, wait)),
    )(fn)
    assert [(attempt, error) for attempt, error, _ in heard] == [(1, errors[0]), (2, errors[1])]
    assert [wait for _, _, wait in heard] == fake.sleeps
    assert heard[1][2] >= 3.0


async def test_the_loop_form_numbers_the_attempts() -> None:
    fake = FakeTime()
    numbers: list[int] = []
    async for attempt in retrying(RetryPolicy(), sleep=fake.sleep, clock=fake.clock):
        with attempt:
            numbers.append(attempt.retry_state.attempt_number)
            if len(numbers) < 3:
                raise TransportError("reset")
    assert numbers == [1, 2, 3]


@pytest.mark.looptime
async def test_by_default_time_is_the_loop_clock_and_waits_are_loop_sleeps() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    fn = Flaky(transient(retry_after=40.0), transient(retry_after=50.0))
    with pytest.raises(RetryableOutcome):
        await retrying(RetryPolicy(), deadline=start + 60)(fn)
    assert loop.time() - start == pytest.approx(40.0, abs=1.0)
    assert fn.calls == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"max_delay": 0.1}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
    ],
)
def test_policy_validation_names_the_field(changes: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_the_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(
        max_attempts=5, base_delay=0.5, max_delay=30.0, multiplier=2.0
    )
