"""Connect a crawl to a sink: store each result as it streams out, then confirm it.

An item counts as ``ok`` (or ``no_data``) only after the sink confirmed its write; a write that
fails leaves the item ``remaining`` -- the data is fetched again next time rather than lost
silently. Writes run concurrently (bounded), so a slow store does not serialise the crawl,
and a store that keeps failing stops the crawl instead of spending the upstream's quota on
results that cannot be kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .engine import Crawl
from .errors import ConfigError, SinkError
from .results import ItemResult
from .sinks.base import Sink
from .summary import RunSummary

__all__ = ["deliver"]

log = logging.getLogger(__name__)


async def deliver(
    crawl: Crawl[Any],
    sink: Sink,
    *,
    write_concurrency: int = 8,
    max_consecutive_write_errors: int = 3,
    on_result: Callable[[ItemResult[Any]], None] | None = None,
) -> RunSummary:
    """Run ``crawl`` to its end, storing every result in ``sink``; return the run summary.

    ``crawl`` must not have started yet; deliver() makes it count an ok / no-data item only
    once the sink stored it (``run(..., confirm=True)`` is not needed). ``on_result`` is called
    with each stored :class:`~asyncrawl.results.ItemResult` (progress displays use it).
    Raises :class:`~asyncrawl.errors.UpstreamFatalError` after storing everything fetched when
    the upstream stops the run, and :class:`~asyncrawl.errors.SinkError` when the sink kept
    failing; ``crawl.summary`` is complete in both cases.
    """
    if not crawl.confirming:
        # Before the first result: from here on a result counts only once confirm() is called.
        crawl.require_confirmation()
    if write_concurrency < 1:
        raise ConfigError("write_concurrency", "must be at least 1")
    slots = asyncio.Semaphore(write_concurrency)
    writes: set[asyncio.Task[None]] = set()
    consecutive_errors = 0
    last_error: SinkError | None = None

    async def store(result: ItemResult[Any]) -> None:
        nonlocal consecutive_errors, last_error
        try:
            await sink.write(result)
        except SinkError as error:
            consecutive_errors += 1
            last_error = error
            log.error("could not store %s: %s", result.key, error)
            if consecutive_errors >= max_consecutive_write_errors:
                crawl.stop()
            return
        finally:
            slots.release()
        consecutive_errors = 0
        crawl.confirm(result)
        if on_result is not None:
            on_result(result)

    async with crawl:
        try:
            async for result in crawl:
                await slots.acquire()
                task = asyncio.create_task(store(result))
                writes.add(task)
                task.add_done_callback(writes.discard)
        finally:
            # Let writes already under way finish, whatever ended the stream: the data was
            # fetched, and confirming it now keeps it out of "remaining".
            if writes:
                await asyncio.shield(asyncio.gather(*writes, return_exceptions=True))
    if last_error is not None and consecutive_errors >= max_consecutive_write_errors:
        raise last_error
    return crawl.summary
