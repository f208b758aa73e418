"""The Source protocol: the one seam between the engine and what is being crawled."""

from __future__ import annotations

from typing import Protocol, TypeVar

from .http import Request, Response
from .outcomes import Outcome

__all__ = ["ItemT", "Source"]

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
