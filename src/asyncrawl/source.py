"""The Source protocol: the one seam between the engine and what is being crawled.

A Source that discovers work (``Ok(follow=...)``) also implements :class:`ItemCodec`, so that
discovered items, which no plan can rebuild from their keys, survive a journal or a
continuation token. A Source whose hosts set their own pace (a robots.txt ``Crawl-delay``)
implements :class:`HostRates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .http import Request, Response
from .limiter import Rate
from .outcomes import Outcome

__all__ = ["HostRates", "ItemCodec", "ItemT", "Source"]

# Contravariant: a Source that can read any object can read items of a narrower type.
ItemT = TypeVar("ItemT", contravariant=True)


class Source(Protocol[ItemT]):
    """Turns an item into a request and an answer into an :data:`~asyncrawl.outcomes.Outcome`.

    ``key`` must be stable across processes: it names the item in summaries, journals and
    continuations, and two items with the same key are the same work.
    """

    def key(self, item: ItemT) -> str: ...

    def request(self, item: ItemT) -> Request: ...

    def classify(self, item: ItemT, response: Response) -> Outcome: ...


T = TypeVar("T")


@runtime_checkable
class ItemCodec(Protocol[T]):
    """How a Source writes its items as JSON-able data and reads them back.

    ``load_item(dump_item(item))`` must give an item with the same key. A run layer checks
    ``isinstance(source, ItemCodec)`` before it puts discovered items into a continuation.
    """

    def dump_item(self, item: T) -> Any:
        """``item`` as JSON-able data (dicts, lists, strings, numbers, booleans, None)."""
        ...

    def load_item(self, data: Any) -> T:
        """The item that :meth:`dump_item` wrote as ``data``."""
        ...


@runtime_checkable
class HostRates(Protocol):
    """A Source that knows rate windows of its own for some hosts (e.g. robots.txt's
    ``Crawl-delay``: ``(Rate(1, delay),)``).

    The engine asks once per host, with the URL of the first request to it, and applies the
    answer on top of ``CrawlConfig.per_host_rates`` (an empty sequence adds nothing).
    """

    def host_rates(self, url: str) -> Sequence[Rate]:
        """Rate windows for every request to ``url``'s host."""
        ...
