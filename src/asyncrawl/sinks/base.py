"""Where results go: the Sink protocol and the BlobStore beneath the file-based sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from ..results import ItemResult

__all__ = ["BlobStore", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Stores finished items. ``write`` returns only once the result is durable.

    Raising :class:`asyncrawl.errors.SinkError` leaves the item unfinished ("remaining").
    """

    async def write(self, result: ItemResult[Any]) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Whole-object storage under one root (a directory or an S3 prefix).

    Keys are ``/``-separated and relative to the root. ``put`` is atomic: a reader sees the
    old object or the new one, never a part. ``get`` returns ``None`` for a missing key.
    Every failure is a :class:`~asyncrawl.errors.SinkError`.
    """

    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Store ``data`` at ``key`` only if no object is there; ``True`` when this call did.

        Atomic: of two concurrent writers exactly one gets ``True`` (S3 ``If-None-Match: *``,
        a hard link or ``O_EXCL`` on a directory). It backs :class:`~asyncrawl.sinks.lease.
        RunLease`.
        """
        ...

    async def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
