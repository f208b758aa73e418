"""The contenders, each run in its own process: ``python -m benchmarks.contenders NAME SPEC``.

``SPEC`` is a JSON file (see :func:`benchmarks.run.spec_for`): the server's URL, the items
(``corp_code``, ``bsns_year``, ``reprt_code``, ``fs_div``), the concurrency, the rate window
the server enforces (or none), the per-attempt timeout and the attempts allowed. Each
contender crawls every item once and prints one JSON line: its own elapsed time around the
crawl (the runner adds the process's wall time and peak RSS), and how many items ended ``ok``
(rows), ``no_data`` (013) or ``failed`` (the contender gave up and said so). What is neither
was lost: dropped without a word. Each peer is set up as its documentation recommends for
this job; :data:`SETTINGS` says how, and the report publishes it beside the figures.

The peers read the body and decide like a careful user of that library would: 000 is data,
013 no data, 020 (the window is full) and 800/900 or a body that is not JSON are worth
another try, anything else is a failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["SETTINGS", "main"]

#: A made-up key of the right shape (the stand-in accepts any 40 letters and digits).
KEY: Final = "bench0bench1bench2bench3bench4bench5benc"
#: Published beside the figures: how each contender was configured.
SETTINGS: Final[dict[str, str]] = {
    "old way": "one request at a time, 2 s pause between companies, aiohttp with a 30 s "
    "timeout, no retries; an error is logged and the item skipped (lost)",
    "aiohttp+semaphore": "asyncio.Semaphore(concurrency), one ClientSession, ClientTimeout("
    "total=timeout), up to `attempts` tries with exponential back-off (0.5 s x 2^n, full "
    "jitter); no rate limiter (what a plain script has)",
    "aiometer": "aiometer.run_on_each(max_at_once=concurrency, max_per_second=N/W), the "
    "same request and retry loop as aiohttp+semaphore",
    "scrapy": "CrawlerProcess; CONCURRENT_REQUESTS(_PER_DOMAIN)=concurrency, DOWNLOAD_TIMEOUT"
    "=timeout, RETRY_TIMES=attempts-1 (RetryMiddleware, default RETRY_HTTP_CODES), "
    "DOWNLOAD_DELAY=W/N when limited (Scrapy's documented way to respect a rate), "
    "AUTOTHROTTLE off, ROBOTSTXT_OBEY off; 020 resent with get_retry_request()",
    "crawlee": "HttpCrawler (no browser), its default ImpitHttpClient(timeout=timeout), "
    "max_request_retries=attempts-1, ConcurrencySettings(min=desired=max=concurrency, "
    "max_tasks_per_minute=60 N/W when limited); 020 raised for a retry",
    "asyncrawl (library)": "run_statements_job(): OpenDartSource(api_key, base_url) (a 020 "
    "is the daily quota and stops the run), DirectoryStore, CrawlConfig(concurrency, "
    "rates=(N per W,) or the defaults 900/1m+18000/1d, attempt_timeout=timeout, "
    "hedge_after='auto'); writes gzip JSONL + journal + summary. The limiter holds each "
    "slot while its request is in flight, so the window holds at the server's arrivals "
    "with no slack",
    "asyncrawl (CLI)": "`asyncrawl crawl` as a subprocess, the same settings through flags "
    "(--rate N/Ws, --attempt-timeout, --hedge-after auto); wall time includes interpreter "
    "start, imports and tear-down",
}


def _params(item: list[str]) -> dict[str, str]:
    corp_code, year, reprt_code, fs_div = item
    return {
        "crtfc_key": KEY,
        "corp_code": corp_code,
        "bsns_year": year,
        "reprt_code": reprt_code,
        "fs_div": fs_div,
    }


def _url(spec: dict[str, Any], item: list[str]) -> str:
    query = "&".join(f"{k}={v}" for k, v in _params(item).items())
    return f"{spec['base_url']}fnlttSinglAcntAll.json?{query}"


def _verdict(body: bytes) -> str:
    """``ok``, ``no_data``, ``retry`` or ``failed`` for one 200 answer."""
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        return "retry"
    if status == "000":
        return "ok"
    if status == "013":
        return "no_data"
    if status in ("020", "800", "900"):
        return "retry"
    return "failed"


class _Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.no_data = 0
        self.failed = 0

    def add(self, verdict: str) -> None:
        if verdict == "ok":
            self.ok += 1
        elif verdict == "no_data":
            self.no_data += 1
        elif verdict == "failed":
            self.failed += 1

    def result(self, elapsed: float, **extra: Any) -> dict[str, Any]:
        return {
            "elapsed": elapsed,
            "ok": self.ok,
            "no_data": self.no_data,
            "failed": self.failed,
            **extra,
        }


# --- the old way --------------------------------------------------------------------------


async def old_way(spec: dict[str, Any]) -> dict[str, Any]:
    """One request at a time, a fixed pause between companies, errors skipped."""
    import aiohttp

    tally = _Tally()
    pause = float(spec.get("old_pause", 2.0))
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        previous = None
        for item in spec["items"]:
            if previous is not None and item[0] != previous:
                await asyncio.sleep(pause)
            previous = item[0]
            try:
                async with session.get(_url(spec, item)) as answer:
                    body = await answer.read()
                    if answer.status == 200:
                        verdict = _verdict(body)
                        # The old crawler stored whatever came back: a 020 or a 503 page was
                        # simply not data, and nobody noticed (lost, not failed).
                        if verdict in ("ok", "no_data"):
                            tally.add(verdict)
            except (aiohttp.ClientError, TimeoutError):
                pass
    return tally.result(time.perf_counter() - started)


# --- plain aiohttp + semaphore, aiometer ----------------------------------------------------


def _retrying_get(
    spec: dict[str, Any], session: Any, tally: _Tally
) -> Callable[[list[str]], Awaitable[None]]:
    import aiohttp

    attempts = int(spec["attempts"])
    window = spec.get("rate")

    async def get(item: list[str]) -> None:
        url = _url(spec, item)
        for attempt in range(attempts):
            verdict = "retry"
            try:
                async with session.get(url) as answer:
                    body = await answer.read()
                if answer.status == 200:
                    verdict = _verdict(body)
                elif answer.status < 500 and answer.status != 429:
                    verdict = "failed"
                if verdict != "retry":
                    tally.add(verdict)
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt + 1 < attempts:
                # 020 means the window is full: a user would wait a window's worth at most.
                cap = float(window[1]) if window else 8.0
                await asyncio.sleep(random.uniform(0, min(cap, 0.5 * 2**attempt)))
        tally.add("failed")

    return get


async def aiohttp_semaphore(spec: dict[str, Any]) -> dict[str, Any]:
    """A plain script: one session, a semaphore, a retry loop."""
    import aiohttp

    tally = _Tally()
    gate = asyncio.Semaphore(int(spec["concurrency"]))
    timeout = aiohttp.ClientTimeout(total=float(spec["timeout"]))
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        get = _retrying_get(spec, session, tally)

        async def one(item: list[str]) -> None:
            async with gate:
                await get(item)

        await asyncio.gather(*(one(item) for item in spec["items"]))
    return tally.result(time.perf_counter() - started)


async def aiometer_run(spec: dict[str, Any]) -> dict[str, Any]:
    """aiometer's scheduler around the same request and retry loop."""
    import aiohttp
    import aiometer

    tally = _Tally()
    timeout = aiohttp.ClientTimeout(total=float(spec["timeout"]))
    window = spec.get("rate")
    per_second = float(window[0]) / float(window[1]) if window else None
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        get = _retrying_get(spec, session, tally)
        await aiometer.run_on_each(
            get,
            spec["items"],
            max_at_once=int(spec["concurrency"]),
            max_per_second=per_second,
        )
    return tally.result(time.perf_counter() - started)


# --- Scrapy --------------------------------------------------------------------------------


def scrapy_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Scrapy's CrawlerProcess with its own retry middleware and download delay."""
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.downloadermiddlewares.retry import get_retry_request

    tally = _Tally()
    window = spec.get("rate")

    class Statements(scrapy.Spider):  # type: ignore[misc]
        name = "statements"

        async def start(self) -> Any:
            for item in spec["items"]:
                yield scrapy.Request(_url(spec, item), callback=self.parse, errback=self.failed)

        def parse(self, response: Any) -> Any:
            verdict = _verdict(response.body)
            if verdict == "retry":
                again = get_retry_request(response.request, spider=self, reason="dart status")
                if again is None:
                    tally.add("failed")
                else:
                    yield again
                return
            tally.add(verdict)

        def failed(self, failure: Any) -> None:
            tally.add("failed")

    settings = {
        "CONCURRENT_REQUESTS": int(spec["concurrency"]),
        "CONCURRENT_REQUESTS_PER_DOMAIN": int(spec["concurrency"]),
        "DOWNLOAD_TIMEOUT": float(spec["timeout"]),
        "RETRY_ENABLED": True,
        "RETRY_TIMES": int(spec["attempts"]) - 1,
        "DOWNLOAD_DELAY": float(window[1]) / float(window[0]) if window else 0,
        "RANDOMIZE_DOWNLOAD_DELAY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "ERROR",
        "TELNETCONSOLE_ENABLED": False,
        "COOKIES_ENABLED": False,
    }
    process = CrawlerProcess(settings=settings)
    process.crawl(Statements)
    started = time.perf_counter()
    process.start()
    return tally.result(time.perf_counter() - started)


# --- Crawlee for Python --------------------------------------------------------------------


async def crawlee_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Crawlee's HttpCrawler, no browser, its own retries and tasks-per-minute limit."""
    from crawlee import ConcurrencySettings, Request
    from crawlee.configuration import Configuration
    from crawlee.crawlers import HttpCrawler, HttpCrawlingContext
    from crawlee.http_clients import ImpitHttpClient
    from crawlee.storage_clients import MemoryStorageClient

    tally = _Tally()
    window = spec.get("rate")
    concurrency = int(spec["concurrency"])
    settings = ConcurrencySettings(
        min_concurrency=concurrency,
        desired_concurrency=concurrency,
        max_concurrency=concurrency,
        max_tasks_per_minute=(60.0 * float(window[0]) / float(window[1]))
        if window
        else float("inf"),
    )
    crawler = HttpCrawler(
        # Crawlee's default client (impit); the timeout goes to its AsyncClient.
        http_client=ImpitHttpClient(timeout=float(spec["timeout"])),
        max_request_retries=int(spec["attempts"]) - 1,
        concurrency_settings=settings,
        configuration=Configuration(purge_on_start=True, log_level="ERROR"),
        storage_client=MemoryStorageClient(),
    )

    async def handle(context: HttpCrawlingContext) -> None:
        verdict = _verdict(await context.http_response.read())
        if verdict == "retry":
            raise RuntimeError("DART asked for a retry")  # Crawlee retries what raises
        tally.add(verdict)

    async def give_up(context: Any, error: Exception) -> None:
        tally.add("failed")

    crawler.router.default_handler(handle)
    crawler.failed_request_handler(give_up)

    requests = [Request.from_url(_url(spec, item)) for item in spec["items"]]
    started = time.perf_counter()
    await crawler.run(requests)
    return tally.result(time.perf_counter() - started)


# --- asyncrawl as a library ----------------------------------------------------------------


def asyncrawl_config(spec: dict[str, Any]) -> Any:
    """The CrawlConfig the library contender uses (the CLI gets the same through flags)."""
    import dataclasses

    from asyncrawl.engine import CrawlConfig
    from asyncrawl.limiter import DEFAULT_RATES, Rate

    window = spec.get("rate")
    fields = {f.name for f in dataclasses.fields(CrawlConfig)}
    options: dict[str, Any] = {
        "concurrency": int(spec["concurrency"]),
        "rates": (Rate(int(window[0]), float(window[1])),) if window else DEFAULT_RATES,
        "attempt_timeout": float(spec["timeout"]),
    }
    for name, value in spec.get("asyncrawl_options", {}).items():
        if name in fields:
            options[name] = value
    return CrawlConfig(**options)


async def asyncrawl_library(spec: dict[str, Any]) -> dict[str, Any]:
    """asyncrawl's statements job, in process, writing the contract's layout."""
    from asyncrawl.jobs.opendart import run_statements_job
    from asyncrawl.sinks import open_store
    from asyncrawl.sources.opendart import Company, OpenDartSource, StatementItem

    names = {c["corp_code"]: c for c in spec["companies"]}
    items = [
        StatementItem(
            company=Company(
                corp_code=corp,
                stock_code=names[corp].get("stock_code") or None,
                corp_name=names[corp].get("corp_name") or None,
            ),
            bsns_year=int(year),
            reprt_code=reprt,
            fs_div=fs_div,
        )
        for corp, year, reprt, fs_div in spec["items"]
    ]
    # 020 is OpenDART's daily quota (the run stops); past the stand-in's window it blocks.
    source = OpenDartSource(api_key=KEY, base_url=spec["base_url"])
    config = asyncrawl_config(spec)
    started = time.perf_counter()
    async with open_store(spec["out"]) as store:
        result = await run_statements_job(
            items, source=source, store=store, run_id="bench", config=config, total=len(items)
        )
    elapsed = time.perf_counter() - started
    summary = result.summary
    return {
        "elapsed": elapsed,
        "ok": summary.ok,
        "no_data": summary.no_data,
        "failed": len(summary.failed),
        "remaining": len(summary.remaining),
        "client_requests": summary.requests,
        "client_retries": summary.retries,
        "client_hedges": getattr(summary, "hedges", None),
    }


CONTENDERS: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "old way": old_way,
    "aiohttp+semaphore": aiohttp_semaphore,
    "aiometer": aiometer_run,
    "scrapy": scrapy_run,
    "crawlee": crawlee_run,
    "asyncrawl (library)": asyncrawl_library,
}


def main(argv: list[str]) -> int:
    """Run contender ``argv[0]`` on the spec file ``argv[1]``; print one JSON line."""
    name, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    function = CONTENDERS[name]
    outcome = function(spec)
    if asyncio.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    print("RESULT " + json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
