"""Routes for the fault server that a discovering crawler needs: a paged JSON API, an HTML site.

Both are :data:`~asyncrawl.testing.faults.Handler` s for :class:`FaultServer` (combine them with
:func:`route_by_prefix`), so the server's own fault plan still applies on top:

- :class:`PagedApi` serves ``/api/{collection}/items?cursor=...``: JSON pages of records, each
  with ``next_cursor`` and a ``next`` link, until the last. Its own faults are a pure function
  of ``(seed, page, attempt)``: a page may answer 503 on its first two attempts, or 429 with
  ``Retry-After`` on its first, so every client meets the same ones.
- :class:`HtmlSite` serves ``/site/...`` and ``/robots.txt``: pages that link to each other
  (cycles, relative links, fragments, a link off-site, ``mailto:``), permanent redirects, a
  redirect loop, a page robots.txt disallows, a large body, a JSON file and a broken link.
  It counts the requests it is serving at once (:attr:`HtmlSite.most_at_once`) so that tests
  can check a per-host limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from ..errors import ConfigError
from .faults import Handler, ItemContext, _uniform

__all__ = ["HtmlSite", "PagedApi", "route_by_prefix"]

#: What :class:`HtmlSite` serves at ``/robots.txt``.
SITE_ROBOTS: Final = "User-agent: *\nDisallow: /site/private/\n"


def route_by_prefix(routes: Mapping[str, Handler]) -> Handler:
    """A handler that passes each request to the handler of the longest matching path prefix."""
    ordered = sorted(routes.items(), key=lambda pair: -len(pair[0]))

    async def handler(request: web.Request, context: ItemContext) -> web.StreamResponse:
        for prefix, chosen in ordered:
            if request.path.startswith(prefix):
                return await chosen(request, context)
        return web.json_response({"error": f"no route for {request.path}"}, status=404)

    return handler


class PagedApi:
    """A cursor-paged JSON API: ``GET /api/{collection}/items[?cursor=C]``.

    ``collections`` collections (``c0``, ``c1``...) of ``records`` records each, ``per_page``
    per page. A page answers ``{"items": [...], "next_cursor": C | null, "next": URL | null}``
    (``next`` is a path on this server). ``p_503`` of the pages answer 503 on their first two
    attempts; ``p_429`` of the others answer 429 with ``Retry-After: retry_after`` on their
    first; which ones depends on ``(seed, page, attempt)`` alone.
    """

    def __init__(
        self,
        *,
        collections: int = 3,
        records: int = 50,
        per_page: int = 7,
        seed: int = 0,
        p_503: float = 0.2,
        p_429: float = 0.1,
        retry_after: float = 0.05,
    ) -> None:
        if per_page < 1:
            raise ConfigError("per_page", "must be at least 1")
        if not (p_503 >= 0 and p_429 >= 0 and p_503 + p_429 <= 1):
            raise ConfigError("p_503", "p_503 and p_429 must be probabilities adding up to <= 1")
        self.collections = tuple(f"c{n}" for n in range(collections))
        self.records = records
        self.per_page = per_page
        self.seed = seed
        self.p_503 = p_503
        self.p_429 = p_429
        self.retry_after = retry_after
        #: Pages served with data (not faults), by item key.
        self.served: Counter[str] = Counter()

    def seed_paths(self) -> list[str]:
        """The first page of every collection."""
        return [f"/api/{name}/items" for name in self.collections]

    def expected_records(self) -> int:
        """How many records a complete crawl collects."""
        return len(self.collections) * self.records

    async def __call__(self, request: web.Request, context: ItemContext) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "api" or parts[2] != "items":
            return web.json_response({"error": "use /api/{collection}/items"}, status=404)
        name = parts[1]
        if name not in self.collections:
            return web.json_response({"error": f"no collection {name!r}"}, status=404)
        try:
            offset = int(request.query.get("cursor", "0"), 16)
        except ValueError:
            return web.json_response({"error": "cursor: not one this API gave"}, status=400)
        fault = self._fault(context.item, context.attempt)
        if fault is not None:
            context.record_fault(fault)
            if fault == "503":
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": f"{self.retry_after:g}"}
            )
        self.served[context.item] += 1
        end = min(offset + self.per_page, self.records)
        items = [{"id": f"{name}-{n}", "value": n} for n in range(offset, end)]
        cursor = f"{end:x}" if end < self.records else None
        return web.json_response(
            {
                "items": items,
                "next_cursor": cursor,
                "next": None if cursor is None else f"/api/{name}/items?cursor={cursor}",
            }
        )

    def _fault(self, page: str, attempt: int) -> str | None:
        draw = _uniform(self.seed, page, 0, "paged-api")  # which kind of page this is
        if draw < self.p_503:
            return "503" if attempt <= 2 else None
        if draw < self.p_503 + self.p_429:
            return "429" if attempt == 1 else None
        return None


class HtmlSite:
    """A small web site under ``/site/`` with its ``/robots.txt``.

    ``/site/`` links to ``/site/p/0`` .. and to every special page; ``/site/p/{n}`` (``pages``
    of them) links to its children ``2n+1`` and ``2n+2``, back to its parent and to the index
    (cycles), once more with a fragment. Special pages: ``/site/old/{n}`` (301 to
    ``/site/p/{n}``), ``/site/loop`` and ``/site/loop2`` (302 to each other),
    ``/site/private/secret`` (disallowed by robots.txt), ``/site/big`` (``big_bytes`` of HTML,
    no Content-Length), ``/site/data.json``, and a link to ``/site/missing`` (404). Each page
    waits ``delay`` seconds while counted "at once". With ``crawl_delay`` set, robots.txt also
    says ``Crawl-delay: {crawl_delay}``.
    """

    def __init__(
        self,
        *,
        pages: int = 15,
        big_bytes: int = 2 * 1024 * 1024,
        delay: float = 0.0,
        crawl_delay: float | None = None,
    ):
        if pages < 1:
            raise ConfigError("pages", "must be at least 1")
        self.robots_txt = SITE_ROBOTS + (
            "" if crawl_delay is None else f"Crawl-delay: {crawl_delay:g}\n"
        )
        self.pages = pages
        self.big_bytes = big_bytes
        self.delay = delay
        self._active = 0
        #: The most requests this site served at the same time.
        self.most_at_once = 0
        #: Requests served, by path.
        self.served: Counter[str] = Counter()

    def page_paths(self) -> list[str]:
        """Every HTML page a crawl that follows all links (and redirects) reaches."""
        return ["/site/", *(f"/site/p/{n}" for n in range(self.pages))]

    async def __call__(self, request: web.Request, context: ItemContext) -> web.StreamResponse:
        self._active += 1
        self.most_at_once = max(self.most_at_once, self._active)
        self.served[request.path] += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._answer(request)
        finally:
            self._active -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/robots.txt":
            return web.Response(text=self.robots_txt, content_type="text/plain")
        if path in ("/site", "/site/"):
            return _html("index", self._index_links())
        if path.startswith("/site/p/"):
            number = _number(path.removeprefix("/site/p/"))
            if number is not None and number < self.pages:
                return _html(f"page {number}", self._page_links(number))
        if path.startswith("/site/old/"):
            raise web.HTTPMovedPermanently(f"/site/p/{path.removeprefix('/site/old/')}")
        if path == "/site/loop":
            raise web.HTTPFound("/site/loop2")
        if path == "/site/loop2":
            raise web.HTTPFound("/site/loop")
        if path == "/site/private/secret":
            return _html("private", [])
        if path == "/site/data.json":
            return web.json_response({"data": [1, 2, 3]})
        if path == "/site/big":
            return await self._big(request)
        return web.Response(status=404, text="<h1>not found</h1>", content_type="text/html")

    def _index_links(self) -> list[str]:
        return [
            "p/0",
            "/site/p/1#section",
            "./p/1",
            "../site/p/2",
            "/site/old/3",
            "/site/loop",
            "/site/private/secret",
            "/site/big",
            "/site/data.json",
            "/site/missing",
            "mailto:someone@example.invalid",
            "javascript:void(0)",
            "http://elsewhere.invalid/page",
        ]

    def _page_links(self, number: int) -> list[str]:
        children = [n for n in (2 * number + 1, 2 * number + 2) if n < self.pages]
        links = [f"/site/p/{n}" for n in children]
        links += [f"/site/p/{(number - 1) // 2}" if number else "/site/", "/site/"]
        links.append(f"/site/p/{number}#self")
        return links

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"<p>" + b"x" * 65_529 + b"</p>\n"
        sent = 0
        try:
            while sent < self.big_bytes:
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading (its body cap): nothing more to send
        return response


def _html(title: str, links: list[str]) -> web.Response:
    anchors = "\n".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    body = (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><ul>\n{anchors}\n</ul></body></html>\n"
    )
    return web.Response(text=body, content_type="text/html")


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None
