"""A site crawl as a Source: seed URLs, links followed within allowed origins, robots.txt kept.

    site = SiteCrawl(["https://example.com/"], user_agent="mybot/1.0")
    async with AiohttpFetcher(user_agent="mybot/1.0") as fetcher:
        await site.prepare(fetcher)              # robots.txt of every allowed origin
        config = CrawlConfig(concurrency=8, per_host=2, max_depth=3)
        async with run(site, site.seeds(), fetcher=fetcher, config=config) as crawl:
            async for result in crawl:
                ...                              # result.outcome.payload: a FetchedPage

What the engine does for it: depth (``CrawlConfig.max_depth``: a seed is depth 0, a page it
links to depth 1; a redirect target is one level deeper than the redirect), the item cap
(``max_items``), per-host concurrency (``per_host``), rate windows, retries, dedupe by key.
What it does itself:

- **Keys** are normalised URLs (:func:`asyncrawl.urls.normalize_url`), so ``/a#x``, ``/a`` and
  ``HTTP://Host:80/a`` are one page.
- **Scope**: only links to the seeds' origins (``scheme://host[:port]``) and to the origins in
  ``allow`` are followed; other links are listed in the page but not crawled.
- **robots.txt** (on by default): :meth:`prepare` loads it for every allowed origin through the
  crawl's fetcher. A disallowed URL is *skipped*: never planned, never fetched, and counted in
  :attr:`robots_skipped` (the engine's ``summary.skipped`` counts only what its own limits left
  out). A seed disallowed by robots.txt is skipped the same way by :meth:`seeds`. Its
  ``Crawl-delay`` becomes a rate window of one request per delay for that host
  (:meth:`host_rates`, applied by the engine on top of ``per_host_rates``; a delay beyond
  ``max_crawl_delay``, 60 s by default, is clamped to it).
- **Redirects** become discovered items (:func:`asyncrawl.web.redirects.follow_redirect`), at
  most ``max_redirects`` in a row.
- **Statuses**: 2xx HTML pages are parsed for links; other 2xx are stored without; 401, 403,
  404 and other 4xx fail the page, not the run; 429 and 5xx are retried as usual.

Items are :class:`Page` s; :meth:`dump_item` / :meth:`load_item` (the engine's ``ItemCodec``)
write them as JSON, so discovered pages survive a continuation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ConfigError
from ..http import Fetcher, Request, Response
from ..limiter import Rate
from ..outcomes import Failed, NoData, Ok, Outcome, classify_http_status
from ..robots import RobotsRules
from ..urls import normalize_url, origin
from .links import extract_links, html_text
from .redirects import follow_redirect

__all__ = ["FetchedPage", "Page", "SiteCrawl"]

_HTML_TYPES: Final = ("text/html", "application/xhtml+xml")
_ACCEPT: Final = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


@dataclass(frozen=True, slots=True)
class Page:
    """One URL to crawl (normalised), and how many redirects led to it."""

    url: str
    redirects: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedPage:
    """What a crawled page gives (an ``Ok`` payload)."""

    url: str
    status: int
    content_type: str
    title: str | None
    #: Every http(s) link on the page, normalised, followed or not.
    links: tuple[str, ...]
    #: The body, unless the SiteCrawl was made with ``keep_body=False``.
    body: bytes


class SiteCrawl:
    """A Source that crawls web pages from seed URLs (see the module docstring)."""

    def __init__(
        self,
        seeds: Iterable[str],
        *,
        allow: Iterable[str] = (),
        respect_robots: bool = True,
        user_agent: str = "asyncrawl/0.1",
        robots_timeout: float = 10.0,
        max_redirects: int = 5,
        sort_query: bool = False,
        keep_body: bool = True,
        headers: Mapping[str, str] | None = None,
        max_crawl_delay: float = 60.0,
    ) -> None:
        self._sort_query = sort_query
        if not (isinstance(max_crawl_delay, int | float) and 0 < max_crawl_delay <= 86400):
            raise ConfigError(
                "max_crawl_delay", f"must be seconds in (0, 86400], got {max_crawl_delay!r}"
            )
        self._max_crawl_delay = float(max_crawl_delay)
        try:
            self._seeds = [normalize_url(url, sort_query=sort_query) for url in seeds]
        except ValueError as error:
            raise ConfigError("seeds", f"every seed must be an absolute URL: {error}") from None
        try:
            extra = [origin(url) for url in allow]
        except ValueError as error:
            raise ConfigError("allow", f"give origins like 'https://host': {error}") from None
        if not self._seeds:
            raise ConfigError("seeds", "give at least one URL to start from")
        if any(not url.startswith(("http://", "https://")) for url in self._seeds):
            raise ConfigError("seeds", "seeds must be http:// or https:// URLs")
        if max_redirects < 0:
            raise ConfigError("max_redirects", "must be 0 (follow none) or more")
        self.origins = frozenset({origin(url) for url in self._seeds} | set(extra))
        self._robots = RobotsRules(user_agent=user_agent, timeout=robots_timeout)
        self._respect_robots = respect_robots
        self._prepared = not respect_robots
        self._max_redirects = max_redirects
        self._keep_body = keep_body
        self._headers = {"Accept": _ACCEPT, **(headers or {})}
        #: URLs not crawled because robots.txt disallows them.
        self.robots_skipped: set[str] = set()

    @property
    def robots(self) -> RobotsRules:
        """The robots.txt rules in use (loaded by :meth:`prepare`)."""
        return self._robots

    async def prepare(self, fetcher: Fetcher) -> None:
        """Load robots.txt for every allowed origin through ``fetcher`` (once per origin)."""
        if self._respect_robots:
            await self._robots.load(fetcher, [f"{site}/" for site in self.origins])
        self._prepared = True

    def host_rates(self, url: str) -> tuple[Rate, ...]:
        """robots.txt's ``Crawl-delay`` for ``url``'s origin as one request per delay (the
        engine's :class:`~asyncrawl.source.HostRates` hook); none without robots or a delay."""
        if not self._respect_robots:
            return ()
        delay = self._robots.crawl_delay(url)
        if delay is None:
            return ()
        return (Rate(1, min(delay, self._max_crawl_delay)),)

    def seeds(self) -> list[Page]:
        """The seed pages to pass to ``run()``, without those robots.txt disallows."""
        self._check_prepared()
        return [Page(url) for url in self._seeds if self._admit(url)]

    # -- Source -----------------------------------------------------------------------------

    def key(self, item: Page) -> str:
        """The page's normalised URL."""
        return item.url

    def request(self, item: Page) -> Request:
        """A GET for the page."""
        return Request(url=item.url, headers=self._headers)

    def classify(self, item: Page, response: Response) -> Outcome:
        """Links and redirects become follow-ups; statuses as the module docstring says."""
        redirect = follow_redirect(
            item.url,
            response,
            hops=item.redirects,
            max_hops=self._max_redirects,
            child=self._redirect_child,
        )
        if redirect is not None:
            return redirect
        status = response.status
        if status in (401, 403):
            # One protected page does not make the whole site unusable.
            return Failed(reason=f"HTTP {status}: access refused", status=f"http_{status}")
        generic = classify_http_status(status, response.headers)
        if generic is not None:
            return generic
        if not 200 <= status < 300:
            return NoData(reason=f"HTTP {status}", status=f"http_{status}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        links: tuple[str, ...] = ()
        title = None
        if content_type in _HTML_TYPES:
            found = extract_links(
                html_text(response.body, response.headers), item.url, sort_query=self._sort_query
            )
            links, title = found.links, found.title
        page = FetchedPage(
            url=item.url,
            status=status,
            content_type=content_type,
            title=title,
            links=links,
            body=response.body if self._keep_body else b"",
        )
        follow = tuple(Page(link) for link in links if self._in_scope(link) and self._admit(link))
        return Ok(payload=page, follow=follow)

    # -- ItemCodec --------------------------------------------------------------------------

    def dump_item(self, item: Page) -> Any:
        """``item`` as JSON: ``{"url": ..., "redirects": n}``."""
        return {"url": item.url, "redirects": item.redirects}

    def load_item(self, data: Any) -> Page:
        """The page :meth:`dump_item` wrote."""
        return Page(str(data["url"]), int(data.get("redirects", 0)))

    # -- scope ------------------------------------------------------------------------------

    def _redirect_child(self, target: str, hops: int) -> Page | None:
        try:
            url = normalize_url(target, sort_query=self._sort_query)
        except ValueError:
            return None
        if not (self._in_scope(url) and self._admit(url)):
            return None
        return Page(url, hops)

    def _in_scope(self, url: str) -> bool:
        return origin(url) in self.origins

    def _admit(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url`` (counted in robots_skipped if not)."""
        if not self._respect_robots:
            return True
        self._check_prepared()
        if self._robots.allowed(url):
            return True
        self.robots_skipped.add(url)
        return False

    def _check_prepared(self) -> None:
        if not self._prepared:
            raise ConfigError(
                "respect_robots",
                "robots.txt is not loaded: await site.prepare(fetcher) before the crawl, "
                "or pass respect_robots=False",
            )
