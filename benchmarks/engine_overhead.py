"""How much the engine costs per request, against plain aiohttp doing the same work.

A no-latency fault server (no faults) runs in its own process. Two contenders send the same
``--requests`` GETs to it at the same ``--concurrency`` and read every body:

* baseline: one ``aiohttp.ClientSession`` (same connector as :class:`AiohttpFetcher`) and an
  ``asyncio.Semaphore(concurrency)``, one task per request, ``asyncio.gather``;
* engine: :func:`asyncrawl.engine.run` with a tiny Source, :class:`AiohttpFetcher`, and limits
  set so high that the rate limiter never waits.

After a warm-up, the runs alternate (baseline, engine, baseline, ...) ``--runs`` times each, so
drift on the machine (the server shares its CPUs) hits both alike. The script prints the
median requests/s of each and their ratio, and exits 1 when the engine reaches less than 0.9x
the baseline. Run it as ``python benchmarks/engine_overhead.py`` or ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import aiohttp

from asyncrawl.engine import CrawlConfig, run
from asyncrawl.http import AiohttpFetcher, Request, Response
from asyncrawl.limiter import Rate
from asyncrawl.outcomes import Ok, Outcome
from asyncrawl.testing.faults import FaultPlan
from asyncrawl.testing.process import run_server_process

#: The engine must reach at least this fraction of the baseline's requests/s.
THRESHOLD: Final = 0.9
#: Same pool size as AiohttpFetcher's default, so both contenders get the same connector.
POOL_SIZE: Final = 100
USER_AGENT: Final = "asyncrawl/0.1"


class _CountSource:
    """Item ``n`` is ``GET {base}/item?id=n``; every answer with status 200 is Ok."""

    def __init__(self, base: str) -> None:
        self.url = f"{base}/item"

    def key(self, item: int) -> str:
        return str(item)

    def request(self, item: int) -> Request:
        return Request(url=self.url, params={"id": str(item)})

    def classify(self, item: int, response: Response) -> Outcome:
        if response.status != 200:
            raise RuntimeError(f"item {item}: HTTP {response.status} from the benchmark server")
        return Ok(payload=None)


async def _baseline(base: str, requests: int, concurrency: int) -> float:
    """Seconds plain aiohttp + a semaphore takes for ``requests`` GETs."""
    url = f"{base}/item"
    connector = aiohttp.TCPConnector(limit=POOL_SIZE, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    ) as session:
        gate = asyncio.Semaphore(concurrency)

        async def get(item: int) -> int:
            async with gate, session.get(url, params={"id": str(item)}) as answer:
                await answer.read()
                return answer.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(get(item) for item in range(requests)))
        elapsed = time.perf_counter() - started
    bad = sum(1 for status in statuses if status != 200)
    if bad:
        raise RuntimeError(f"baseline: {bad} of {requests} answers were not HTTP 200")
    return elapsed


async def _engine(base: str, requests: int, concurrency: int) -> float:
    """Seconds the engine takes for ``requests`` items, one GET each."""
    config = CrawlConfig(concurrency=concurrency, rates=(Rate(10**9, 1.0),))
    source = _CountSource(base)
    async with AiohttpFetcher(pool_size=POOL_SIZE, user_agent=USER_AGENT) as fetcher:
        started = time.perf_counter()
        async with run(source, range(requests), fetcher=fetcher, config=config) as crawl:
            async for _ in crawl:
                pass
        elapsed = time.perf_counter() - started
    summary = crawl.summary
    if summary.ok != requests or summary.requests != requests:
        raise RuntimeError(
            f"engine: {summary.ok} ok of {requests} items in {summary.requests} requests "
            f"(failed: {len(summary.failed)}, remaining: {len(summary.remaining)})"
        )
    return elapsed


class _BareFetcher:
    """The least a Fetcher can be: no per-attempt timeout, no error mapping (``--breakdown``)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        async with self._session.get(request.url, params=request.params) as answer:
            body = await answer.read()
            return Response(status=answer.status, headers=answer.headers, body=body)


async def _engine_bare_fetcher(base: str, requests: int, concurrency: int) -> float:
    """The engine over :class:`_BareFetcher`: the engine's own share of the overhead."""
    config = CrawlConfig(concurrency=concurrency, rates=(Rate(10**9, 1.0),))
    connector = aiohttp.TCPConnector(limit=POOL_SIZE, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    ) as session:
        started = time.perf_counter()
        crawl = run(
            _CountSource(base), range(requests), fetcher=_BareFetcher(session), config=config
        )
        async with crawl:
            async for _ in crawl:
                pass
        return time.perf_counter() - started


async def _gather_fetcher(base: str, requests: int, concurrency: int) -> float:
    """The baseline's semaphore and gather calling AiohttpFetcher: the fetcher's share."""
    source = _CountSource(base)
    async with AiohttpFetcher(pool_size=POOL_SIZE, user_agent=USER_AGENT) as fetcher:
        gate = asyncio.Semaphore(concurrency)

        async def get(item: int) -> Outcome:
            async with gate:
                answer = await fetcher.fetch(source.request(item), timeout=30.0)
                return source.classify(item, answer)

        started = time.perf_counter()
        await asyncio.gather(*(get(item) for item in range(requests)))
        return time.perf_counter() - started


Contender = Callable[[str, int, int], Coroutine[Any, Any, float]]


def _measure(
    contender: Contender, base: str, requests: int, concurrency: int
) -> tuple[float, float]:
    """Requests/s and this process's CPU microseconds per request of one run, in a fresh loop.

    The CPU figure is steadier than requests/s on a shared machine: it does not move when
    another process takes a core away for a while.
    """
    gc.collect()
    cpu = time.process_time()
    seconds = asyncio.run(contender(base, requests, concurrency))
    return requests / seconds, (time.process_time() - cpu) / requests * 1e6


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="GETs per run (5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (5)")
    parser.add_argument("--warmup", type=int, default=500, help="GETs per warm-up run (500)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure gather + AiohttpFetcher and the engine over a bare aiohttp fetcher, "
        "to split the overhead between the fetcher and the engine",
    )
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when the engine reaches the threshold, 1 when it does not."""
    args = _arguments(argv)
    contenders: dict[str, Contender] = {"baseline": _baseline, "engine": _engine}
    if args.breakdown:
        contenders["fetcher"] = _gather_fetcher
        contenders["bare"] = _engine_bare_fetcher
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    print(
        f"engine overhead: {args.requests} GETs at concurrency {args.concurrency}, "
        f"{args.runs} runs each, against a no-latency server in its own process "
        f"({os.cpu_count()} CPUs)"
    )
    with run_server_process("fault", FaultPlan()) as base:
        if args.warmup:
            for contender in contenders.values():
                _measure(contender, base, args.warmup, args.concurrency)
        for number in range(1, args.runs + 1):
            line = []
            for name, contender in contenders.items():
                rate, cpu_us = _measure(contender, base, args.requests, args.concurrency)
                rates[name].append(rate)
                cpu[name].append(cpu_us)
                line.append(f"{name} {rate:8.0f} req/s {cpu_us:6.1f} us CPU/req")
            print(f"  run {number}: " + "   ".join(line))
    baseline = statistics.median(rates["baseline"])
    engine = statistics.median(rates["engine"])
    ratio = engine / baseline
    passed = ratio >= THRESHOLD
    baseline_cpu = statistics.median(cpu["baseline"])
    engine_cpu = statistics.median(cpu["engine"])
    labels = {
        "baseline": "baseline (aiohttp + semaphore)",
        "engine": "engine (asyncrawl.run)",
        "fetcher": "semaphore + AiohttpFetcher",
        "bare": "engine over a bare fetcher",
    }
    for name in contenders:
        rps, cpu_us = statistics.median(rates[name]), statistics.median(cpu[name])
        print(f"median {labels[name]:31} {rps:8.0f} req/s {cpu_us:6.1f} us CPU/req")
    verdict = "PASS" if passed else "FAIL"
    print(f"ratio engine/baseline: {ratio:.3f}  ({verdict}: must be >= {THRESHOLD})")
    if args.json is not None:
        results = {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "runs": args.runs,
            "baseline_rps": rates["baseline"],
            "engine_rps": rates["engine"],
            "baseline_median_rps": baseline,
            "engine_median_rps": engine,
            "ratio": ratio,
            "baseline_cpu_us_per_request": cpu["baseline"],
            "engine_cpu_us_per_request": cpu["engine"],
            "baseline_median_cpu_us": baseline_cpu,
            "engine_median_cpu_us": engine_cpu,
            "breakdown": {
                name: {"rps": rates[name], "cpu_us": cpu[name]}
                for name in contenders
                if name not in ("baseline", "engine")
            },
            "threshold": THRESHOLD,
            "passed": passed,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
