"""Run metadata under ``_meta/runs/{run_id}/``: the journal of finished items, the summary,
and continuation state too large for a token.

S3 cannot append, so the journal is written in parts, each one whole object:
``_meta/runs/{run_id}/journal/part-{NNNNNN}-{random}.jsonl`` holding one
``{"key": ..., "status": "ok"|"no_data"}`` line per finished item. Parts are never rewritten;
loading takes the union of all of them, and a later part wins where two disagree. The random
part of the name keeps two writers of the same run id (a resumed run, a retried Lambda) from
overwriting each other's parts.

Parts are small (one a second during a run), so a long run chained over many Lambda
invocations would read hundreds of them at every resume. So :meth:`RunJournal.load`, once it
has read ``compact_after`` parts or more, writes their union as one
``checkpoint-{NNNNNN}-{random}.jsonl`` whose first line names the parts it covers; the next
load reads the newest checkpoint and only the parts it does not name (a slow writer's part with
an old number included). Nothing is deleted (a store needs no delete), and a checkpoint that
cannot be written or read back only means reading every part again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson

from ..errors import ConfigError, SinkError
from .base import BlobStore
from .layout import journal_prefix, state_key, summary_key, validate_run_id

__all__ = [
    "JournalStatus",
    "RunJournal",
    "read_run_state",
    "read_summary",
    "write_run_state",
    "write_summary",
]

logger = logging.getLogger(__name__)

#: How an item finished, as the journal records it.
JournalStatus = Literal["ok", "no_data"]
_STATUSES: frozenset[str] = frozenset({"ok", "no_data"})
_PART = re.compile(r"part-(\d{6,})-[0-9a-f]+\.jsonl")
_CHECKPOINT = re.compile(r"checkpoint-(\d{6,})-[0-9a-f]+\.jsonl")
_JSONL = "application/x-ndjson"


class RunJournal:
    """The items a run has finished, so that re-running with the same run id skips them.

    :meth:`record` adds an entry; the pending entries are written as one new part, in one
    atomic put, once ``flush_every`` are pending or ``flush_interval`` seconds after the oldest
    pending one was recorded, whichever comes first (and on :meth:`flush` or :meth:`aclose`).
    That bounds what a crash (``kill -9``, a lost container) can forget: the items stored in
    the last ``flush_interval`` seconds at most, which a resume fetches again and rewrites at
    their same keys. If a put fails the entries stay pending for the next flush: none is lost.
    """

    def __init__(
        self,
        store: BlobStore,
        run_id: str,
        *,
        flush_every: int = 50,
        flush_interval: float = 1.0,
        load_concurrency: int = 16,
        compact_after: int = 64,
    ) -> None:
        if isinstance(flush_every, bool) or flush_every < 1:
            raise ConfigError("flush_every", f"must be a positive integer, not {flush_every!r}")
        if isinstance(flush_interval, bool) or not 0 < flush_interval <= 3600:
            raise ConfigError(
                "flush_interval", f"must be more than 0 and at most 3600 s, not {flush_interval!r}"
            )
        if isinstance(load_concurrency, bool) or load_concurrency < 1:
            raise ConfigError(
                "load_concurrency", f"must be a positive integer, not {load_concurrency!r}"
            )
        if isinstance(compact_after, bool) or compact_after < 2:
            raise ConfigError(
                "compact_after", f"must be an integer of at least 2, not {compact_after!r}"
            )
        #: Where the parts go.
        self.store = store
        #: The run these entries belong to.
        self.run_id = validate_run_id(run_id)
        #: Entries per part: a flush happens when this many are pending.
        self.flush_every = flush_every
        #: Seconds an entry may wait for its part: a flush happens then, however few are pending.
        self.flush_interval = float(flush_interval)
        #: Parts read at once by :meth:`load`.
        self.load_concurrency = load_concurrency
        #: Parts read by one :meth:`load` from which it writes a checkpoint of their union.
        self.compact_after = compact_after
        self._prefix = journal_prefix(run_id)
        self._pending: dict[str, JournalStatus] = {}
        self._next_part = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stored_during_load: dict[str, JournalStatus] | None = None

    @property
    def pending(self) -> int:
        """How many recorded entries are not yet in a stored part."""
        return len(self._pending)

    async def load(self) -> dict[str, JournalStatus]:
        """Every finished item of the run so far: ``{key: "ok" | "no_data"}``.

        The newest readable checkpoint, then every part it does not cover (in part order, a
        later part winning), then the entries recorded here and not yet stored. New parts are
        numbered after the stored. Having read ``compact_after`` parts or more, it writes a
        checkpoint of what it read, so the next load reads one object instead of them.
        """
        # Entries this journal stores while the load runs are in no listing: kept apart.
        self._stored_during_load = {}
        try:
            finished = await self._load_stored()
            finished.update(self._stored_during_load)
        finally:
            self._stored_during_load = None
        finished.update(self._pending)
        return finished

    async def _load_stored(self) -> dict[str, JournalStatus]:
        parts: list[tuple[int, str]] = []
        checkpoints: list[tuple[int, str]] = []
        async for key in self.store.list(self._prefix):
            name = key[len(self._prefix) :]
            if match := _PART.fullmatch(name):
                parts.append((int(match.group(1)), name))
            elif match := _CHECKPOINT.fullmatch(name):
                checkpoints.append((int(match.group(1)), name))
        parts.sort()
        numbers = [number for number, _name in parts + checkpoints]
        if numbers:
            self._next_part = max(self._next_part, max(numbers) + 1)
        finished: dict[str, JournalStatus] = {}
        covered: frozenset[str] = frozenset()
        for _number, name in sorted(checkpoints, reverse=True):
            covers = await self._read_checkpoint(name, finished)
            if covers is not None:
                covered = covers
                break
        unread = [(number, name) for number, name in parts if name not in covered]
        await self._read_parts(unread, finished)
        if len(unread) >= self.compact_after:
            number = max(numbers) + 1
            await self._write_checkpoint(number, covered | {n for _, n in unread}, finished)
        return finished

    async def _read_checkpoint(
        self, name: str, finished: dict[str, JournalStatus]
    ) -> frozenset[str] | None:
        """Apply checkpoint ``name``; the part names it covers (None: unreadable, skip it)."""
        data = await self.store.get(self._prefix + name)
        if data is None:
            return None  # gone since the listing
        header, _, body = data.partition(b"\n")
        try:
            covers = orjson.loads(header)["covers"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            covers = None
        if not isinstance(covers, list) or not all(isinstance(n, str) for n in covers):
            logger.warning("journal checkpoint %s: unreadable; reading the parts instead", name)
            return None
        self._apply(body, name, finished)
        return frozenset(covers)

    async def _read_parts(
        self, parts: list[tuple[int, str]], finished: dict[str, JournalStatus]
    ) -> None:
        # Parts are small and many (one per flush interval), so they are read concurrently,
        # then applied in part order so that a later part wins.
        slots = asyncio.Semaphore(self.load_concurrency)

        async def read(key: str) -> bytes | None:
            async with slots:
                return await self.store.get(key)

        bodies = await asyncio.gather(*(read(self._prefix + name) for _number, name in parts))
        for (_number, name), data in zip(parts, bodies, strict=True):
            if data is not None:
                self._apply(data, name, finished)

    def _apply(self, data: bytes, part: str, finished: dict[str, JournalStatus]) -> None:
        for line in data.splitlines():
            if line.strip():
                self._read_entry(line, part, finished)

    async def _write_checkpoint(
        self, number: int, covers: Iterable[str], finished: Mapping[str, JournalStatus]
    ) -> None:
        """Store ``finished``, the union of the parts named in ``covers``, as one checkpoint.

        It names the parts it covers: a part it does not (a slow writer's, or one stored while
        this load ran) is still read by every later load, whatever its number.
        """
        key = f"{self._prefix}checkpoint-{number:06d}-{secrets.token_hex(4)}.jsonl"
        header = orjson.dumps({"covers": sorted(covers)}, option=orjson.OPT_APPEND_NEWLINE)
        try:
            await self.store.put(key, header + _entries(finished), content_type=_JSONL)
        except SinkError as exc:
            # The parts are all still there: the next load reads them again, nothing more.
            logger.warning("journal checkpoint not written (parts kept): %s", exc)

    @staticmethod
    def _read_entry(line: bytes, part: str, finished: dict[str, JournalStatus]) -> None:
        # A damaged line costs at most a second fetch of its item: skip it, say so, go on.
        try:
            entry = orjson.loads(line)
            item, status = entry["key"], entry["status"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("journal part %s: skipping an unreadable line", part)
            return
        if status == "ok" or status == "no_data":
            finished[str(item)] = status
        else:
            logger.warning("journal part %s: skipping unknown status %r", part, status)

    async def record(self, key: str, status: JournalStatus) -> None:
        """Note that ``key`` finished with ``status``; flushes when enough are pending.

        A failed automatic flush is logged, not raised: the entries stay pending, and the
        caller's own write (already stored) must not be reported as failed because of it.
        :meth:`flush` and :meth:`aclose` raise.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be 'ok' or 'no_data', not {status!r}")
        # Re-inserting moves the key to the end, so the newest status is what a part holds.
        self._pending.pop(key, None)
        self._pending[key] = status
        if len(self._pending) >= self.flush_every:
            await self._flush_logged()
        elif self._timer is None:
            # The oldest pending entry waits flush_interval at most, even if no more arrive.
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_interval, self._flush_in_background)

    def _flush_in_background(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._flush_logged())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except SinkError as exc:
            logger.warning("journal flush failed; %d entries kept pending: %s", self.pending, exc)

    async def flush(self) -> None:
        """Write every pending entry as one new part; SinkError (entries kept) on failure."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            await self._write_part()
        finally:
            if self._pending and self._timer is None:
                # Entries recorded during the put, or kept by a failed one: they get their own
                # interval.
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.flush_interval, self._flush_in_background)

    async def _write_part(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch = dict(self._pending)
            body = _entries(batch)
            number = self._next_part
            part = f"{self._prefix}part-{number:06d}-{secrets.token_hex(4)}.jsonl"
            await self.store.put(part, body, content_type=_JSONL)
            self._next_part = number + 1
            if self._stored_during_load is not None:
                self._stored_during_load.update(batch)
            # Drop only what was written: entries recorded during the put stay pending, and so
            # does an entry whose status changed meanwhile.
            for key, status in batch.items():
                if self._pending.get(key) == status:
                    del self._pending[key]

    async def aclose(self) -> None:
        """Flush what is pending (the store stays open: it belongs to the caller).

        A background flush still under way is awaited first, so its part is numbered and
        stored before the last one.
        """
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self.flush()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def _entries(entries: Mapping[str, JournalStatus]) -> bytes:
    """One ``{"key": ..., "status": ...}`` JSON line per entry."""
    return b"".join(
        orjson.dumps({"key": key, "status": status}, option=orjson.OPT_APPEND_NEWLINE)
        for key, status in entries.items()
    )


async def write_summary(store: BlobStore, run_id: str, summary: Mapping[str, Any]) -> str:
    """Store the run summary at ``_meta/runs/{run_id}/summary.json``; returns that key."""
    key = summary_key(run_id)
    body = orjson.dumps(dict(summary), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    await store.put(key, body, content_type="application/json")
    return key


async def read_summary(store: BlobStore, run_id: str) -> dict[str, Any] | None:
    """The run summary written by :func:`write_summary`, or ``None`` if there is none."""
    data = await store.get(summary_key(run_id))
    if data is None:
        return None
    summary: dict[str, Any] = orjson.loads(data)
    return summary


async def write_run_state(store: BlobStore, run_id: str, name: str, data: bytes) -> str:
    """Store opaque state at ``_meta/runs/{run_id}/state/{name}``; returns that key.

    For continuation state too large for the Lambda's 32 KB token: the token names the key.
    """
    key = state_key(run_id, name)
    await store.put(key, data, content_type="application/octet-stream")
    return key


async def read_run_state(store: BlobStore, run_id: str, name: str) -> bytes | None:
    """The state written by :func:`write_run_state`, or ``None`` if there is none."""
    return await store.get(state_key(run_id, name))
