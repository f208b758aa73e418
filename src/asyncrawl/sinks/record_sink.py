"""The sink a crawl writes through: one data file per item with data, and the run journal."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import SinkError
from ..outcomes import Failed, NoData, Ok
from ..results import ItemResult
from .base import BlobStore
from .journal import RunJournal
from .records import encode_off_loop

__all__ = ["DATA_CONTENT_TYPE", "RecordSink"]

#: Content type of the data files. Not ``Content-Encoding: gzip``: HTTP clients would then
#: decompress on download, and the bytes saved would no longer match the ``.gz`` name.
DATA_CONTENT_TYPE = "application/gzip"


class RecordSink:
    """Stores each finished item in a :class:`~asyncrawl.sinks.base.BlobStore`.

    - ``Ok``: the payload (an iterable of row mappings) becomes gzip-compressed JSON Lines at
      ``data_key(result)``; then the journal records the item as ``"ok"``. ``write`` returns
      only after the put succeeded, so an item counts as ok only once it is stored.
    - ``NoData``: no data file; the journal records the item as ``"no_data"``.
    - ``Failed``: nothing is stored (the run summary reports it) and it is not journalled, so
      a re-run tries it again.

    Writing the same item again replaces the same key with the same bytes: never a second copy.
    The store is the caller's to close; :meth:`aclose` flushes the journal.
    """

    def __init__(
        self,
        store: BlobStore,
        *,
        data_key: Callable[[ItemResult[Any]], str],
        journal: RunJournal | None = None,
    ) -> None:
        #: Where data files go.
        self.store = store
        #: Maps a finished item to its data file's key (see :func:`.partitioned_key`).
        self.data_key = data_key
        #: The run journal, or ``None`` (the default) when the run need not be resumable.
        self.journal = journal

    async def write(self, result: ItemResult[Any]) -> None:
        """Store ``result``; raises SinkError (item stays unfinished) when the put fails."""
        outcome = result.outcome
        if isinstance(outcome, Ok):
            key = self.data_key(result)
            rows: Iterable[Mapping[str, Any]] = outcome.payload
            try:
                # On a worker thread: compressing a big item must not stall the event loop.
                body = await encode_off_loop(rows)
            except TypeError as exc:
                # A Source bug, not a storage fault; still, the item must not count as ok.
                raise SinkError(f"item {result.key}: payload is not JSON rows: {exc}") from None
            await self.store.put(key, body, content_type=DATA_CONTENT_TYPE)
            if self.journal is not None:
                await self.journal.record(result.key, "ok")
        elif isinstance(outcome, NoData):
            if self.journal is not None:
                await self.journal.record(result.key, "no_data")
        elif isinstance(outcome, Failed):
            return

    async def aclose(self) -> None:
        """Flush the journal; SinkError if its last part cannot be stored."""
        if self.journal is not None:
            await self.journal.aclose()
