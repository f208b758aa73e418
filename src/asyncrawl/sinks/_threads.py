"""Blocking work in daemon threads: a hung disk must not keep the process from exiting.

``asyncio.to_thread`` uses the loop's default executor, and ``asyncio.run`` waits for that
executor's threads when it closes (and the interpreter joins them at exit): a write stuck in a
dead NFS mount or a full FUSE volume would then hold the process past every deadline, where
the caller already gave up on it. A thread cannot be cancelled, so each blocking call here
runs in its own daemon thread instead: the awaiting coroutine can be cancelled (a timeout, the
deadline), and the thread, if it ever returns, hands its result to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_in_daemon_thread"]

T = TypeVar("T")


async def run_in_daemon_thread(fn: Callable[[], T], *, name: str = "asyncrawl-io") -> T:
    """Run ``fn()`` in a new daemon thread and await its result (or its exception).

    Cancelling the await abandons the thread: its result is dropped, and it does not keep the
    interpreter alive at exit. One thread per call costs tens of microseconds, small beside
    the file write and fsync it carries, and a stuck call can never starve the others.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled meanwhile: nobody waits any more
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]

    def work() -> None:
        try:
            outcome = fn()
        except BaseException as error:  # handed to the awaiting coroutine, which re-raises it
            report: tuple[T | None, BaseException | None] = (None, error)
        else:
            report = (outcome, None)
        # RuntimeError: the loop closed while this thread was blocked; nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *report)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
