"""Honest signals: retries counted once sent, pauses and stops logged once, lazy workers,
validated settings, and requests that must not be sent twice."""

from __future__ import annotations

import asyncio
import logging

import pytest

from asyncrawl.breaker import BreakerConfig
from asyncrawl.engine import CrawlConfig, run
from asyncrawl.errors import ConfigError, TransportError
from asyncrawl.http import Request, Response
from asyncrawl.retry import RetryPolicy
from support.engine_sources import FakeFetcher, NumberSource, ok_response

BASE = "http://upstream.test"
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0)

pytestmark = pytest.mark.looptime


async def _drain(crawl: object) -> None:
    async with crawl:  # type: ignore[attr-defined]
        async for _ in crawl:  # type: ignore[attr-defined]
            pass


async def test_retries_count_only_attempts_that_were_sent() -> None:
    async def refused(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        raise TransportError("refused", url=request.display_url, status="connection_refused")

    fetcher = FakeFetcher(refused)
    config = CrawlConfig(
        retry=FAST_RETRY, deadline=10.0, breaker=BreakerConfig(reset_burst=5, reset_pause=30.0)
    )
    crawl = run(NumberSource(BASE), [1, 2], fetcher=fetcher, config=config)
    await _drain(crawl)
    summary = crawl.summary
    sent = sum(fetcher.attempts.values())
    assert summary.requests == sent
    # Two first attempts; every other request sent is a retry, and nothing else is.
    assert summary.retries == sent - 2
    assert summary.consistent


async def test_a_cooldown_is_logged_once_with_its_reason_and_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def limited(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        return ok_response(429, {"Retry-After": "30"}) if attempt == 1 else ok_response()

    caplog.set_level(logging.INFO, logger="asyncrawl")
    config = CrawlConfig(concurrency=16, retry=FAST_RETRY)
    await _drain(run(NumberSource(BASE), range(16), fetcher=FakeFetcher(limited), config=config))
    pauses = [r.getMessage() for r in caplog.records if "pauses" in r.getMessage()]
    assert len(pauses) == 1, pauses
    assert "30 s" in pauses[0]
    assert "http_429" in pauses[0]


async def test_each_breaker_pause_is_logged_once_not_per_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refused(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        raise TransportError("refused", url=request.display_url, status="connection_refused")

    caplog.set_level(logging.INFO, logger="asyncrawl")
    config = CrawlConfig(
        concurrency=8,
        retry=RetryPolicy(max_attempts=2, base_delay=0.1, max_delay=1.0),
        breaker=BreakerConfig(reset_burst=5, reset_pause=30.0),
    )
    await _drain(run(NumberSource(BASE), range(8), fetcher=FakeFetcher(refused), config=config))
    pauses = [r.getMessage() for r in caplog.records if "pauses" in r.getMessage()]
    # Eight first attempts make one burst, eight retries after the pause another: two pauses.
    assert len(pauses) == 2, pauses
    assert all("30 s" in m and "refused or reset" in m for m in pauses)


async def test_a_deadline_stop_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncrawl")
    config = CrawlConfig(concurrency=8, deadline=1.0, grace=0.5)
    await _drain(
        run(NumberSource(BASE), range(20), fetcher=FakeFetcher(latency=5.0), config=config)
    )
    stops = [r.getMessage() for r in caplog.records if "stopping" in r.getMessage()]
    assert len(stops) == 1, stops
    assert "deadline of 1 s reached" in stops[0]
    assert "0.5 s" in stops[0]


async def test_workers_start_as_work_arrives() -> None:
    most = 0

    async def count_workers(request: Request, attempt: int) -> Response:
        nonlocal most
        workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("asyncrawl-worker")]
        most = max(most, len(workers))
        await asyncio.sleep(0.01)
        return ok_response()

    config = CrawlConfig(concurrency=1000)
    crawl = run(NumberSource(BASE), [1, 2], fetcher=FakeFetcher(count_workers), config=config)
    await _drain(crawl)
    assert crawl.summary.ok == 2
    assert 1 <= most <= 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 1_000_000),
        ("concurrency", 0),
        ("concurrency", 2.5),
        ("per_host", 0),
        ("buffer", 0),
        ("attempt_timeout", float("inf")),
        ("attempt_timeout", float("nan")),
        ("attempt_timeout", -1),
        ("grace", 0),
        ("deadline", "soon"),
        ("hedge_after", 0),
        ("slowdown_pause", True),
        ("seed", 1.5),
        ("rates", ()),
    ],
)
def test_every_numeric_setting_is_validated_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        CrawlConfig(**{field: value})  # type: ignore[arg-type]
    assert raised.value.field == field


def test_the_concurrency_cap_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match=r"concurrency: .*1000.*lower it"):
        CrawlConfig(concurrency=1_000_000)


class _PostSource(NumberSource):
    def request(self, item: int) -> Request:
        return Request(
            url=f"{self.base}/item", method="POST", params={"id": str(item)}, idempotent=False
        )


async def test_a_post_with_hedging_on_is_sent_once() -> None:
    async def slow(request: Request, attempt: int) -> Response:
        await asyncio.sleep(2.0)
        return ok_response()

    fetcher = FakeFetcher(slow)
    config = CrawlConfig(hedge_after=0.5, attempt_timeout=100.0)
    crawl = run(_PostSource(BASE), range(10), fetcher=fetcher, config=config)
    await _drain(crawl)
    assert crawl.summary.ok + crawl.summary.no_data == 10
    assert set(fetcher.attempts.values()) == {1}
    assert crawl.summary.requests == 10


async def test_a_post_is_not_retried_after_a_timeout() -> None:
    async def hang(request: Request, attempt: int) -> Response:
        await asyncio.sleep(100.0)
        return ok_response()

    fetcher = FakeFetcher(hang)
    config = CrawlConfig(attempt_timeout=1.0, retry=FAST_RETRY)
    crawl = run(_PostSource(BASE), [1], fetcher=fetcher, config=config)
    await _drain(crawl)
    [failure] = crawl.summary.failed
    assert fetcher.attempts["1"] == 1
    assert failure.status == "timeout"
    assert "not retried" in failure.reason
    assert crawl.summary.retries == 0


async def test_a_post_refused_before_sending_is_retried() -> None:
    async def refuse_first(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        if attempt == 1:
            raise TransportError("refused", url=request.display_url, status="connection_refused")
        return ok_response()

    fetcher = FakeFetcher(refuse_first)
    crawl = run(_PostSource(BASE), [1], fetcher=fetcher, config=CrawlConfig(retry=FAST_RETRY))
    await _drain(crawl)
    assert crawl.summary.ok == 1
    assert fetcher.attempts["1"] == 2
