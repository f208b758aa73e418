"""The item feed: what to crawl next, from the input or from discovery, each key once.

Workers read the input lazily, one item at a time (100,000 items are never held at once); a
sync iterator needs no lock, an async one does (two tasks may not step one async generator at
once). Items found in answers (``Ok.follow``) are queued and served before more input. Every
item is planned once per key across the run: a key seen before is a *duplicate* (counted, not
crawled), one finished by an earlier run is counted finished, one past ``max_depth`` or
``max_items`` is *skipped*.

The input is never read to its end just to count it: only a ``Sequence`` lists its unstarted
items (a cheap slice in memory); for any other input :attr:`Feed.position` says how many items
were read, and an async iterator is ``aclose()``d when the run ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from ..outcomes import NoData, Ok
from ..source import Source
from .config import CrawlConfig
from .ledger import Ledger
from .lifecycle import RUNNING, Lifecycle

__all__ = ["Feed"]

T = TypeVar("T")


class Feed(Generic[T]):
    """Plans and serves items: discovered ones first, then the input's."""

    def __init__(
        self,
        source: Source[T],
        items: Iterable[T] | AsyncIterable[T],
        *,
        config: CrawlConfig,
        ledger: Ledger[T],
        life: Lifecycle,
        done: Mapping[str, Literal["ok", "no_data"]] | None,
    ) -> None:
        self._source = source
        self._items = items
        self._ledger = ledger
        self._life = life
        self._done_before = dict(done or {})
        self._max_depth = config.max_depth
        self._max_items = config.max_items
        self._sync_items: Iterator[T] | None = None
        self._async_items: AsyncIterator[T] | None = None
        self._pull_lock = asyncio.Lock()
        self._seen: set[str] = set()
        self._admitted = 0  # items given to workers (what max_items caps)
        #: Discovered items not started yet: (key, item, depth).
        self.discovered: deque[tuple[str, T, int]] = deque()
        #: The input has no more items.
        self.exhausted = False
        #: ``max_items`` was reached: the input is not read further.
        self.capped = False
        #: Input items read so far: a later run continues the input from there.
        self.position = 0

    def open(self) -> None:
        """Start reading the input (inside the running loop)."""
        if isinstance(self._items, AsyncIterable):
            self._async_items = aiter(self._items)
        else:
            self._sync_items = iter(self._items)

    @property
    def has_more(self) -> bool:
        """Whether another worker could find an item now."""
        return bool(self.discovered) or not (self.exhausted or self.capped)

    async def next(self) -> tuple[str, T, int] | None:
        """The next item to crawl with its key and depth, or None when there is none now.

        Discovered items go first: they keep the queue of known work short, and a paged
        source reaches its next page before reading more seeds.
        """
        life = self._life
        while life.state is RUNNING:
            if self.discovered:
                return self.discovered.popleft()
            if self.exhausted or self.capped:
                return None
            if self._pull_lock.locked():
                # Another worker already waits for the input: queueing behind it would hold
                # this worker while discovered items pile up. It ends instead; the next
                # discovery or input item starts workers again.
                return None
            try:
                item = await self._pull()
            except StopAsyncIteration:
                self.exhausted = True
                return None
            except _Stopped:
                return None
            except Exception as error:  # the items iterator or Source.key failed: end cleanly
                life.fail(error)
                life.stop("the item source failed")
                return None
            key = self.plan(item, 0)
            if key is not None:
                return key, item, 0
        return None

    async def _pull(self) -> T:
        if self._sync_items is not None:
            try:
                item = next(self._sync_items)
            except StopIteration:
                raise StopAsyncIteration from None
            self.position += 1
            return item
        assert self._async_items is not None
        # Waiting for the next item counts as in flight: an async source may wait forever
        # (an endless feed, a queue nobody fills), and the deadline's grace must end that wait.
        task = asyncio.current_task()
        assert task is not None  # workers are tasks
        in_flight = self._life.in_flight
        in_flight.add(task)
        try:
            async with self._pull_lock:
                if self._life.state is not RUNNING:
                    raise _Stopped
                item = await anext(self._async_items)
        finally:
            in_flight.discard(task)
        self.position += 1
        return item

    def plan(self, item: T, depth: int) -> str | None:
        """Count ``item`` as planned (once per key); its key when it still has to be crawled."""
        key = self._source.key(item)
        ledger = self._ledger
        if key in self._seen:
            ledger.duplicates += 1  # the same key is the same work
            return None
        self._seen.add(key)
        ledger.planned += 1
        earlier = self._done_before.get(key)
        if earlier is not None:
            ledger.count_finished(NoData() if earlier == "no_data" else Ok(payload=None))
            return None
        if self._max_depth is not None and depth > self._max_depth:
            ledger.skipped += 1
            return None
        if self._max_items is not None and self._admitted >= self._max_items:
            ledger.skipped += 1
            if depth == 0:
                self.capped = True  # an endless input is not read past the cap
            return None
        self._admitted += 1
        return key

    def follow(self, found: tuple[Any, ...], depth: int) -> list[T]:
        """Plan the items an answer found; those to be crawled are queued and returned."""
        children: list[T] = []
        try:
            for child in found:
                key = self.plan(child, depth)
                if key is not None:
                    self.discovered.append((key, child, depth))
                    children.append(child)
        except Exception as error:  # Source.key failed on a discovered item: end cleanly
            self._life.fail(error)
            self._life.stop("the source could not key a discovered item")
        return children

    def queued_keys(self) -> Iterator[str]:
        """Keys of discovered items not started yet."""
        return (key for key, _, _ in self.discovered)

    def queued_items(self) -> Iterator[T]:
        """Discovered items not started yet."""
        return (item for _, item, _ in self.discovered)

    def list_unstarted(self) -> None:
        """Plan what a Sequence input still holds, so it is listed remaining (or skipped).

        Any other input (a generator, an endless or paged async source) is left where it is.
        Either way :attr:`position` counts only the items the workers read.
        """
        if self.exhausted or not isinstance(self._items, Sequence):
            return
        self.exhausted = True
        not_started = self._ledger.not_started
        try:
            for item in self._items[self.position :]:
                key = self.plan(item, 0)
                if key is not None:
                    not_started.append(key)
        except Exception as error:  # Source.key failed: surface it
            self._life.fail(error)
        # `position` stays where the workers stopped reading: the unstarted rest of the input
        # (listed remaining or skipped just now) begins there.

    async def aclose(self) -> None:
        """Close the user's async iterator (its ``finally`` blocks run now, not at exit)."""
        items, self._async_items = self._async_items, None
        closer = getattr(items, "aclose", None)
        if closer is None:
            return
        try:
            await closer()
        except Exception as error:  # a source that fails to close is reported, not hidden
            self._life.fail(error)


class _Stopped(Exception):
    """The run stopped while this worker waited for the input."""
