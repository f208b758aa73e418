"""Crawl a cursor-paged JSON API: each page's "next" link is discovered while crawling.

    python examples/paginated_api.py                      # against a local fault server
    python examples/paginated_api.py --url https://api.example.com/v1/items

With no ``--url`` it starts asyncrawl's fault server on 127.0.0.1 serving three collections of
paged records, some pages answering 503 or 429 first, and crawls every collection's first page
as a seed. Every later page is found in the answer before it (``Ok(follow=...)``), deduplicated
and counted by the engine. Prints the records collected and the run summary; exits 0 when
nothing failed or remains.

Only the public asyncrawl API is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from asyncrawl import AiohttpFetcher, CrawlConfig, Ok, Rate, RetryPolicy, RunSummary, run
from asyncrawl.testing import FaultServer, PagedApi
from asyncrawl.web import PagedJson


async def crawl_api(seeds: Sequence[str], *, concurrency: int = 4) -> tuple[RunSummary, int]:
    """Crawl every page reachable from ``seeds``; the summary and how many records came back."""
    source = PagedJson(records="items", next_link="next")
    config = CrawlConfig(
        concurrency=concurrency,
        rates=(Rate(50, 1.0),),  # at most 50 requests in any second
        retry=RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.5),
        slowdown_pause=0.2,
        deadline=60,
    )
    records = 0
    async with AiohttpFetcher(user_agent="asyncrawl-example/1") as fetcher:
        crawl = run(source, list(seeds), fetcher=fetcher, config=config)
        async with crawl:
            async for result in crawl:
                if isinstance(result.outcome, Ok):
                    records += len(result.outcome.payload)
                    print(f"  {result.key}: {len(result.outcome.payload)} records")
    return crawl.summary, records


async def _with_local_api() -> tuple[RunSummary, int]:
    api = PagedApi(collections=3, records=40, per_page=6, seed=5, p_503=0.2, p_429=0.1)
    async with FaultServer(handler=api) as server:
        print(f"serving a paged API at {server.url} ({api.expected_records()} records)")
        return await crawl_api([f"{server.url}{path}" for path in api.seed_paths()])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; the exit code is 0 when every page finished and none failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="a first page to start from (repeatable)")
    args = parser.parse_args(argv)
    if args.url:
        summary, records = asyncio.run(crawl_api(args.url))
    else:
        summary, records = asyncio.run(_with_local_api())
    print(f"records: {records}")
    print(json.dumps(summary.to_dict(), indent=2))
    return 0 if not summary.failed and not summary.remaining else 1


if __name__ == "__main__":
    sys.exit(main())
