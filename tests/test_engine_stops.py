"""How a run ends: a deadline over a blocked item source, and the systemic-fault rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from asyncrawl import Unusable
from asyncrawl.breaker import BreakerConfig
from asyncrawl.engine import Crawl, CrawlConfig, run
from asyncrawl.errors import UpstreamFatalError
from asyncrawl.http import Request, Response
from asyncrawl.outcomes import Ok, Outcome
from asyncrawl.retry import RetryPolicy
from support.engine_sources import FakeFetcher, NumberSource

BASE = "http://upstream.test"
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0)

pytestmark = pytest.mark.looptime


async def test_a_deadline_ends_a_crawl_whose_item_source_blocks_forever() -> None:
    closed = asyncio.Event()

    async def three_then_nothing() -> AsyncIterator[int]:
        try:
            for n in range(3):
                yield n
            await asyncio.Event().wait()  # an endless feed that never sends again
        finally:
            closed.set()

    loop = asyncio.get_running_loop()
    start = loop.time()
    crawl = run(
        NumberSource(BASE),
        three_then_nothing(),
        fetcher=FakeFetcher(),
        config=CrawlConfig(concurrency=4, deadline=1.0, grace=1.0),
    )
    async with asyncio.timeout(60.0):  # virtual time: the old engine waited here forever
        async with crawl:
            keys = [result.key async for result in crawl]
    assert loop.time() - start <= 2.0 + 0.01  # deadline + grace
    assert sorted(keys) == ["item-0", "item-1", "item-2"]
    assert closed.is_set()  # the engine aclose()d the user's async iterator
    assert crawl.position == 3
    assert crawl.summary.consistent
    assert crawl.summary.remaining == ()


class _HtmlSource(NumberSource):
    """HTML bodies are unusable answers; anything else is Ok."""

    def classify(self, item: int, response: Response) -> Outcome:
        if response.body.startswith(b"<"):
            return Unusable(reason="HTML where JSON was expected", status="not_json")
        return Ok(payload=[])


async def _drain(crawl: Crawl[int]) -> None:
    async with crawl:
        async for _ in crawl:
            pass


async def test_a_streak_of_unusable_answers_stops_the_run() -> None:
    async def html(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        return Response(status=200, headers={}, body=b"<html>")

    fetcher = FakeFetcher(html)
    config = CrawlConfig(concurrency=4, retry=FAST_RETRY, breaker=BreakerConfig(unusable_streak=10))
    crawl = run(_HtmlSource(BASE), range(80), fetcher=fetcher, config=config)
    with pytest.raises(UpstreamFatalError) as raised:
        await _drain(crawl)
    assert raised.value.status == "unusable"
    assert "HTML where JSON was expected" in raised.value.reason
    summary = crawl.summary
    assert summary.fatal is not None
    # Ten answers decide it, not 5 attempts for each of 80 items.
    assert summary.requests <= 10 + config.concurrency
    assert summary.consistent, summary.to_dict()
    assert summary.failed == ()
    assert len(summary.remaining) == 80


async def test_usable_answers_between_keep_unusable_ones_item_level() -> None:
    async def html_first(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        odd = int(request.params["id"]) % 2 == 1
        return Response(status=200, headers={}, body=b"<html>" if odd and attempt == 1 else b"{}")

    config = CrawlConfig(concurrency=4, retry=FAST_RETRY, breaker=BreakerConfig(unusable_streak=5))
    crawl = run(_HtmlSource(BASE), range(60), fetcher=FakeFetcher(html_first), config=config)
    async with crawl:
        async for _ in crawl:
            pass
    summary = crawl.summary
    assert summary.fatal is None
    assert summary.ok == 60
    assert summary.retries == 30  # 30 odd items, one unusable answer each
    assert summary.status_counts["not_json"] == 30
    assert summary.consistent


def test_unusable_streak_is_validated() -> None:
    from asyncrawl.errors import ConfigError

    with pytest.raises(ConfigError, match="unusable_streak"):
        BreakerConfig(unusable_streak=0)
