"""The attempt watchdog: exact per-attempt deadlines with one timer, real cancels untouched."""

from __future__ import annotations

import asyncio

import pytest

from asyncrawl.watchdog import AttemptWatchdog

pytestmark = pytest.mark.looptime


async def attempt(watchdog: AttemptWatchdog, timeout: float, takes: float) -> str:
    """Sleep ``takes`` seconds under a ``timeout``; say how it ended."""
    task = asyncio.current_task()
    assert task is not None
    watchdog.watch(task, timeout)
    try:
        await asyncio.sleep(takes)
    except asyncio.CancelledError:
        if not watchdog.expired(task):
            raise
        return f"timeout at {asyncio.get_running_loop().time():g}"
    finally:
        watchdog.release(task)
    return "done"


async def test_each_attempt_times_out_exactly_at_its_own_deadline() -> None:
    watchdog = AttemptWatchdog()
    results = await asyncio.gather(
        attempt(watchdog, timeout=5.0, takes=100.0),
        attempt(watchdog, timeout=2.0, takes=100.0),
        attempt(watchdog, timeout=3.0, takes=1.0),
        attempt(watchdog, timeout=7.5, takes=100.0),
    )
    assert list(results) == ["timeout at 5", "timeout at 2", "done", "timeout at 7.5"]


async def test_a_timed_out_task_can_go_on_and_be_cancelled_later() -> None:
    watchdog = AttemptWatchdog()

    async def two_attempts() -> list[str]:
        first = await attempt(watchdog, timeout=1.0, takes=10.0)
        second = await attempt(watchdog, timeout=10.0, takes=1.0)
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # the watchdog's cancel was undone
        return [first, second]

    assert await two_attempts() == ["timeout at 1", "done"]


async def test_a_real_cancellation_is_never_mistaken_for_a_timeout() -> None:
    watchdog = AttemptWatchdog()
    task = asyncio.create_task(attempt(watchdog, timeout=1.0, takes=100.0))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_arriving_with_the_timeout_still_propagates() -> None:
    watchdog = AttemptWatchdog()
    task = asyncio.create_task(attempt(watchdog, timeout=1.0, takes=100.0))
    loop = asyncio.get_running_loop()
    # Cancelled by someone else at the very moment the watchdog fires.
    loop.call_at(loop.time() + 1.0, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_released_attempt_is_not_cancelled_when_its_deadline_passes() -> None:
    watchdog = AttemptWatchdog()
    assert await attempt(watchdog, timeout=1.0, takes=0.5) == "done"
    await asyncio.sleep(2.0)  # past the deadline: this task must not be cancelled
    watchdog.close()
