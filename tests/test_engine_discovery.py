"""Discovery: follow-up items carried on outcomes, deduplicated across the run, with depth and
item limits, and the invariant ``planned == ok + no_data + failed + skipped + remaining``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import looptime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrawl import ItemCodec
from asyncrawl.engine import Crawl, CrawlConfig, run
from asyncrawl.errors import AttemptTimeout
from asyncrawl.http import Request, Response
from asyncrawl.limiter import Rate
from asyncrawl.outcomes import Failed, NoData, Outcome, Transient, Unusable
from asyncrawl.results import ItemResult
from asyncrawl.retry import RetryPolicy
from asyncrawl.summary import RunSummary
from support.engine_sources import FakeFetcher, GraphSource, ok_response, site_graph

FAST = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.5)
OPEN = (Rate(10**9, 1.0),)


async def crawl_all(crawl: Crawl[Any]) -> list[ItemResult[Any]]:
    async with crawl:
        return [result async for result in crawl]


def assert_invariant(summary: RunSummary) -> None:
    assert summary.consistent, summary.to_dict()
    failed = {f.item for f in summary.failed}
    assert not failed & set(summary.remaining)
    assert len(set(summary.remaining)) == len(summary.remaining)


@pytest.mark.looptime
async def test_a_thousand_pages_from_ten_seeds_are_each_fetched_once() -> None:
    links = site_graph(1000, 10, extra_links=3, seed=7)
    fetcher = FakeFetcher(latency=0.05)
    crawl = run(
        GraphSource(links),
        list(range(10)),
        fetcher=fetcher,
        config=CrawlConfig(concurrency=16, rates=OPEN),
    )
    results = await crawl_all(crawl)
    summary = crawl.summary
    assert summary.planned == 1000
    assert summary.ok == 1000
    assert summary.remaining == ()
    assert len(fetcher.attempts) == 1000
    assert set(fetcher.attempts.values()) == {1}
    # Every link to a page already planned is a duplicate: 990 links found new pages.
    assert summary.duplicates == sum(len(t) for t in links.values()) - 990
    discovered = [child for result in results for child in result.discovered]
    assert sorted(discovered) == list(range(10, 1000))  # each child listed by one parent only
    assert_invariant(summary)


@pytest.mark.looptime
async def test_duplicate_seeds_are_counted_not_dropped_silently() -> None:
    crawl = run(GraphSource({}), [1, 2, 1, 3, 2], fetcher=FakeFetcher())
    await crawl_all(crawl)
    assert crawl.summary.planned == 3
    assert crawl.summary.duplicates == 2
    assert_invariant(crawl.summary)


@pytest.mark.looptime
async def test_max_depth_and_max_items_count_what_they_leave_out_as_skipped() -> None:
    chain = {n: (n + 1, n + 2) for n in range(100)}
    crawl = run(GraphSource(chain), [0], fetcher=FakeFetcher(), config=CrawlConfig(max_depth=3))
    await crawl_all(crawl)
    summary = crawl.summary
    assert summary.skipped > 0
    assert summary.ok == 7  # 0 | 1 2 | 3 4 | 5 6 (depths 0..3 of a chain with shortcuts)
    assert_invariant(summary)

    fetcher = FakeFetcher()
    crawl = run(GraphSource(chain), [0], fetcher=fetcher, config=CrawlConfig(max_items=20))
    await crawl_all(crawl)
    assert crawl.summary.ok == 20
    assert len(fetcher.attempts) == 20
    assert crawl.summary.skipped > 0
    assert_invariant(crawl.summary)


@pytest.mark.looptime
async def test_max_items_does_not_read_an_endless_input_past_the_cap() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    crawl = run(GraphSource({}), endless(), fetcher=FakeFetcher(), config=CrawlConfig(max_items=50))
    await crawl_all(crawl)
    assert crawl.summary.ok == 50
    assert crawl.summary.skipped == 1  # the one item read to learn the cap was reached
    assert crawl.position == 51
    assert_invariant(crawl.summary)


@pytest.mark.looptime
async def test_a_deadline_leaves_discovered_items_unfinished_and_a_resume_finishes_them() -> None:
    links = site_graph(300, 10, extra_links=2, seed=3)
    seeds = list(range(10))
    fetcher = FakeFetcher(latency=1.0)
    config = CrawlConfig(concurrency=4, rates=OPEN, deadline=10.5, grace=0.2)
    first = run(GraphSource(links), seeds, fetcher=fetcher, config=config)
    results = await crawl_all(first)
    part = first.summary
    assert part.remaining
    assert_invariant(part)
    unfinished = first.unfinished_items()
    source = GraphSource(links)
    # Discovered work goes first, so some seeds were never started: a list input names them
    # in `remaining` too, and `position` says where they begin.
    assert first.position < len(seeds)
    unstarted = [source.key(seed) for seed in seeds[first.position :]]
    assert {source.key(i) for i in unfinished} | set(unstarted) == set(part.remaining)
    finished = {r.key: "ok" for r in results}
    fetched_before = dict(fetcher.attempts)

    # The resume: unfinished items first, then the input from where the first run stopped.
    rest = seeds[first.position :]
    second = run(
        source,
        [*unfinished, *rest],
        fetcher=fetcher,
        config=CrawlConfig(concurrency=4, rates=OPEN),
        done=finished,  # type: ignore[arg-type]
    )
    await crawl_all(second)
    assert second.summary.remaining == ()
    assert len(fetcher.attempts) == 300
    refetched = [page for page, n in fetcher.attempts.items() if n > 1]
    assert len(refetched) <= 4  # at most the attempts abandoned in flight
    assert all(page not in {k.removeprefix("page-") for k in finished} for page in refetched)
    assert fetched_before


@pytest.mark.looptime
async def test_an_async_input_that_discovers_and_ends() -> None:
    async def seeds() -> AsyncIterator[int]:
        for n in range(3):
            await asyncio.sleep(0.5)
            yield n

    links = {0: (10, 11), 1: (11, 12), 2: (12, 0)}
    crawl = run(GraphSource(links), seeds(), fetcher=FakeFetcher())
    await crawl_all(crawl)
    assert crawl.summary.planned == 6
    assert crawl.summary.duplicates == 3
    assert crawl.summary.ok == 6
    assert_invariant(crawl.summary)


def test_a_discovering_source_is_an_item_codec() -> None:
    source = GraphSource({})
    assert isinstance(source, ItemCodec)
    assert source.load_item(source.dump_item(5)) == 5


# -- property: the invariant holds under random discovery, faults and deadlines ---------------

_FAULTS = st.sampled_from(["ok", "ok", "ok", "no_data", "transient", "unusable", "failed", "hang"])


@st.composite
def _scenarios(draw: st.DrawFn) -> dict[str, Any]:
    pages = draw(st.integers(1, 40))
    links = {
        page: tuple(draw(st.lists(st.integers(0, pages - 1), max_size=4))) for page in range(pages)
    }
    faults = {(page, attempt): draw(_FAULTS) for page in range(pages) for attempt in (1, 2, 3)}
    return {
        "links": links,
        "seeds": draw(st.lists(st.integers(0, pages - 1), min_size=1, max_size=8)),
        "faults": faults,
        "concurrency": draw(st.integers(1, 6)),
        "deadline": draw(st.none() | st.floats(0.05, 6.0)),
        "max_depth": draw(st.none() | st.integers(0, 4)),
        "max_items": draw(st.none() | st.integers(0, 30)),
        "confirm": draw(st.booleans()),
        "lazy": draw(st.booleans()),
    }


async def _run_scenario(s: dict[str, Any]) -> tuple[RunSummary, list[int], FakeFetcher]:
    async def respond(request: Request, attempt: int) -> Response:
        page = int(request.params["id"])
        await asyncio.sleep(0.1 + 0.01 * page)
        if s["faults"].get((page, attempt), "ok") == "hang":
            raise AttemptTimeout("no answer", url=request.display_url, status="timeout")
        return ok_response()

    def verdict(page: int, attempt: int) -> Outcome | None:
        fault = s["faults"].get((page, attempt), "ok")
        if fault == "no_data":
            return NoData(follow=s["links"][page])
        if fault == "transient":
            return Transient(reason="503", status="http_503")
        if fault == "unusable":
            return Unusable(reason="HTML", status="not_json")
        if fault == "failed":
            return Failed(reason="gone", status="http_404")
        return None

    fetcher = FakeFetcher(respond)
    source = GraphSource(s["links"], verdict, fetcher)
    seeds: list[int] = s["seeds"]

    async def lazily() -> AsyncIterator[int]:
        for seed in seeds:
            yield seed

    config = CrawlConfig(
        concurrency=s["concurrency"],
        rates=OPEN,
        retry=FAST,
        deadline=s["deadline"],
        grace=0.05,
        max_depth=s["max_depth"],
        max_items=s["max_items"],
    )
    crawl = run(
        source,
        lazily() if s["lazy"] else seeds,
        fetcher=fetcher,
        config=config,
        confirm=s["confirm"],
    )
    async with crawl:
        async for result in crawl:
            if s["confirm"] and result.key.endswith(("1", "3")):
                continue  # a sink that failed these writes
            if s["confirm"]:
                crawl.confirm(result)
    return crawl.summary, [source.dump_item(i) for i in crawl.unfinished_items()], fetcher


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenarios())
def test_property_every_planned_key_ends_in_exactly_one_bucket(scenario: dict[str, Any]) -> None:
    loop = looptime.new_event_loop()
    try:
        summary, unfinished, fetcher = loop.run_until_complete(_run_scenario(scenario))
    finally:
        loop.close()
    assert_invariant(summary)
    # Planned keys are the distinct seeds and discovered pages: never more than the site.
    assert summary.planned <= len(scenario["links"])
    # Nothing is fetched more often than the retry policy allows.
    assert max(fetcher.attempts.values(), default=0) <= FAST.max_attempts
    # The unfinished items are among the remaining keys (the rest of a list input is too).
    remaining = set(summary.remaining)
    assert {f"page-{page}" for page in unfinished} <= remaining
    if scenario["deadline"] is None:
        assert remaining == {f"page-{page}" for page in unfinished}


@pytest.mark.looptime
async def test_the_engine_acloses_an_endless_async_input_it_stopped_reading() -> None:
    closed = asyncio.Event()
    read = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal read
        try:
            while True:
                yield read
                read += 1
        finally:
            closed.set()  # runs only when the generator is closed (it never ends by itself)

    config = CrawlConfig(max_items=10)
    crawl = run(GraphSource({}), endless(), fetcher=FakeFetcher(), config=config)
    await crawl_all(crawl)
    assert closed.is_set()
    assert crawl.summary.ok == 10
    assert crawl.position == 11  # ten crawled, one read to learn the cap was reached
    assert_invariant(crawl.summary)


@pytest.mark.looptime
async def test_discovered_work_is_not_held_up_by_a_slow_async_input() -> None:
    async def one_seed_then_silence() -> AsyncIterator[int]:
        yield 0
        await asyncio.sleep(1000.0)
        yield 1

    async def respond(request: Request, attempt: int) -> Response:
        page = int(request.params["id"])
        await asyncio.sleep({1: 5.0, 2: 0.1, 3: 0.1}.get(page, 1.0))
        return ok_response()

    # Page 1 answers late and finds 12 pages; pages 2 and 3 answer at once and find nothing.
    links = {0: (1, 2, 3), 1: tuple(range(100, 112))}
    loop = asyncio.get_running_loop()
    start = loop.time()
    last = 0.0
    config = CrawlConfig(concurrency=4, rates=OPEN, deadline=500.0)
    source = GraphSource(links)
    crawl = run(source, one_seed_then_silence(), fetcher=FakeFetcher(respond), config=config)
    async with crawl:
        async for _ in crawl:
            last = loop.time() - start
    assert crawl.summary.ok == 1 + 3 + 12
    # Seed at 1 s, page 1 at 6 s; then its 12 pages on the 3 workers not waiting for the input
    # (4 s), not on one worker (12 s) while the idle ones queue behind the blocked input.
    assert last <= 10.5
