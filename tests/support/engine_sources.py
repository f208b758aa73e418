"""Small Sources and Fetchers for engine tests: numbered items against a fake or real server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import orjson

from asyncrawl.errors import AttemptTimeout
from asyncrawl.http import Request, Response
from asyncrawl.outcomes import (
    NoData,
    Ok,
    Outcome,
    Transient,
    classify_http_status,
)


class NumberSource:
    """Item ``n`` is fetched from ``{base}/item?id=n``; ``classify`` reads the generic JSON answer.

    ``verdicts`` overrides the outcome for chosen items (e.g. ``{3: Fatal(...)}``).
    """

    def __init__(self, base: str, verdicts: Mapping[int, Outcome] | None = None) -> None:
        self.base = base
        self.verdicts = dict(verdicts or {})

    def key(self, item: int) -> str:
        return f"item-{item}"

    def request(self, item: int) -> Request:
        return Request(url=f"{self.base}/item", params={"id": str(item)})

    def classify(self, item: int, response: Response) -> Outcome:
        if item in self.verdicts:
            return self.verdicts[item]
        generic = classify_http_status(response.status, response.headers)
        if generic is not None:
            return generic
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return Transient(reason="not JSON", status="bad_body")
        if not isinstance(body, dict):
            return Transient(reason="not a JSON object", status="bad_body")
        if item % 10 == 9:
            return NoData()
        return Ok(payload=[{"item": str(item)}])


Responder = Callable[[Request, int], Awaitable[Response]]


def ok_response(status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status=status, headers=dict(headers or {}), body=b'{"ok": true}')


class FakeFetcher:
    """A Fetcher without a network: ``respond(request, attempt)`` makes each answer.

    Records sends (loop time), attempts per item id, and the most attempts in flight at once.
    """

    def __init__(self, respond: Responder | None = None, *, latency: float = 0.01) -> None:
        self.latency = latency
        self.respond = respond or self._ok
        self.sent: list[float] = []
        self.attempts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_in_flight_by_host: Counter[str] = Counter()
        self._by_host: Counter[str] = Counter()

    async def _ok(self, request: Request, attempt: int) -> Response:
        await asyncio.sleep(self.latency)
        return ok_response()

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        item = request.params.get("id", request.url)
        self.attempts[item] += 1
        self.sent.append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self._by_host[request.host] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_in_flight_by_host[request.host] = max(
            self.max_in_flight_by_host[request.host], self._by_host[request.host]
        )
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(timeout):
                answer = await self.respond(request, self.attempts[item])
            return dataclasses.replace(answer, elapsed=asyncio.get_running_loop().time() - started)
        except TimeoutError:
            raise AttemptTimeout("timed out", url=request.display_url, status="timeout") from None
        finally:
            self.in_flight -= 1
            self._by_host[request.host] -= 1


def max_in_window(times: list[float], window: float) -> int:
    """The most sends in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class GraphSource:
    """Page ``n`` links to ``links[n]``: each answer is ``Ok(follow=links[n])``.

    ``verdicts(n, attempt)`` may override the outcome of one attempt (faults in property tests);
    the attempt number comes from the fetcher's count for the page.
    """

    def __init__(
        self,
        links: Mapping[int, tuple[int, ...]],
        verdicts: Callable[[int, int], Outcome | None] | None = None,
        fetcher: FakeFetcher | None = None,
    ) -> None:
        self.links = links
        self.verdicts = verdicts
        self.fetcher = fetcher

    def key(self, item: int) -> str:
        return f"page-{item}"

    def request(self, item: int) -> Request:
        return Request(url="http://site.test/page", params={"id": str(item)})

    def classify(self, item: int, response: Response) -> Outcome:
        if self.verdicts is not None and self.fetcher is not None:
            verdict = self.verdicts(item, self.fetcher.attempts[str(item)])
            if verdict is not None:
                return verdict
        return Ok(payload=item, follow=self.links.get(item, ()))

    def dump_item(self, item: int) -> int:
        return item

    def load_item(self, data: object) -> int:
        if not isinstance(data, int):
            raise TypeError(f"a page number, not {data!r}")
        return data


def site_graph(pages: int, seeds: int, extra_links: int, seed: int) -> dict[int, tuple[int, ...]]:
    """A site of ``pages`` pages, each reachable from pages ``0..seeds-1``, with duplicate links
    and cycles: every page past the seeds has a parent below it, plus random extra links."""
    import random

    rng = random.Random(seed)
    links: dict[int, list[int]] = {n: [] for n in range(pages)}
    for page in range(seeds, pages):
        links[rng.randrange(page)].append(page)
    for page in range(pages):
        links[page].extend(rng.randrange(pages) for _ in range(extra_links))
        rng.shuffle(links[page])
    return {page: tuple(targets) for page, targets in links.items()}
