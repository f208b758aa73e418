"""The engine: crawl items concurrently behind a rate limiter and a retry policy, losing nothing.

    async with run(source, items, fetcher=fetcher, config=CrawlConfig(...)) as crawl:
        async for result in crawl:          # ItemResult, streamed as each item finishes
            ...
    crawl.summary                           # RunSummary: every item in exactly one bucket

For one item the engine loops: admit (deadline? cooldown? rate windows) -> fetch one HTTP
attempt (per-attempt timeout, optional hedge) -> the Source classifies the answer -> decide:
finished (ok / no data / failed), retry after a back-off, everyone slows down, or the whole run
stops. The engine acts on outcomes only; it knows nothing of any upstream's own codes.

Discovery. ``Ok(follow=...)`` / ``NoData(follow=...)`` carry new items found in an answer; the
engine plans them (once per key across the run, seeds included), with their depth, under
``max_depth`` / ``max_items``.

Accounting. An item is *pending* from the moment it is started until its result is handed to
the consumer; with ``confirm=True`` an ``ok``/``no_data`` result counts only once the consumer
calls :meth:`Crawl.confirm` (a sink confirmed the write). Whatever is not finished when the run
ends -- never started because of the deadline or a fatal stop, abandoned in flight, or never
confirmed -- is listed in ``summary.remaining``, so ``planned == ok + no_data + failed +
skipped + remaining`` holds however the run ends, cancellation included.

Deadline. When it is reached no new item and no new attempt starts; attempts in flight get
``grace`` seconds to finish and are then abandoned. Results already fetched are still streamed
to the consumer: the stream ends only after they are handed over.

The package, one role per module (arrows point down)::

    crawl      Crawl and run(): workers, streaming, the public surface
    ├── feed       what to crawl next: input, discovery, dedupe, depth and item limits
    ├── attempts   one item: attempts, retries, hedges, per-host slots, breaker signals
    ├── ledger     counts, buckets, summary, the hand-over to the consumer
    ├── lifecycle  one state (NEW, RUNNING, STOPPING, ENDED, CLOSED), deadline, stops
    └── config     CrawlConfig: validated once, durations converted once
"""

from __future__ import annotations

from .config import MAX_CONCURRENCY, CrawlConfig
from .crawl import Crawl, run

__all__ = ["MAX_CONCURRENCY", "Crawl", "CrawlConfig", "run"]
