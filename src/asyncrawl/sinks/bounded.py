"""Every storage call ends in time: a store that stops answering is an error, not a hang.

A stalled S3 endpoint (or a hung disk) must not outlive the run's budget: :func:`bounded`
wraps any :class:`~asyncrawl.sinks.base.BlobStore` so that each call ends by
``min(deadline_at, now + call_timeout)`` on the event loop's clock, and a call that does not
raises :class:`~asyncrawl.errors.SinkError` naming the store ("S3 store s3://b/p did not
answer within 8.0 s (write data/x)"). What the abandoned call leaves behind is safe: puts are
atomic (a rename, an S3 PutObject), so a put that lands after its timeout stores the same
whole object a retry would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..errors import ConfigError, SinkError
from .base import BlobStore

__all__ = ["BoundedStore", "bounded", "describe_store"]

T = TypeVar("T")


def describe_store(store: object) -> str:
    """How messages name ``store``: ``S3 store s3://b/p``, ``directory store /out``."""
    uri = getattr(store, "uri", None)
    if isinstance(uri, str):
        return f"S3 store {uri}"
    root = getattr(store, "root", None)
    if root is not None:
        return f"directory store {root}"
    return f"store {store!r}"


class BoundedStore:
    """A BlobStore whose every call ends within a time limit (see :func:`bounded`).

    ``deadline_at`` (loop clock) may be moved later or earlier while the store is in use, e.g.
    when a run learns its own deadline. ``timeouts`` counts the calls that ran out of time.
    """

    def __init__(
        self, store: BlobStore, *, deadline_at: float | None, call_timeout: float, name: str
    ) -> None:
        if isinstance(call_timeout, bool) or not call_timeout > 0:
            raise ConfigError("call_timeout", f"must be more than 0 seconds, not {call_timeout!r}")
        #: The store every call goes to.
        self.inner = store
        #: Loop-clock time by which every call ends (``None``: only ``call_timeout`` holds).
        self.deadline_at = deadline_at
        #: Seconds one call may take.
        self.call_timeout = float(call_timeout)
        #: How messages name the store.
        self.name = name
        #: Calls that ran out of time so far.
        self.timeouts = 0

    def __repr__(self) -> str:
        return f"bounded({self.inner!r}, call_timeout={self.call_timeout})"

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        now = loop.time()
        end = now + self.call_timeout
        if self.deadline_at is not None:
            end = min(end, self.deadline_at)
        if end <= now:
            self.timeouts += 1
            raise SinkError(f"{self.name}: no time left to {what} (the run's deadline passed)")
        try:
            async with asyncio.timeout_at(end) as scope:
                return await call()
        except TimeoutError:
            if not scope.expired():
                raise
            self.timeouts += 1
            raise SinkError(
                f"{self.name} did not answer within {end - now:.1f} s ({what})"
            ) from None

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """The inner store's ``put``, ended by the time limit."""
        await self._call(
            f"write {key}", lambda: self.inner.put(key, data, content_type=content_type)
        )

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """The inner store's ``put_if_absent``, ended by the time limit."""
        return await self._call(
            f"write {key}",
            lambda: self.inner.put_if_absent(key, data, content_type=content_type),
        )

    async def get(self, key: str) -> bytes | None:
        """The inner store's ``get``, ended by the time limit."""
        return await self._call(f"read {key}", lambda: self.inner.get(key))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        """The inner store's ``list``; each page (each step) ends by the time limit."""
        keys = aiter(self.inner.list(prefix))
        try:
            while True:
                key: str | None = await self._call(f"list {prefix}", lambda: anext(keys, None))
                if key is None:
                    return
                yield key
        finally:
            closer = getattr(keys, "aclose", None)
            if closer is not None:
                # An abandoned S3 listing holds a connection until closed; bounded like a call.
                with contextlib.suppress(SinkError):
                    await self._call(f"list {prefix}", closer)

    async def aclose(self) -> None:
        """Close the inner store, within the time limit (a hung close must not hold exit)."""
        await self._call("close", self.inner.aclose)


def bounded(
    store: BlobStore, *, deadline_at: float | None, call_timeout: float = 10.0, name: str
) -> BoundedStore:
    """``store`` with every call ended by ``min(deadline_at, now + call_timeout)``.

    ``deadline_at`` is on the running loop's clock (``loop.time()``); ``None`` leaves only
    ``call_timeout``. A call that runs out of time raises SinkError naming ``name`` (see
    :func:`describe_store`) and the operation.
    """
    return BoundedStore(store, deadline_at=deadline_at, call_timeout=call_timeout, name=name)
