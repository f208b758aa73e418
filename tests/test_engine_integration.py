"""The engine over real sockets: AiohttpFetcher against the fault server on 127.0.0.1.

Whatever the faults, every item ends in exactly one bucket, the server never sees more than the
configured rate in any window, and no item is requested again once its result was recorded.
"""

from __future__ import annotations

import asyncio

from asyncrawl.breaker import BreakerConfig
from asyncrawl.engine import CrawlConfig, run
from asyncrawl.http import AiohttpFetcher
from asyncrawl.limiter import Rate
from asyncrawl.retry import RetryPolicy
from asyncrawl.summary import RunSummary
from asyncrawl.testing.faults import FaultPlan, FaultServer, query_param_item_key
from support.engine_sources import NumberSource

RETRY = RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.2)
BREAKER = BreakerConfig(reset_pause=0.3)


async def crawl_against(
    server: FaultServer, items: range, config: CrawlConfig
) -> tuple[RunSummary, dict[str, float]]:
    """Crawl ``items``; also return when (loop time) each result was handed over."""
    handed_over: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    async with AiohttpFetcher() as fetcher:
        crawl = run(NumberSource(server.url), items, fetcher=fetcher, config=config)
        async with crawl:
            async for result in crawl:
                handed_over[result.key.removeprefix("item-")] = loop.time()
    return crawl.summary, handed_over


def assert_nothing_requested_after_its_result(
    server: FaultServer, handed_over: dict[str, float]
) -> None:
    for arrival in server.arrivals:
        finished = handed_over.get(arrival.item)
        if finished is not None:
            assert arrival.time <= finished, f"{arrival.item} requested after its result"


async def test_mixed_faults_lose_nothing_and_respect_the_rate() -> None:
    plan = FaultPlan(
        seed=11,
        latency=0.005,
        latency_jitter=0.01,
        p_503=0.08,
        p_429=0.03,
        retry_after=0.2,
        p_reset=0.04,
        p_truncate=0.03,
        p_html=0.03,
        p_hang=0.02,
    )
    config = CrawlConfig(
        concurrency=16,
        rates=(Rate(60, 1.0),),
        attempt_timeout=0.4,
        retry=RETRY,
        breaker=BREAKER,
        seed=3,
    )
    async with FaultServer(plan, item_key=query_param_item_key("id")) as server:
        summary, handed_over = await crawl_against(server, range(150), config)
        assert summary.consistent, summary.to_dict()
        assert summary.planned == 150
        assert summary.ok + summary.no_data + len(summary.failed) == 150
        assert summary.retries > 0
        # Every fault kind was met and recovered from.
        for status in ("http_503", "http_429", "connection_reset", "truncated", "bad_body"):
            assert summary.status_counts.get(status, 0) > 0, status
        # One fetch attempt is one request: the server saw exactly what the engine counted.
        assert len(server.arrivals) == summary.requests
        # The limiter's guard keeps arrivals, not only sends, inside the window.
        assert server.max_in_window(1.0) <= 60
        assert_nothing_requested_after_its_result(server, handed_over)


async def test_retry_after_pauses_every_worker() -> None:
    plan = FaultPlan(seed=5, p_429=0.05, retry_after=0.4)
    config = CrawlConfig(concurrency=8, rates=(Rate(10**6, 1.0),), retry=RETRY, seed=1)
    async with FaultServer(plan, item_key=query_param_item_key("id")) as server:
        summary, _ = await crawl_against(server, range(80), config)
        assert summary.consistent
        limited = [a.time for a in server.arrivals if a.fault == "429"]
        assert limited
        for moment in limited:
            # Requests already under way may still land just after; then silence until the
            # pause the server asked for is over.
            quiet = [a for a in server.arrivals if moment + 0.1 < a.time < moment + 0.38]
            assert quiet == [], f"requests during the pause after a 429 at {moment:.3f}"


async def test_hung_answers_time_out_and_are_retried() -> None:
    plan = FaultPlan(seed=2, p_hang=0.3)
    config = CrawlConfig(concurrency=8, attempt_timeout=0.2, retry=RETRY, seed=2)
    async with FaultServer(plan, item_key=query_param_item_key("id")) as server:
        summary, handed_over = await crawl_against(server, range(40), config)
        assert summary.consistent
        assert summary.status_counts["timeout"] > 0
        assert summary.ok + summary.no_data == 40
        assert_nothing_requested_after_its_result(server, handed_over)


async def test_deadline_over_real_sockets() -> None:
    plan = FaultPlan(seed=1, latency=0.2)
    config = CrawlConfig(concurrency=4, deadline=0.5, grace=0.1, retry=RETRY)
    async with FaultServer(plan, item_key=query_param_item_key("id")) as server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        summary, _ = await crawl_against(server, range(100), config)
        assert summary.consistent
        assert summary.planned == 100
        assert summary.remaining
        assert 4 <= summary.ok + summary.no_data <= 12
        # No request started after the deadline.
        assert all(a.time < start + 0.5 + 0.05 for a in server.arrivals)
