"""``asyncrawl demo``: the old crawler and asyncrawl side by side, with no key and no network.

It starts the OpenDART stand-in (:mod:`asyncrawl.testing.opendart`) on 127.0.0.1 with
realistic latency, some no-data answers, occasional 503s and a rate window that answers 020
past it, then crawls the same companies twice: the old way (one request at a time, a 2 s pause
between companies, as the crawler this project replaces did) and asyncrawl's way (16 at a time
behind the 900/1m + 18000/1d limiter, retries, written to ``--out`` in the contract's layout).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from .engine import CrawlConfig
from .jobs.opendart import run_statements_job
from .limiter import DEFAULT_RATES
from .sinks import new_run_id, open_store
from .sources.opendart import Company, OpenDartSource, StatementItem, plan_items
from .testing.opendart import DEMO_COMPANIES, OpenDartStandIn, realistic_plan

__all__ = ["DEMO_KEY", "run_demo"]

#: A made-up key of the right shape: the stand-in accepts it, OpenDART would not.
DEMO_KEY = "demo0demo1demo2demo3demo4demo5demo6demo7"
_YEARS = (2023, 2024)


async def _old_way(
    base_url: str, companies: list[Company], items: list[StatementItem], pause: float
) -> int:
    """The replaced crawler: one request at a time, a fixed pause between companies."""
    requests = 0
    async with aiohttp.ClientSession() as session:
        for index, company in enumerate(companies):
            if index:
                await asyncio.sleep(pause)
            for item in (i for i in items if i.company.corp_code == company.corp_code):
                params = {
                    "crtfc_key": DEMO_KEY,
                    "corp_code": company.corp_code,
                    "bsns_year": str(item.bsns_year),
                    "reprt_code": item.reprt_code,
                    "fs_div": item.fs_div,
                }
                requests += 1
                try:
                    async with session.get(base_url + "fnlttSinglAcntAll.json", params=params) as r:
                        await r.read()
                except aiohttp.ClientError:
                    pass  # the old crawler logged and moved on: that item was simply lost
    return requests


async def run_demo(*, out: Path, quick: bool = False) -> int:
    """Run the comparison; returns the crawl's exit code."""
    companies = [
        Company(
            corp_code=c["corp_code"], stock_code=c["stock_code"] or None, corp_name=c["corp_name"]
        )
        for c in DEMO_COMPANIES[: 3 if quick else 10]
    ]
    pause = 0.2 if quick else 2.0
    items = list(plan_items(companies, _YEARS, "quarter"))
    print(
        f"asyncrawl demo: {len(companies)} companies x {len(_YEARS)} years x 4 reports x "
        f"CFS/OFS = {len(items)} requests against the OpenDART stand-in on 127.0.0.1"
    )
    async with OpenDartStandIn(plan=realistic_plan(seed=7), corp_codes=DEMO_COMPANIES) as server:
        base_url = f"{server.url}/api/"
        print(f"1/2 the old way: one request at a time, {pause:g} s between companies ...")
        started = time.monotonic()
        await _old_way(base_url, companies, items, pause)
        old_seconds = time.monotonic() - started

        print("2/2 asyncrawl: 16 at a time within 900/1m and 18000/1d, with retries ...")
        source = OpenDartSource(api_key=DEMO_KEY, base_url=base_url)
        run_id = new_run_id()
        started = time.monotonic()
        async with open_store(str(out)) as store:
            result = await run_statements_job(
                items,
                source=source,
                store=store,
                run_id=run_id,
                config=CrawlConfig(concurrency=16, rates=DEFAULT_RATES),
                total=len(items),
            )
        new_seconds = time.monotonic() - started
    summary = result.summary
    print()
    print(f"old way:   {old_seconds:6.1f} s")
    print(f"asyncrawl: {new_seconds:6.1f} s   ({old_seconds / max(new_seconds, 1e-9):.1f}x faster)")
    print(
        f"items: planned {summary.planned}, ok {summary.ok}, no data {summary.no_data}, "
        f"failed {len(summary.failed)}, remaining {len(summary.remaining)}; "
        f"{summary.requests} requests, {summary.retries} retries"
    )
    print(f"data:    {out / 'data'}/year=*/report=*/fs=*/*.jsonl.gz")
    print(f"summary: {out / result.summary_key}")
    print(
        "full benchmark (Scrapy, Crawlee, aiometer, plain aiohttp; faults, rate windows, "
        "scale): make benchmark  (docs/BENCHMARKS.md)"
    )
    if result.fatal is not None or summary.failed or summary.remaining:
        return 1
    return 0
