"""deliver(): store each result, count it ok only once stored, stop when the store keeps failing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from asyncrawl.engine import CrawlConfig, run
from asyncrawl.errors import ConfigError, SinkError
from asyncrawl.pipeline import deliver
from asyncrawl.results import ItemResult
from asyncrawl.sinks import DirectoryStore, RecordSink
from support.engine_sources import FakeFetcher, NumberSource

pytestmark = pytest.mark.looptime
BASE = "http://upstream.test"


class RecordingSink:
    """Takes ``delay`` seconds per write; fails the writes of the keys in ``failing``."""

    def __init__(self, *, delay: float = 0.1, failing: set[str] | None = None) -> None:
        self.delay = delay
        self.failing = failing or set()
        self.stored: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def write(self, result: ItemResult[Any]) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if result.key in self.failing:
                raise SinkError(f"cannot store {result.key}")
            self.stored.append(result.key)
        finally:
            self.in_flight -= 1


async def test_ok_counts_only_what_the_sink_stored() -> None:
    sink = RecordingSink(failing={"item-4"})
    crawl = run(NumberSource(BASE), range(20), fetcher=FakeFetcher(), confirm=True)
    summary = await deliver(crawl, sink, write_concurrency=4)
    assert summary.ok + summary.no_data == len(sink.stored) == 19
    assert summary.remaining == ("item-4",)  # fetched, but its write failed: not lost silently
    assert summary.consistent
    assert 1 < sink.max_in_flight <= 4


async def test_a_store_that_keeps_failing_stops_the_crawl() -> None:
    sink = RecordingSink(failing={f"item-{n}" for n in range(1000)})
    config = CrawlConfig(concurrency=2)
    crawl = run(NumberSource(BASE), range(1000), fetcher=FakeFetcher(), config=config, confirm=True)
    with pytest.raises(SinkError):
        await deliver(crawl, sink, write_concurrency=1, max_consecutive_write_errors=3)
    summary = crawl.summary
    assert summary.consistent
    assert summary.ok + summary.no_data == 0
    assert summary.planned == 1000
    assert summary.requests < 50  # stopped early instead of spending the upstream's quota


async def test_deliver_makes_the_crawl_confirm_by_itself() -> None:
    # No run(..., confirm=True) needed: deliver() sets it up before the first result.
    sink = RecordingSink(failing={"item-1"})
    crawl = run(NumberSource(BASE), range(3), fetcher=FakeFetcher())
    summary = await deliver(crawl, sink)
    assert summary.ok + summary.no_data == 2
    assert summary.remaining == ("item-1",)  # not counted before its write was confirmed


async def test_deliver_refuses_a_crawl_already_under_way() -> None:
    crawl = run(NumberSource(BASE), range(3), fetcher=FakeFetcher())
    async with crawl:
        await anext(aiter(crawl))
        with pytest.raises(ConfigError, match="already started"):
            await deliver(crawl, RecordingSink())


async def test_a_record_sink_needs_no_journal(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    sink = RecordSink(store, data_key=lambda result: f"data/{result.key}.jsonl.gz")
    summary = await deliver(run(NumberSource(BASE), range(4), fetcher=FakeFetcher()), sink)
    await sink.aclose()
    stored = [key async for key in store.list("data/")]
    assert len(stored) == summary.ok
    assert summary.ok + summary.no_data == 4
