"""Redirects as discovered items: counted, rate-limited hops instead of aiohttp's silent ones.

:class:`~asyncrawl.http.AiohttpFetcher` hands a 3xx answer back as it is. A Source that wants
to follow it returns :func:`follow_redirect`'s outcome: the item finishes as ``no_data`` with
status ``http_301`` (say), and the target comes back as a new item in ``follow``. The engine
then plans it like any other discovered item: it is deduplicated by key (so a redirect loop
ends where it repeats), passes the rate limiter and the per-host slot, and is counted. The item
carries its hop count, and past ``max_hops`` the chain fails with ``too_many_redirects``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar
from urllib.parse import urljoin

from ..http import Response
from ..outcomes import Failed, NoData

__all__ = ["REDIRECT_STATUSES", "follow_redirect", "redirect_target"]

#: The statuses that send the client elsewhere (300 and 304 do not).
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

T = TypeVar("T")


def redirect_target(url: str, response: Response) -> str | None:
    """The absolute URL a redirect answer to ``url`` points at; None if it is no redirect.

    A redirect without a ``Location`` header also gives None.
    """
    if response.status not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("Location")
    if not location:
        return None
    return urljoin(url, location.strip())


def follow_redirect(
    url: str,
    response: Response,
    *,
    hops: int,
    max_hops: int,
    child: Callable[[str, int], T | None],
) -> NoData | Failed | None:
    """The outcome of a redirect answer to ``url``, reached after ``hops`` redirects.

    ``child(target, hops + 1)`` builds the item for the target (None: do not follow it, for
    example because it leaves the site). Returns None when ``response`` is not a redirect, so
    a Source can write ``outcome = follow_redirect(...) or self._classify_page(...)``.
    """
    if response.status not in REDIRECT_STATUSES:
        return None
    status = f"http_{response.status}"
    target = redirect_target(url, response)
    if target is None:
        return Failed(reason=f"HTTP {response.status} without a Location header", status=status)
    if hops >= max_hops:
        return Failed(
            reason=f"more than max_redirects={max_hops} redirects in a row",
            status="too_many_redirects",
        )
    item = child(target, hops + 1)
    if item is None:
        return NoData(reason=f"HTTP {response.status} to a URL not followed", status=status)
    return NoData(reason=f"HTTP {response.status}", status=status, follow=(item,))
