"""A paged JSON API as a Source: each page's "next" link or cursor is discovered while crawling.

    api = PagedJson(records="items", next_link="next")          # {"items": [...], "next": url}
    api = PagedJson(records="data", next_cursor="meta.cursor")   # ?cursor=... on the same URL
    async with run(api, ["https://api.example.com/v1/things"], fetcher=fetcher) as crawl: ...

Items are page URLs (str), keyed by their normalised form. A page answers ``Ok`` with its
records as the payload and the next page in ``follow``; an empty last page is ``NoData``.
The next page is found, in this order, in: the body field ``next_link`` (a URL, resolved
against the page's), the body field ``next_cursor`` (set as query parameter ``cursor_param`` on
the page's URL), or an HTTP ``Link: <...>; rel="next"`` header. Fields are dotted paths into
the JSON (``"links.next"``). An answer that is not JSON, or not shaped as configured, is
``Unusable`` (retried; a streak of them stops the run: the endpoint is wrong).

Items are strings, so the engine's ``ItemCodec`` is trivial (:meth:`PagedJson.dump_item`).
Credentials in the query go in ``params`` and are named in ``secret_params``: they are added to
every request, masked in every URL shown, and stripped from discovered next links, so they
never reach a key, a journal or a continuation.
A deeply paged API needs ``CrawlConfig.max_depth=None`` (the default): every page is one level
deeper than the one before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson

from ..errors import ConfigError
from ..http import Request, Response
from ..outcomes import NoData, Ok, Outcome, Unusable, classify_http_status
from ..urls import normalize_url

__all__ = ["PagedJson"]

_LINK_NEXT: Final = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class PagedJson:
    """A Source for a JSON API that pages with next links or cursors (see the module)."""

    def __init__(
        self,
        *,
        records: str = "items",
        next_link: str | None = "next",
        next_cursor: str | None = None,
        cursor_param: str = "cursor",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        secret_params: frozenset[str] = frozenset(),
    ) -> None:
        if not records:
            raise ConfigError("records", "name the field that holds a page's records")
        if next_cursor is not None and not cursor_param:
            raise ConfigError("cursor_param", "name the query parameter the cursor goes in")
        self._records = records.split(".")
        self._next_link = next_link.split(".") if next_link else None
        self._next_cursor = next_cursor.split(".") if next_cursor else None
        self._cursor_param = cursor_param
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._params = dict(params or {})
        self._secret_params = frozenset(secret_params)

    def key(self, item: str) -> str:
        """The page's normalised URL (without secret parameters)."""
        return normalize_url(_without(item, self._secret_params))

    def request(self, item: str) -> Request:
        """A GET for the page, with ``params`` (an API key, say) added to its query."""
        return Request(
            url=item, params=self._params, headers=self._headers, secret_params=self._secret_params
        )

    def classify(self, item: str, response: Response) -> Outcome:
        """The page's records, and its next page as a follow-up."""
        generic = classify_http_status(response.status, response.headers)
        if generic is not None:
            return generic
        if not 200 <= response.status < 300:
            return Unusable(reason=f"HTTP {response.status}", status=f"http_{response.status}")
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return Unusable(reason="the answer is not JSON", status="not_json")
        records = _field(data, self._records)
        if not isinstance(records, list):
            field = ".".join(self._records)
            return Unusable(reason=f"no list at {field!r} in the answer", status="bad_shape")
        following = self._next(item, data, response)
        # An API that echoes its key into the next link must not put it into keys and journals:
        # the key is added again from ``params`` when the page is requested.
        follow = (_without(following, self._secret_params),) if following is not None else ()
        if not records:
            return NoData(reason="empty page", follow=follow)
        return Ok(payload=records, follow=follow)

    def dump_item(self, item: str) -> Any:
        """The page URL, as it is."""
        return item

    def load_item(self, data: Any) -> str:
        """The page URL :meth:`dump_item` wrote."""
        return str(data)

    def _next(self, url: str, data: Any, response: Response) -> str | None:
        if self._next_link is not None:
            link = _field(data, self._next_link)
            if isinstance(link, str) and link:
                return urljoin(url, link)
        if self._next_cursor is not None:
            cursor = _field(data, self._next_cursor)
            if isinstance(cursor, str | int) and cursor != "":
                return _with_param(url, self._cursor_param, str(cursor))
        header = response.headers.get("Link")
        if header:
            match = _LINK_NEXT.search(header)
            if match:
                return urljoin(url, str(match[1]))
        return None


def _field(data: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _without(url: str, names: frozenset[str]) -> str:
    """``url`` without the query parameters ``names``."""
    if not names:
        return url
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))
