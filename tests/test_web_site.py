"""SiteCrawl: seeds, links, scope, robots.txt, redirects, depth and per-host limits, resume."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from asyncrawl import AiohttpFetcher, CrawlConfig, ItemCodec, Ok, Response, RetryPolicy, run
from asyncrawl.errors import ConfigError
from asyncrawl.limiter import Rate
from asyncrawl.outcomes import Failed, NoData
from asyncrawl.summary import RunSummary
from asyncrawl.testing import FaultServer, HtmlSite
from asyncrawl.web import FetchedPage, Page, SiteCrawl

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


@dataclass
class Crawled:
    summary: RunSummary
    site: HtmlSite
    source: SiteCrawl
    base: str
    pages: dict[str, FetchedPage]


def assert_invariant(summary: RunSummary) -> None:
    assert summary.consistent, summary.to_dict()
    counted = summary.ok + summary.no_data + len(summary.failed) + summary.skipped
    assert summary.planned == counted + len(summary.remaining)


async def _crawl(
    *, pages: int = 15, delay: float = 0.0, max_body_bytes: int = 100_000, **config: object
) -> Crawled:
    site = HtmlSite(pages=pages, big_bytes=300_000, delay=delay)
    options = {"concurrency": 6, "retry": FAST, **config}
    async with (
        FaultServer(handler=site) as server,
        AiohttpFetcher(max_body_bytes=max_body_bytes) as fetcher,
    ):
        source = SiteCrawl([f"{server.url}/site/"])
        await source.prepare(fetcher)
        crawl = run(source, source.seeds(), fetcher=fetcher, config=CrawlConfig(**options))  # type: ignore[arg-type]
        found: dict[str, FetchedPage] = {}
        async with crawl:
            async for result in crawl:
                if isinstance(result.outcome, Ok):
                    found[result.key] = result.outcome.payload
        return Crawled(crawl.summary, site, source, server.url, found)


async def test_the_whole_site_is_crawled_once_per_page_within_scope_and_robots() -> None:
    done = await _crawl(per_host=2, delay=0.01)
    summary, site = done.summary, done.site
    assert_invariant(summary)
    # Every HTML page (reached by links or through the 301) is fetched exactly once.
    for path in site.page_paths():
        assert site.served[path] == 1, path
    assert max(site.served.values()) == 1  # cycles, fragments and ./ ../ links deduplicated
    assert summary.duplicates > 0
    # robots.txt: read once, and the private page never fetched: skipped, not counted.
    assert site.served["/robots.txt"] == 1
    assert "/site/private/secret" not in site.served
    assert done.source.robots_skipped == {f"{done.base}/site/private/secret"}
    # Off-site, mailto: and javascript: links are listed on the page but never crawled.
    index = done.pages[f"{done.base}/site/"]
    assert "http://elsewhere.invalid/page" in index.links
    assert not any(key.startswith("http://elsewhere") for key in summary.remaining)
    assert index.title == "index"
    # Redirects are counted hops: each is one request, and a loop ends where it repeats.
    assert summary.status_counts["http_301"] == 1
    assert summary.status_counts["http_302"] == 2
    assert site.served["/site/loop"] == 1
    assert {f.status for f in summary.failed} >= {"http_404"}
    # The per-host limit held on the server's side.
    assert site.most_at_once <= 2


async def test_a_page_past_the_body_cap_is_fetched_once_and_not_ok() -> None:
    done = await _crawl()
    assert done.site.served["/site/big"] == 1
    assert done.summary.status_counts["body_too_large"] == 1
    assert f"{done.base}/site/big" not in done.pages


async def test_max_depth_stops_at_the_seeds_links() -> None:
    done = await _crawl(max_depth=1)
    served = done.site.served
    assert served["/site/"] == 1
    assert served["/site/p/0"] == 1
    assert served["/site/p/2"] == 1
    assert "/site/p/5" not in served  # depth 2: linked from p/2
    assert "/site/loop2" not in served  # the redirect's target is one level deeper
    assert done.summary.skipped > 0
    assert_invariant(done.summary)


async def test_a_deadline_cut_crawl_resumes_from_its_unfinished_pages() -> None:
    site = HtmlSite(pages=15, delay=0.05)
    async with FaultServer(handler=site) as server, AiohttpFetcher() as fetcher:
        base = server.url
        source = SiteCrawl([f"{base}/site/"])
        await source.prepare(fetcher)
        config = CrawlConfig(concurrency=2, retry=FAST, deadline=0.2, grace=0.01)
        first = run(source, source.seeds(), fetcher=fetcher, config=config)
        async with first:
            finished = {r.key: r.outcome.status async for r in first}
        assert first.summary.remaining
        # The continuation: unfinished pages as JSON, through the ItemCodec.
        assert isinstance(source, ItemCodec)
        carried = json.dumps([source.dump_item(page) for page in first.unfinished_items()])

        again = SiteCrawl([f"{server.url}/site/"])
        await again.prepare(fetcher)
        items = [again.load_item(data) for data in json.loads(carried)]
        done = {key: "ok" for key, status in finished.items() if status == "ok"}
        second = run(
            again,
            items,
            fetcher=fetcher,
            config=CrawlConfig(concurrency=2, retry=FAST),
            done=done,  # type: ignore[arg-type]
        )
        async with second:
            async for _ in second:
                pass
    assert second.summary.remaining == ()
    for path in site.page_paths():
        assert site.served[path] >= 1, path
    # Pages that finished in the first run are not fetched again.
    refetched = [p for p in site.page_paths() if site.served[p] > 1]
    assert all(f"{base}{p}" not in done for p in refetched)
    assert len(refetched) <= 2  # at most the attempts abandoned in flight


# --- classify, without a server ---------------------------------------------------------------


def _prepared(*seeds: str, **options: object) -> SiteCrawl:
    urls = seeds or ("http://a.test/",)
    return SiteCrawl(urls, respect_robots=False, **options)  # type: ignore[arg-type]


def _answer(status: int, body: bytes = b"", **headers: str) -> Response:
    return Response(status=status, headers=headers, body=body)


def test_redirect_hops_are_limited() -> None:
    source = _prepared(max_redirects=2)
    moved = _answer(301, Location="/b")
    first = source.classify(Page("http://a.test/a"), moved)
    assert isinstance(first, NoData)
    assert first.follow == (Page("http://a.test/b", 1),)
    last = source.classify(Page("http://a.test/z", 2), moved)
    assert isinstance(last, Failed)
    assert last.status == "too_many_redirects"


def test_a_redirect_off_site_is_not_followed() -> None:
    outcome = _prepared().classify(Page("http://a.test/a"), _answer(302, Location="http://b.test/"))
    assert isinstance(outcome, NoData)
    assert outcome.follow == ()


def test_allowed_origins_are_followed_and_links_normalised() -> None:
    source = _prepared("http://a.test/", allow=["https://B.test:443/any/path"])
    html = (
        b'<a href="https://b.test/x#f">b</a><a href="http://c.test/">c</a><a href="/y/../z">z</a>'
    )
    outcome = source.classify(
        Page("http://a.test/"), _answer(200, html, **{"Content-Type": "text/html; charset=utf-8"})
    )
    assert isinstance(outcome, Ok)
    assert outcome.follow == (Page("https://b.test/x"), Page("http://a.test/z"))
    assert outcome.payload.links == ("https://b.test/x", "http://c.test/", "http://a.test/z")


def test_forbidden_pages_fail_alone_not_the_run() -> None:
    outcome = _prepared().classify(Page("http://a.test/"), _answer(403))
    assert isinstance(outcome, Failed)


def test_non_html_is_stored_without_links() -> None:
    outcome = _prepared().classify(
        Page("http://a.test/"),
        _answer(200, b'{"a": "<a href=x>"}', **{"Content-Type": "application/json"}),
    )
    assert isinstance(outcome, Ok)
    assert outcome.follow == ()


def test_seeds_need_robots_loaded_first() -> None:
    source = SiteCrawl(["http://a.test/"])
    with pytest.raises(ConfigError) as caught:
        source.seeds()
    assert caught.value.field == "respect_robots"


@pytest.mark.parametrize(
    ("seeds", "field"), [([], "seeds"), (["/relative"], "seeds"), (["ftp://x/"], "seeds")]
)
def test_bad_seeds_name_the_parameter(seeds: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SiteCrawl(seeds)
    assert caught.value.field == field


def test_the_codec_round_trips_through_json() -> None:
    source = _prepared()
    page = Page("http://a.test/x?q=1", 3)
    assert source.load_item(json.loads(json.dumps(source.dump_item(page)))) == page


# --- robots.txt Crawl-delay ---------------------------------------------------------------------


async def test_robots_crawl_delay_spaces_the_requests_to_that_host() -> None:
    site = HtmlSite(pages=3, crawl_delay=5)
    async with FaultServer(handler=site) as server, AiohttpFetcher() as fetcher:
        # The site asks for 5 s between requests; this crawl caps that at 0.3 s.
        source = SiteCrawl([f"{server.url}/site/"], max_crawl_delay=0.3)
        await source.prepare(fetcher)
        assert source.host_rates(f"{server.url}/site/") == (Rate(1, 0.3),)
        config = CrawlConfig(concurrency=6, retry=FAST, max_depth=1)
        async with run(source, source.seeds(), fetcher=fetcher, config=config) as crawl:
            async for _ in crawl:
                pass
        pages = sorted(a.time for a in server.arrivals if a.path != "/robots.txt")
    assert_invariant(crawl.summary)
    assert len(pages) >= 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(pages)]
    # One request per 0.3 s window, each window starting when the previous answer came back.
    assert min(gaps) >= 0.3


def test_crawl_delay_is_off_without_robots_and_its_cap_is_checked() -> None:
    source = SiteCrawl(["http://127.0.0.1:9/"], respect_robots=False)
    assert source.host_rates("http://127.0.0.1:9/") == ()
    with pytest.raises(ConfigError, match="max_crawl_delay"):
        SiteCrawl(["http://127.0.0.1:9/"], max_crawl_delay=0)
