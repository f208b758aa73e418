"""robots.txt: fetched once per origin through the crawl's own fetcher, then asked synchronously.

The rules are read as RFC 9309 says (the standard library's ``urllib.robotparser`` takes the
first matching rule and knows no wildcards, so it is not used): the group naming this crawler's
product token applies, else the ``*`` group; the longest matching ``Allow``/``Disallow`` pattern
wins, ``Allow`` on a tie; ``*`` matches any run of characters and a final ``$`` the end.

:class:`RobotsRules` loads each origin's ``/robots.txt`` with the same
:class:`~asyncrawl.http.Fetcher` the crawl uses (its headers, proxy, TLS settings and body
cap), every attempt bounded by
``timeout``, and caches the rules per origin. Sources ask :meth:`RobotsRules.allowed`, which is
synchronous (``Source.classify`` is), so the origins a crawl may reach are loaded before it
starts: a site crawl knows them (its seeds' hosts and its allow-list).

What an answer means follows RFC 9309:

- 2xx: the rules in the body (its first 500 KiB) apply;
- 3xx: followed, up to five hops; more than that, or a redirect without a target, counts as
  "unavailable";
- other 4xx ("unavailable"): everything is allowed;
- 5xx, 429, no answer or a timeout ("unreachable"): everything is disallowed for this run,
  after ``attempts`` tries. A crawler must not guess when the server could not say.

Loading robots.txt does not go through the engine's rate limiter: it is one request per origin,
before the crawl.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit

from .errors import ConfigError, FetchError
from .http import Fetcher, Request
from .urls import normalize_escapes, normalize_url, origin

__all__ = ["ROBOTS_MAX_BYTES", "RobotsRules", "RobotsTxt", "parse_robots"]

#: RFC 9309, section 2.5: crawlers must read at least the first 500 KiB; the rest is ignored.
ROBOTS_MAX_BYTES: Final = 500 * 1024
_MAX_REDIRECTS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class RobotsRules:
    """robots.txt rules per origin, for one ``user_agent``.

    ``timeout`` bounds each attempt to fetch one robots.txt (seconds); ``attempts`` is how many
    tries an unreachable one gets before the origin counts as fully disallowed.
    """

    def __init__(self, *, user_agent: str, timeout: float = 10.0, attempts: int = 2) -> None:
        if not user_agent.strip():
            raise ConfigError("user_agent", "must name the crawler, e.g. 'mybot'")
        if not timeout > 0:
            raise ConfigError("timeout", f"must be seconds > 0, got {timeout!r}")
        if attempts < 1:
            raise ConfigError("attempts", f"must be at least 1, got {attempts!r}")
        # robots.txt groups match on the product token: "mybot/1.0 (+url)" -> "mybot".
        self.user_agent = user_agent.split("/")[0].split()[0]
        self._timeout = timeout
        self._attempts = attempts
        self._rules: dict[str, RobotsTxt] = {}
        #: How each origin's robots.txt was read: "rules", "unavailable" or "unreachable".
        self.verdicts: dict[str, str] = {}
        self._loading: dict[str, asyncio.Task[None]] = {}

    def loaded(self, url: str) -> bool:
        """Whether the rules for ``url``'s origin are known."""
        return origin(url) in self._rules

    def allowed(self, url: str) -> bool:
        """Whether ``url`` may be fetched. Raises ``LookupError`` when its origin is not loaded."""
        site = origin(url)
        rules = self._rules.get(site)
        if rules is None:
            raise LookupError(f"robots.txt for {site} is not loaded: await load(fetcher, [url])")
        return rules.allows(normalize_url(url))

    def crawl_delay(self, url: str) -> float | None:
        """The ``Crawl-delay`` the origin asks of this user agent, if any (seconds)."""
        rules = self._rules.get(origin(url))
        return None if rules is None else rules.crawl_delay

    async def load(self, fetcher: Fetcher, urls: Iterable[str]) -> None:
        """Fetch robots.txt for every origin of ``urls`` not loaded yet, concurrently."""
        tasks = []
        for site in {origin(url) for url in urls}:
            if site in self._rules:
                continue
            task = self._loading.get(site)
            if task is None:
                task = asyncio.ensure_future(self._load_one(fetcher, site))
                self._loading[site] = task
            tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks)

    async def _load_one(self, fetcher: Fetcher, site: str) -> None:
        try:
            verdict, body = await self._read(fetcher, f"{site}/robots.txt")
            if verdict == "rules":
                text = body[:ROBOTS_MAX_BYTES].decode("utf-8-sig", errors="replace")
                rules = parse_robots(text, self.user_agent)
            else:
                rules = RobotsTxt(disallow_all=verdict == "unreachable")
            self._rules[site] = rules
            self.verdicts[site] = verdict
        finally:
            self._loading.pop(site, None)

    async def _read(self, fetcher: Fetcher, url: str) -> tuple[str, bytes]:
        """("rules", body), ("unavailable", b"") or ("unreachable", b"")."""
        for _ in range(self._attempts):
            target = url
            for _hop in range(_MAX_REDIRECTS + 1):
                try:
                    response = await fetcher.fetch(Request(url=target), timeout=self._timeout)
                except FetchError:
                    break  # unreachable this time: try again from the start
                status = response.status
                if status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        return "unavailable", b""
                    target = urljoin(target, location)
                    continue
                if 200 <= status < 300:
                    return "rules", response.body
                if status == 429 or status >= 500:
                    break
                return "unavailable", b""
            else:
                return "unavailable", b""  # more than five redirects
        return "unreachable", b""


@dataclass(frozen=True, slots=True)
class RobotsTxt:
    """The rules of one robots.txt that apply to one user agent."""

    #: ``(pattern length, allow?, compiled pattern)``, longest first.
    rules: tuple[tuple[int, bool, re.Pattern[str]], ...] = ()
    crawl_delay: float | None = None
    disallow_all: bool = field(default=False)

    def allows(self, url: str) -> bool:
        """Whether ``url`` (absolute or a path) may be fetched."""
        if self.disallow_all:
            return False
        parts = urlsplit(url)
        target = parts.path or "/"
        if target == "/robots.txt":
            return True
        if parts.query:
            target = f"{target}?{parts.query}"
        for _, allow, pattern in self.rules:
            if pattern.match(target):
                return allow
        return True


def parse_robots(text: str, user_agent: str) -> RobotsTxt:
    """The rules of robots.txt ``text`` that apply to ``user_agent``'s product token."""
    token = user_agent.lower()
    groups: list[tuple[set[str], list[tuple[str, str]]]] = []
    agents: set[str] = set()
    lines: list[tuple[str, str]] = []
    for raw in text.splitlines():
        name, colon, value = raw.split("#", 1)[0].partition(":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == "user-agent":
            if lines:  # a user-agent line after rules starts a new group
                groups.append((agents, lines))
                agents, lines = set(), []
            agents.add(value.lower())
        elif agents and name in ("allow", "disallow", "crawl-delay"):
            lines.append((name, value))
    if agents:
        groups.append((agents, lines))
    chosen = [lines for names, lines in groups if token in names]
    if not chosen:
        chosen = [lines for names, lines in groups if "*" in names]
    rules: list[tuple[int, bool, re.Pattern[str]]] = []
    delay: float | None = None
    for group in chosen:
        for name, value in group:
            if name == "crawl-delay":
                try:
                    seconds = float(value)
                except ValueError:
                    continue
                if math.isfinite(seconds) and seconds > 0:  # "0", "-1", "inf", "nan": no delay
                    delay = seconds
            elif value:  # an empty Disallow allows everything: no rule
                rules.append((len(value), name == "allow", _pattern(value)))
    # Longest pattern first; on a tie Allow (True) sorts first and wins.
    rules.sort(key=lambda rule: (-rule[0], not rule[1]))
    return RobotsTxt(rules=tuple(rules), crawl_delay=delay)


def _pattern(value: str) -> re.Pattern[str]:
    anchored = value.endswith("$")
    body = value[:-1] if anchored else value
    if not body.startswith(("/", "*")):
        body = "/" + body
    # Matched against normalised URLs, so its percent-encoding is normalised the same way.
    body = normalize_escapes(body)
    regex = ".*".join(re.escape(piece) for piece in body.split("*"))
    return re.compile(regex + ("$" if anchored else ""))
