"""The fault server's routes for discovering crawlers: a paged JSON API and an HTML site."""

from __future__ import annotations

import json

from asyncrawl import AiohttpFetcher, Request, Response
from asyncrawl.testing import FaultServer, HtmlSite, PagedApi, route_by_prefix


async def _get(fetcher: AiohttpFetcher, url: str) -> Response:
    return await fetcher.fetch(Request(url=url), timeout=5.0)


async def _walk_api(api: PagedApi) -> tuple[list[str], list[tuple[str, int]]]:
    """Follow every collection's next links, retrying faults; the ids and (page, status)s."""
    ids: list[str] = []
    statuses: list[tuple[str, int]] = []
    async with FaultServer(handler=api) as server, AiohttpFetcher() as fetcher:
        for path in api.seed_paths():
            next_path: str | None = path
            while next_path is not None:
                response = await _get(fetcher, f"{server.url}{next_path}")
                statuses.append((next_path, response.status))
                if response.status != 200:
                    continue  # the same page again: faults end after a few attempts
                page = json.loads(response.body)
                ids += [record["id"] for record in page["items"]]
                next_path = page["next"]
    return ids, statuses


async def test_the_api_pages_through_every_record_with_faults_on_some_pages() -> None:
    api = PagedApi(collections=2, records=20, per_page=6, seed=3, p_503=0.3, p_429=0.3)
    ids, statuses = await _walk_api(api)
    assert sorted(ids) == sorted(f"c{c}-{n}" for c in range(2) for n in range(20))
    codes = {status for _, status in statuses}
    assert {200, 503, 429} <= codes
    assert api.expected_records() == 40


async def test_the_api_faults_depend_on_page_and_attempt_only() -> None:
    plan = {"collections": 2, "records": 20, "per_page": 6, "seed": 3, "p_503": 0.3, "p_429": 0.3}
    _, first = await _walk_api(PagedApi(**plan))  # type: ignore[arg-type]
    _, second = await _walk_api(PagedApi(**plan))  # type: ignore[arg-type]
    assert first == second
    _, other_seed = await _walk_api(PagedApi(**{**plan, "seed": 4}))  # type: ignore[arg-type]
    assert other_seed != first


async def test_a_429_says_when_to_come_back() -> None:
    api = PagedApi(collections=1, records=5, per_page=5, p_503=0.0, p_429=1.0, retry_after=0.25)
    async with FaultServer(handler=api) as server, AiohttpFetcher() as fetcher:
        first = await _get(fetcher, f"{server.url}/api/c0/items")
        second = await _get(fetcher, f"{server.url}/api/c0/items")
    assert first.status == 429
    assert first.headers["Retry-After"] == "0.25"
    assert second.status == 200


async def test_the_site_serves_links_redirects_robots_and_a_big_page() -> None:
    site = HtmlSite(pages=7, big_bytes=300_000)
    async with FaultServer(handler=site) as server, AiohttpFetcher() as fetcher:
        index = await _get(fetcher, f"{server.url}/site/")
        page = await _get(fetcher, f"{server.url}/site/p/2")
        old = await _get(fetcher, f"{server.url}/site/old/3")
        loop = await _get(fetcher, f"{server.url}/site/loop")
        robots = await _get(fetcher, f"{server.url}/robots.txt")
        big = await _get(fetcher, f"{server.url}/site/big")
        missing = await _get(fetcher, f"{server.url}/site/missing")
    assert b'href="../site/p/2"' in index.body
    assert b'href="mailto:' in index.body
    assert b'href="/site/p/5"' in page.body  # child 2n+1
    assert b'href="/site/p/0"' in page.body  # parent: a cycle
    assert (old.status, old.headers["Location"]) == (301, "/site/p/3")
    assert (loop.status, loop.headers["Location"]) == (302, "/site/loop2")
    assert b"Disallow: /site/private/" in robots.body
    assert len(big.body) >= 300_000
    assert "Content-Length" not in big.headers
    assert missing.status == 404
    assert site.page_paths() == ["/site/", *(f"/site/p/{n}" for n in range(7))]


async def test_routes_combine_on_one_server() -> None:
    handler = route_by_prefix({"/api/": PagedApi(p_503=0, p_429=0), "/": HtmlSite()})
    async with FaultServer(handler=handler) as server, AiohttpFetcher() as fetcher:
        api = await _get(fetcher, f"{server.url}/api/c0/items")
        robots = await _get(fetcher, f"{server.url}/robots.txt")
    assert json.loads(api.body)["next_cursor"] == "7"
    assert robots.status == 200
