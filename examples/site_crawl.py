"""Crawl web sites from seed URLs: links followed, robots.txt kept, per-host and depth limits.

    python examples/site_crawl.py                          # two local sites on 127.0.0.1
    python examples/site_crawl.py --url https://example.com/ --depth 2 --per-host 2

With no ``--url`` it starts two small HTML sites (asyncrawl's fault server, two ports: two
hosts) and crawls both from their index pages. Links are followed within each seed's origin,
robots.txt is read first (one page is disallowed and skipped), redirects become counted hops,
a page past the body cap fails alone. ``--depth`` is the engine's ``max_depth`` and
``--per-host`` its per-host concurrency limit. Prints each page, the run summary and what
robots.txt skipped.

Only the public asyncrawl API is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from asyncrawl import AiohttpFetcher, CrawlConfig, Ok, RetryPolicy, RunSummary, run
from asyncrawl.testing import FaultPlan, FaultServer, HtmlSite
from asyncrawl.web import SiteCrawl


async def crawl_sites(
    seeds: Sequence[str],
    *,
    depth: int | None = 2,
    per_host: int = 2,
    concurrency: int = 8,
    max_body_bytes: int = 1024 * 1024,
) -> tuple[RunSummary, SiteCrawl]:
    """Crawl from ``seeds``; the run summary and the Source (for what robots.txt skipped)."""
    agent = "asyncrawl-example/1"
    site = SiteCrawl(seeds, user_agent=agent, keep_body=False)
    config = CrawlConfig(
        concurrency=concurrency,
        per_host=per_host,
        max_depth=depth,
        retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.5),
        attempt_timeout=10,
        deadline=120,
    )
    async with AiohttpFetcher(user_agent=agent, max_body_bytes=max_body_bytes) as fetcher:
        await site.prepare(fetcher)  # robots.txt of every origin, through the same fetcher
        async with run(site, site.seeds(), fetcher=fetcher, config=config) as crawl:
            async for result in crawl:
                outcome = result.outcome
                if isinstance(outcome, Ok):
                    page = outcome.payload
                    print(f"  {page.status} {result.key} {page.title!r} +{len(result.discovered)}")
                else:
                    print(f"  {outcome.status} {result.key}")
    return crawl.summary, site


async def _with_local_sites(**options: int | None) -> tuple[RunSummary, SiteCrawl]:
    async with AsyncExitStack() as stack:
        seeds = []
        for _ in range(2):
            site = HtmlSite(pages=15, big_bytes=2 * 1024 * 1024, delay=0.01)
            server = FaultServer(FaultPlan(latency=0.005), handler=site)
            await stack.enter_async_context(server)
            seeds.append(f"{server.url}/site/")
        print(f"serving two sites: {' '.join(seeds)}")
        return await crawl_sites(seeds, **options)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; the exit code is 0 unless the crawl was stopped (a fatal answer)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="a seed URL (repeatable)")
    parser.add_argument("--depth", type=int, default=2, help="links deep from a seed (-1: any)")
    parser.add_argument("--per-host", type=int, default=2, help="requests at once per host")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once in all")
    args = parser.parse_args(argv)
    options = {
        "depth": None if args.depth < 0 else args.depth,
        "per_host": args.per_host,
        "concurrency": args.concurrency,
    }
    if args.url:
        summary, site = asyncio.run(crawl_sites(args.url, **options))
    else:
        summary, site = asyncio.run(_with_local_sites(**options))
    print(f"skipped by robots.txt: {len(site.robots_skipped)} {sorted(site.robots_skipped)}")
    print(json.dumps(summary.to_dict(), indent=2))
    return 0 if summary.fatal is None else 1


if __name__ == "__main__":
    sys.exit(main())
