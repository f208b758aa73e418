"""100,000 items through the library: ``python -m benchmarks.bulk BASE_URL ITEMS``.

A tiny Source (``GET {base}item?id=n``, every 200 is ``Ok``) fed a lazy generator, so what
grows with the run is the engine's own bookkeeping (the seen-set, the summary), not the
input. Prints one ``RESULT`` line: elapsed, items/s and the counts; the runner reads the
peak RSS off the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from asyncrawl.engine import CrawlConfig, run
from asyncrawl.http import AiohttpFetcher, Request, Response
from asyncrawl.limiter import Rate
from asyncrawl.outcomes import Ok, Outcome


class _Items:
    def __init__(self, base: str) -> None:
        self.url = f"{base}item"

    def key(self, item: int) -> str:
        return str(item)

    def request(self, item: int) -> Request:
        return Request(url=self.url, params={"id": str(item)})

    def classify(self, item: int, response: Response) -> Outcome:
        return Ok(payload=None)


async def bulk(base: str, count: int) -> dict[str, Any]:
    """Crawl ``count`` items at concurrency 64 with no rate limit worth the name."""
    config = CrawlConfig(concurrency=64, rates=(Rate(10_000_000, 1.0),))
    started = time.perf_counter()
    async with (
        AiohttpFetcher() as fetcher,
        run(_Items(base), (n for n in range(count)), fetcher=fetcher, config=config) as crawl,
    ):
        async for _result in crawl:
            pass
    elapsed = time.perf_counter() - started
    summary = crawl.summary
    return {
        "elapsed": elapsed,
        "items_per_s": count / elapsed,
        "ok": summary.ok,
        "no_data": summary.no_data,
        "failed": len(summary.failed),
        "remaining": len(summary.remaining),
    }


def main(argv: list[str]) -> int:
    """``BASE_URL ITEMS``."""
    base, count = argv[0], int(argv[1])
    print("RESULT " + json.dumps(asyncio.run(bulk(base, count))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
