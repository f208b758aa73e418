"""Engine behaviour in virtual time (looptime): concurrency, limits, retries, deadline, stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from asyncrawl.engine import CrawlConfig, run
from asyncrawl.errors import TransportError, UpstreamFatalError
from asyncrawl.http import Request, Response
from asyncrawl.limiter import Rate
from asyncrawl.outcomes import Fatal, Ok, Outcome, SlowDown
from asyncrawl.retry import RetryPolicy
from asyncrawl.summary import RunSummary
from support.engine_sources import FakeFetcher, NumberSource, max_in_window, ok_response

BASE = "http://upstream.test"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0)


def assert_accounted(summary: RunSummary) -> None:
    assert summary.consistent, summary.to_dict()


async def collect(crawl_items: list[int], fetcher: FakeFetcher, **config: object) -> RunSummary:
    source = NumberSource(BASE)
    async with run(source, crawl_items, fetcher=fetcher, config=CrawlConfig(**config)) as crawl:  # type: ignore[arg-type]
        async for _ in crawl:
            pass
    return crawl.summary


@pytest.mark.looptime
async def test_every_item_finishes_once_and_is_counted() -> None:
    fetcher = FakeFetcher()
    summary = await collect(list(range(100)), fetcher, concurrency=8)
    assert summary.planned == 100
    assert summary.ok == 90
    assert summary.no_data == 10  # items ending in 9
    assert summary.failed == ()
    assert summary.remaining == ()
    assert summary.requests == 100
    assert summary.retries == 0
    assert set(fetcher.attempts.values()) == {1}
    assert_accounted(summary)


@pytest.mark.looptime
async def test_results_stream_as_items_finish_not_at_the_end() -> None:
    async def slow_for_zero(request: Request, attempt: int) -> Response:
        await asyncio.sleep(10.0 if request.params["id"] == "0" else 0.1)
        return ok_response()

    fetcher = FakeFetcher(slow_for_zero)
    source = NumberSource(BASE)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrival: dict[str, float] = {}
    async with run(source, [0, 1, 2], fetcher=fetcher, config=CrawlConfig()) as crawl:
        async for result in crawl:
            arrival[result.key] = loop.time() - start
    assert arrival["item-1"] < 1.0
    assert arrival["item-0"] >= 10.0


@pytest.mark.looptime
async def test_concurrency_global_and_per_host_limits_hold() -> None:
    fetcher = FakeFetcher(latency=1.0)
    source = NumberSource(BASE)
    config = CrawlConfig(concurrency=12, per_host=5)
    async with run(source, range(60), fetcher=fetcher, config=config) as crawl:
        async for _ in crawl:
            pass
    assert fetcher.max_in_flight == 5
    assert fetcher.max_in_flight_by_host["upstream.test"] == 5
    fetcher = FakeFetcher(latency=1.0)
    await collect(list(range(60)), fetcher, concurrency=7)
    assert fetcher.max_in_flight == 7


@pytest.mark.looptime
async def test_rate_windows_hold_and_room_is_used_at_once() -> None:
    fetcher = FakeFetcher(latency=0.05)
    rates = (Rate(20, 1.0), Rate(50, 10.0))
    summary = await collect(list(range(120)), fetcher, concurrency=50, rates=rates)
    assert max_in_window(fetcher.sent, 1.0) <= 20
    assert max_in_window(fetcher.sent, 10.0) <= 50
    # The first 20 went out at once: a window is a limit, not a pace.
    assert sorted(fetcher.sent)[19] - min(fetcher.sent) < 0.01
    assert_accounted(summary)


@pytest.mark.looptime
async def test_rate_windows_hold_where_the_upstream_counts_even_when_sends_arrive_late() -> None:
    # A loaded machine holds some requests for most of a second before they reach the
    # upstream, which counts arrivals: windows must hold there, not only at admission.
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def late(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.9 if int(request.params["id"]) % 3 == 0 else 0.0)
        arrivals.append(loop.time())
        await asyncio.sleep(0.05)
        return ok_response()

    fetcher = FakeFetcher(late)
    summary = await collect(list(range(60)), fetcher, concurrency=30, rates=(Rate(10, 1.0),))
    assert len(arrivals) == 60
    assert max_in_window(arrivals, 1.0) <= 10
    assert_accounted(summary)


class TwoHostSource(NumberSource):
    """Even items go to slow.test, which asks for one request a second; odd ones to fast.test."""

    def __init__(self, broken: bool = False) -> None:
        super().__init__(BASE)
        self.broken = broken
        self.asked: list[str] = []

    def request(self, item: int) -> Request:
        host = "slow.test" if item % 2 == 0 else "fast.test"
        return Request(url=f"http://{host}/item", params={"id": str(item)})

    def host_rates(self, url: str) -> tuple[Rate, ...]:
        self.asked.append(url)
        if self.broken:
            raise RuntimeError("no idea")
        return (Rate(1, 1.0),) if "slow.test" in url else ()


@pytest.mark.looptime
async def test_a_source_s_own_host_rates_pace_that_host_only() -> None:
    fetcher = FakeFetcher(latency=0.05)
    sent: dict[str, list[float]] = {"slow.test": [], "fast.test": []}
    inner = fetcher.fetch

    async def fetch(request: Request, *, timeout: float) -> Response:
        sent[request.host].append(asyncio.get_running_loop().time())
        return await inner(request, timeout=timeout)

    fetcher.fetch = fetch  # type: ignore[method-assign]
    source = TwoHostSource()
    async with run(source, range(10), fetcher=fetcher, config=CrawlConfig(concurrency=10)) as crawl:
        async for _ in crawl:
            pass
    assert_accounted(crawl.summary)
    assert len(source.asked) == 2  # asked once per host
    slow, fast = sent["slow.test"], sent["fast.test"]
    assert max_in_window(slow, 1.0) == 1  # one a second on slow.test
    assert max(slow) - min(slow) >= 4.0
    assert max(fast) - min(fast) < 0.01  # fast.test was not held back


@pytest.mark.looptime
async def test_a_failing_host_rates_costs_only_its_windows() -> None:
    fetcher = FakeFetcher(latency=0.05)
    source = TwoHostSource(broken=True)
    async with run(source, range(10), fetcher=fetcher, config=CrawlConfig(concurrency=10)) as crawl:
        async for _ in crawl:
            pass
    assert crawl.summary.ok + crawl.summary.no_data == 10
    assert max(fetcher.sent) - min(fetcher.sent) < 0.01


@pytest.mark.looptime
async def test_transient_answers_are_retried_then_succeed() -> None:
    async def flaky(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        return ok_response(503) if attempt < 3 else ok_response()

    fetcher = FakeFetcher(flaky)
    summary = await collect(list(range(10)), fetcher, retry=FAST_RETRY)
    assert summary.ok + summary.no_data == 10
    assert summary.retries == 20
    assert summary.status_counts["http_503"] == 20
    assert set(fetcher.attempts.values()) == {3}


@pytest.mark.looptime
async def test_retries_run_out_and_the_last_real_error_is_reported() -> None:
    async def broken(request: Request, attempt: int) -> Response:
        raise TransportError(f"reset #{attempt}", url=request.display_url, status="truncated")

    fetcher = FakeFetcher(broken)
    summary = await collect([1], fetcher, retry=FAST_RETRY)
    assert summary.ok == 0
    [failure] = summary.failed
    assert failure.item == "item-1"
    assert failure.status == "truncated"
    assert "reset #4" in failure.reason
    assert fetcher.attempts["1"] == 4


@pytest.mark.looptime
async def test_attempt_timeout_is_retried() -> None:
    async def hang_first(request: Request, attempt: int) -> Response:
        await asyncio.sleep(100.0 if attempt == 1 else 0.01)
        return ok_response()

    fetcher = FakeFetcher(hang_first)
    summary = await collect([1, 2], fetcher, attempt_timeout=1.0, retry=FAST_RETRY)
    assert summary.ok == 2
    assert summary.status_counts["timeout"] == 2


@pytest.mark.looptime
async def test_slow_down_pauses_every_worker_until_the_cooldown_ends() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def limit_once(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        if request.params["id"] == "0" and attempt == 1:
            return ok_response(429, {"Retry-After": "30"})
        return ok_response()

    fetcher = FakeFetcher(limit_once)
    summary = await collect(list(range(40)), fetcher, concurrency=4, retry=FAST_RETRY)
    assert summary.ok + summary.no_data == 40
    # After the 429 (answered at ~0.01 s) nobody sent anything until the 30 s pause ended.
    after_signal = [t - start for t in fetcher.sent if t - start > 0.011]
    assert after_signal
    assert min(after_signal) >= 30.0


@pytest.mark.looptime
async def test_repeated_slow_down_episodes_become_fatal() -> None:
    async def always_limited(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        return ok_response()

    fetcher = FakeFetcher(always_limited)
    source = NumberSource(
        BASE, {i: SlowDown(reason="020", status="020", retry_after=5.0) for i in range(20)}
    )
    config = CrawlConfig(retry=RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=1.0))
    crawl = run(source, range(20), fetcher=fetcher, config=config)

    async def consume() -> None:
        async with crawl:
            async for _ in crawl:
                pass

    with pytest.raises(UpstreamFatalError, match="slow down"):
        await consume()
    assert crawl.summary.fatal is not None
    assert_accounted(crawl.summary)
    assert len(crawl.summary.remaining) == 20


@pytest.mark.looptime
async def test_fatal_outcome_stops_the_run_and_keeps_what_was_fetched() -> None:
    async def slow_after_ten(request: Request, attempt: int) -> Response:
        number = int(request.params["id"])
        # Items 0-9 answer at once, item 10 (the fatal one) after 5 s, the rest after 10 s.
        await asyncio.sleep(0.01 if number < 10 else 5.0 if number == 10 else 10.0)
        return ok_response()

    fetcher = FakeFetcher(slow_after_ten)
    source = NumberSource(BASE, {10: Fatal(reason="unknown key", status="010")})
    received: list[str] = []
    crawl = run(source, range(100), fetcher=fetcher, config=CrawlConfig(concurrency=4))

    async def consume() -> None:
        async with crawl:
            async for result in crawl:
                received.append(result.key)

    with pytest.raises(UpstreamFatalError, match="unknown key"):
        await consume()
    summary = crawl.summary
    assert summary.fatal == "unknown key"
    assert summary.ok + summary.no_data == len(received) == 10
    assert len(summary.remaining) == 90
    assert_accounted(summary)
    # Nothing new was sent after the fatal answer (item 10 answered at ~5 s).
    assert sum(fetcher.attempts.values()) == 14


@pytest.mark.looptime
async def test_deadline_leaves_every_item_in_one_bucket() -> None:
    fetcher = FakeFetcher(latency=1.0)
    summary = await collect(list(range(100)), fetcher, concurrency=10, deadline=3.5, grace=0.2)
    assert 20 <= summary.ok + summary.no_data <= 40
    assert summary.remaining
    assert_accounted(summary)
    # Nothing finished was listed as remaining.
    assert summary.planned == 100


@pytest.mark.looptime
async def test_in_flight_attempts_get_a_grace_then_are_abandoned() -> None:
    async def slow(request: Request, attempt: int) -> Response:
        await asyncio.sleep(1.5 if request.params["id"] == "0" else 50.0)
        return ok_response()

    fetcher = FakeFetcher(slow)
    loop = asyncio.get_running_loop()
    start = loop.time()
    summary = await collect([0, 1], fetcher, deadline=1.0, grace=1.0, attempt_timeout=100.0)
    assert summary.ok == 1  # item 0 finished inside the grace
    assert summary.remaining == ("item-1",)
    assert loop.time() - start < 3.0
    assert_accounted(summary)


@pytest.mark.looptime
async def test_no_retry_wait_runs_past_the_deadline() -> None:
    async def always_503(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        return ok_response(503, {"Retry-After": "100"})

    fetcher = FakeFetcher(always_503)
    loop = asyncio.get_running_loop()
    start = loop.time()
    summary = await collect([1], fetcher, deadline=10.0, retry=FAST_RETRY)
    assert loop.time() - start < 10.5
    assert summary.remaining == ("item-1",)  # stopped by the deadline, not failed
    assert fetcher.attempts["1"] == 1


@pytest.mark.looptime
async def test_cancellation_completes_the_summary_then_reraises() -> None:
    fetcher = FakeFetcher(latency=1.0)
    source = NumberSource(BASE)
    crawls = []

    async def consume() -> None:
        async with run(
            source, range(50), fetcher=fetcher, config=CrawlConfig(concurrency=5)
        ) as crawl:
            crawls.append(crawl)
            async for _ in crawl:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(2.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = crawls[0].summary
    assert summary.cancelled
    assert 5 <= summary.ok + summary.no_data <= 15
    assert summary.remaining
    assert_accounted(summary)


@pytest.mark.looptime
async def test_unconfirmed_results_stay_remaining() -> None:
    fetcher = FakeFetcher()
    source = NumberSource(BASE)
    async with run(source, range(10), fetcher=fetcher, confirm=True) as crawl:
        async for result in crawl:
            if result.key != "item-3":
                crawl.confirm(result)
    summary = crawl.summary
    assert summary.remaining == ("item-3",)
    assert summary.ok + summary.no_data == 9
    assert_accounted(summary)


@pytest.mark.looptime
async def test_items_finished_before_are_counted_not_fetched() -> None:
    fetcher = FakeFetcher()
    source = NumberSource(BASE)
    done = {"item-1": "ok", "item-2": "no_data"}
    async with run(source, range(5), fetcher=fetcher, done=done) as crawl:  # type: ignore[arg-type]
        keys = [r.key async for r in crawl]
    assert sorted(keys) == ["item-0", "item-3", "item-4"]
    assert "1" not in fetcher.attempts
    assert "2" not in fetcher.attempts
    assert crawl.summary.planned == 5
    assert crawl.summary.ok == 4
    assert crawl.summary.no_data == 1
    assert_accounted(crawl.summary)


@pytest.mark.looptime
async def test_lazy_items_are_never_materialised() -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for n in range(20_000):
            pulled += 1
            yield n

    fetcher = FakeFetcher(latency=0.001)
    source = NumberSource(BASE)
    finished = 0
    ahead = 0
    config = CrawlConfig(concurrency=8, buffer=8, rates=(Rate(10**9, 1.0),))
    async with run(source, numbers(), fetcher=fetcher, config=config, total=20_000) as crawl:
        async for _ in crawl:
            finished += 1
            ahead = max(ahead, pulled - finished)
    assert finished == 20_000
    assert ahead <= 8 + 8 + 2  # workers + buffer, not the whole input


@pytest.mark.looptime
async def test_hedged_request_answers_when_the_first_hangs() -> None:
    async def first_hangs(request: Request, attempt: int) -> Response:
        await asyncio.sleep(100.0 if attempt == 1 else 0.05)
        return ok_response()

    fetcher = FakeFetcher(first_hangs)
    loop = asyncio.get_running_loop()
    start = loop.time()
    summary = await collect(
        [1], fetcher, hedge_after=0.5, attempt_timeout=200.0, hedge_max_fraction=1.0
    )
    assert summary.ok == 1
    assert summary.requests == 2  # the hedge counted as a request
    assert summary.hedges == 1
    assert summary.retries == 0
    assert loop.time() - start < 1.0


@pytest.mark.looptime
async def test_a_source_bug_fails_the_item_not_the_run() -> None:
    class Buggy(NumberSource):
        def classify(self, item: int, response: Response) -> Ok:
            if item == 2:
                raise KeyError("surprise")
            return Ok(payload=[])

    fetcher = FakeFetcher()
    async with run(Buggy(BASE), range(4), fetcher=fetcher) as crawl:
        async for _ in crawl:
            pass
    assert crawl.summary.ok == 3
    [failure] = crawl.summary.failed
    assert failure.status == "source_error"
    assert "KeyError" in failure.reason


@pytest.mark.looptime
async def test_plain_async_for_also_ends_the_run() -> None:
    fetcher = FakeFetcher()
    crawl = run(NumberSource(BASE), range(5), fetcher=fetcher)
    keys = [result.key async for result in crawl]
    assert len(keys) == 5
    assert crawl.summary.ok + crawl.summary.no_data == 5


@pytest.mark.looptime
async def test_a_fatal_stop_does_not_wait_for_cooldowns_or_back_off() -> None:
    async def answer(request: Request, attempt: int) -> Response:
        await asyncio.sleep(1.0 if request.params["id"] == "1" else 0.01)
        return ok_response()

    verdicts: dict[int, Outcome] = {
        0: SlowDown(reason="limit", status="020", retry_after=1000.0),
        1: Fatal(reason="key expired", status="901"),
    }
    fetcher = FakeFetcher(answer)
    crawl = run(NumberSource(BASE, verdicts), range(4), fetcher=fetcher)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def consume() -> None:
        async with crawl:
            async for _ in crawl:
                pass

    with pytest.raises(UpstreamFatalError, match="key expired"):
        await consume()
    assert loop.time() - start < 5.0  # not the 1000 s the slow-down asked for
    assert "item-0" in crawl.summary.remaining
    assert_accounted(crawl.summary)


@pytest.mark.looptime
async def test_adaptive_rate_halves_the_window_after_a_slow_down() -> None:
    async def limit_once(request: Request, attempt: int) -> Response:
        await asyncio.sleep(0.01)
        if request.params["id"] == "0" and attempt == 1:
            return ok_response(429, {"Retry-After": "1"})
        return ok_response()

    config = CrawlConfig(rates=(Rate(40, 60.0),), adaptive_rate=True, retry=FAST_RETRY)
    crawl = run(NumberSource(BASE), range(10), fetcher=FakeFetcher(limit_once), config=config)
    async with crawl:
        async for _ in crawl:
            pass
    assert crawl.limiter.effective_limits() == (20,)
    assert_accounted(crawl.summary)


@pytest.mark.looptime
async def test_a_sink_can_require_confirmation_before_the_run_starts() -> None:
    from asyncrawl.errors import ConfigError

    crawl = run(NumberSource(BASE), range(3), fetcher=FakeFetcher())
    assert not crawl.confirming
    assert not crawl.started
    crawl.require_confirmation()
    async with crawl:
        async for _ in crawl:
            pass  # nothing confirmed: nothing counts as finished
    assert crawl.summary.ok + crawl.summary.no_data == 0
    assert len(crawl.summary.remaining) == 3
    with pytest.raises(ConfigError, match="already started"):
        crawl.require_confirmation()
