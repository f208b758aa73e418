"""Hedging is bounded: within the rate windows, only when they have room, capped, counted apart,
and its delay can be learned from the latencies seen; latencies kept in a fixed histogram."""

from __future__ import annotations

import asyncio
import io
import random
from typing import Any

import pytest

from asyncrawl.engine import Crawl, CrawlConfig, run
from asyncrawl.http import Request, Response
from asyncrawl.limiter import Rate
from asyncrawl.progress import CrawlProgress
from asyncrawl.results import ItemResult
from asyncrawl.summary import LatencyHistogram, RunCounts
from support.engine_sources import FakeFetcher, NumberSource, max_in_window, ok_response

BASE = "http://upstream.test"


async def _drain(crawl: Crawl[Any]) -> list[ItemResult[Any]]:
    async with crawl:
        return [result async for result in crawl]


def _first_attempt_slow(slow: float, fast: float = 0.05) -> Any:
    async def respond(request: Request, attempt: int) -> Response:
        await asyncio.sleep(slow if attempt == 1 else fast)
        return ok_response()

    return respond


@pytest.mark.looptime
async def test_hedges_are_capped_and_counted_apart() -> None:
    fetcher = FakeFetcher(_first_attempt_slow(2.0))
    config = CrawlConfig(concurrency=8, hedge_after=0.5, attempt_timeout=100.0)
    crawl = run(NumberSource(BASE), range(500), fetcher=fetcher, config=config)
    await _drain(crawl)
    summary = crawl.summary
    assert summary.ok + summary.no_data == 500
    assert 0 < summary.hedges <= 0.02 * summary.requests
    assert summary.requests == 500 + summary.hedges
    assert summary.retries == 0
    assert summary.to_dict()["hedges"] == summary.hedges


@pytest.mark.looptime
async def test_hedges_never_break_a_window_nor_wait_for_one() -> None:
    fetcher = FakeFetcher(_first_attempt_slow(3.0))
    rates = (Rate(10, 1.0),)
    config = CrawlConfig(
        concurrency=10, rates=rates, hedge_after=0.5, hedge_max_fraction=1.0, attempt_timeout=50.0
    )
    crawl = run(NumberSource(BASE), range(60), fetcher=fetcher, config=config)
    await _drain(crawl)
    assert max_in_window(fetcher.sent, 1.0) <= 10
    # Each second the window is full of first attempts: few hedges find room, none waited.
    assert crawl.summary.hedges < 60
    assert crawl.summary.consistent


@pytest.mark.looptime
async def test_a_learned_hedge_delay_rescues_hung_requests() -> None:
    async def respond(request: Request, attempt: int) -> Response:
        number = int(request.params["id"])
        hangs = number >= 50 and number % 10 == 0 and attempt == 1
        await asyncio.sleep(50.0 if hangs else 0.1 + 0.001 * (number % 7))
        return ok_response()

    def config(hedge: object) -> CrawlConfig:
        return CrawlConfig(
            concurrency=8,
            hedge_after=hedge,  # type: ignore[arg-type]
            hedge_max_fraction=0.2,
            attempt_timeout=5.0,
        )

    loop = asyncio.get_running_loop()
    elapsed = {}
    hedges = {}
    for hedge in (None, "auto"):
        start = loop.time()
        fetcher = FakeFetcher(respond)
        crawl = run(NumberSource(BASE), range(100), fetcher=fetcher, config=config(hedge))
        await _drain(crawl)
        elapsed[hedge] = loop.time() - start
        hedges[hedge] = crawl.summary.hedges
        assert crawl.summary.ok + crawl.summary.no_data == 100
    # Without hedging each of the five hung attempts costs a 5 s timeout; with a delay learned
    # from the first answers (about 0.1 s) a copy answers at once.
    assert elapsed[None] >= 5.0
    assert elapsed["auto"] < 2.0
    assert hedges[None] == 0
    assert 5 <= hedges["auto"] <= 20


def test_hedge_settings_are_validated() -> None:
    from asyncrawl.errors import ConfigError

    with pytest.raises(ConfigError, match="hedge_max_fraction"):
        CrawlConfig(hedge_max_fraction=2.0)
    with pytest.raises(ConfigError, match="hedge_after"):
        CrawlConfig(hedge_after="sometimes")  # type: ignore[arg-type]
    assert CrawlConfig(hedge_after="auto").hedge_after == "auto"


def test_the_latency_histogram_is_fixed_size_and_within_five_percent() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(-2.0, 1.0) for _ in range(100_000)]
    histogram = LatencyHistogram()
    size = len(histogram._counts)
    for value in values:
        histogram.record(value)
    assert len(histogram._counts) == size  # memory does not grow with the run
    ordered = sorted(values)
    for fraction in (0.5, 0.9, 0.99):
        exact = ordered[int(fraction * len(ordered)) - 1]
        assert exact * 0.95 <= histogram.quantile(fraction) <= exact * 1.06
    assert histogram.max == max(values)


@pytest.mark.looptime
async def test_progress_reads_counters_not_the_summary() -> None:
    class NoSummary:
        """A crawl whose summary would be too costly to take on every result."""

        def __init__(self, counts: RunCounts) -> None:
            self._counts = counts

        @property
        def summary(self) -> None:
            raise AssertionError("progress must not build a summary per result")

        def counts(self) -> RunCounts:
            return self._counts

    crawl = run(NumberSource(BASE), range(20), fetcher=FakeFetcher())
    results = await _drain(crawl)
    counts = crawl.counts()
    summary = crawl.summary
    assert (counts.ok, counts.no_data, counts.requests, counts.remaining) == (
        summary.ok,
        summary.no_data,
        summary.requests,
        len(summary.remaining),
    )
    stream = io.StringIO()
    with CrawlProgress(total=20, stream=stream, interval=0.0) as progress:
        progress.attach(NoSummary(counts))  # type: ignore[arg-type]
        for result in results:
            progress.update(result)
    assert "20/20 done" in stream.getvalue()


class _TwoHosts(NumberSource):
    """Even items go to a.test, odd ones to b.test."""

    def request(self, item: int) -> Request:
        host = "a.test" if item % 2 == 0 else "b.test"
        return Request(url=f"http://{host}/item", params={"id": str(item)})


@pytest.mark.looptime
async def test_per_host_rate_windows_hold_for_each_host_apart() -> None:
    sends: dict[str, list[float]] = {"a.test": [], "b.test": []}

    async def respond(request: Request, attempt: int) -> Response:
        sends[request.host].append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)
        return ok_response()

    config = CrawlConfig(concurrency=16, rates=(Rate(1000, 1.0),), per_host_rates=(Rate(5, 1.0),))
    crawl = run(_TwoHosts(BASE), range(40), fetcher=FakeFetcher(respond), config=config)
    await _drain(crawl)
    assert crawl.summary.ok + crawl.summary.no_data == 40
    for times in sends.values():
        assert len(times) == 20
        assert max_in_window(times, 1.0) <= 5
    # The hosts do not wait for each other: both sent their first five at once.
    start = min(sends["a.test"] + sends["b.test"])
    assert all(sorted(times)[4] - start < 0.01 for times in sends.values())
