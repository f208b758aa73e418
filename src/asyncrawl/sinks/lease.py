"""One holder of a run at a time: a lease kept in the store, taken by conditional puts.

A retry by Airflow or Step Functions while the first invocation still runs, or a second
``asyncrawl crawl --run-id X`` beside the first, must not crawl the same run twice at once.
:class:`RunLease` needs nothing but the store's atomic
:meth:`~asyncrawl.sinks.base.BlobStore.put_if_absent` (S3 ``If-None-Match: *``, a hard link on
a directory): no lock service, no table.

The lease is a series of small objects, one per change, never rewritten::

    _meta/runs/{run_id}/lease/{generation:08d}.json   {"holder", "state", "expires_at"}

The newest generation is the lease's state. To take, renew or give back the lease a holder
writes generation ``newest + 1`` with ``put_if_absent``: of two holders racing for the same
generation exactly one wins, and the loser reads the newest again. A lease that is ``held``
and not expired refuses everyone but its holder; one that expired (its holder crashed or was
killed) or was ``released`` can be taken by the next. Expiry uses the wall clock (holders are
different processes or machines): make ``ttl_s`` a little longer than the longest a holder
may run without renewing, e.g. the Lambda function's timeout.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson

from ..errors import ConfigError, SinkError
from .base import BlobStore
from .layout import run_prefix

__all__ = ["RunLease", "lease_prefix"]

_GENERATION = re.compile(r"(\d{8,})\.json")
_JSON = "application/json"
# Lost races in a row before acquire() gives up (each loss means another holder moved first).
_RACES = 5


def lease_prefix(run_id: str) -> str:
    """Where a run's lease generations live: ``_meta/runs/{run_id}/lease/``."""
    return f"{run_prefix(run_id)}lease/"


class RunLease:
    """A lease on ``run_id`` in ``store``, valid ``ttl_s`` seconds after each take or renewal.

    :meth:`acquire` takes it (``False`` when another holder's lease is valid), :meth:`renew`
    extends it, :meth:`release` gives it back. Store failures are
    :class:`~asyncrawl.errors.SinkError`; a lease is never assumed held on an error.
    """

    def __init__(
        self,
        store: BlobStore,
        run_id: str,
        ttl_s: float,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(ttl_s, bool) or not 0 < ttl_s <= 7 * 86400:
            raise ConfigError("ttl_s", f"must be more than 0 and at most 7 days, not {ttl_s!r}")
        #: Where the lease lives.
        self.store = store
        #: The run it guards.
        self.run_id = run_id
        #: Seconds a take or renewal is valid for.
        self.ttl_s = float(ttl_s)
        #: This holder's id (random unless given), written into each generation it takes.
        self.holder = holder or secrets.token_hex(8)
        self._clock = clock
        self._prefix = lease_prefix(run_id)
        self._generation: int | None = None
        #: Who held the lease when :meth:`acquire` was refused, and until when (wall clock).
        self.busy_holder: str | None = None
        self.busy_until: float | None = None

    @property
    def held(self) -> bool:
        """Whether this holder took the lease (and has not released it or lost it on renewal)."""
        return self._generation is not None

    async def acquire(self, *, stale: Callable[[str], bool] | None = None) -> bool:
        """Take the lease unless another holder's is valid; ``True`` when taken.

        ``stale(holder)`` may declare another holder's unexpired lease dead (say, a process
        on this machine that no longer exists after a ``kill -9``), so a resume need not wait
        for the expiry.
        """
        for _ in range(_RACES):
            generation, record = await self._newest()
            now = self._clock()
            if (
                record is not None
                and record.get("state") == "held"
                and record.get("holder") != self.holder
                and _expiry(record) > now
                and not (stale is not None and stale(str(record.get("holder"))))
            ):
                self.busy_holder = str(record.get("holder"))
                self.busy_until = _expiry(record)
                return False
            if await self._write(generation + 1, "held", now + self.ttl_s):
                self._generation = generation + 1
                return True
        return False

    async def renew(self) -> bool:
        """Extend a held lease by ``ttl_s`` from now; ``False`` (and not held) if it was lost."""
        if self._generation is None:
            return False
        generation, record = await self._newest()
        if generation != self._generation or record is None or record.get("holder") != self.holder:
            self._generation = None  # expired and taken over: stop working on the run
            return False
        if await self._write(generation + 1, "held", self._clock() + self.ttl_s):
            self._generation = generation + 1
            return True
        self._generation = None
        return False

    async def release(self) -> None:
        """Give the lease back, if held, so the next holder need not wait for its expiry."""
        if self._generation is None:
            return
        mine, self._generation = self._generation, None
        generation, record = await self._newest()
        if generation == mine and record is not None and record.get("holder") == self.holder:
            await self._write(generation + 1, "released", self._clock())

    async def _newest(self) -> tuple[int, dict[str, Any] | None]:
        """The newest generation's number and record (``-1, None`` when there is none)."""
        newest = -1
        async for key in self.store.list(self._prefix):
            match = _GENERATION.fullmatch(key[len(self._prefix) :])
            if match:
                newest = max(newest, int(match.group(1)))
        if newest < 0:
            return -1, None
        data = await self.store.get(self._key(newest))
        if data is None:
            raise SinkError(f"lease {self._key(newest)} was listed but cannot be read")
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            record = None
        # An unreadable generation guards nothing: treat it as released.
        return newest, record if isinstance(record, dict) else {"state": "released"}

    async def _write(
        self, generation: int, state: Literal["held", "released"], expires_at: float
    ) -> bool:
        body = orjson.dumps({"holder": self.holder, "state": state, "expires_at": expires_at})
        return await self.store.put_if_absent(self._key(generation), body, content_type=_JSON)

    def _key(self, generation: int) -> str:
        return f"{self._prefix}{generation:08d}.json"


def _expiry(record: dict[str, Any]) -> float:
    value = record.get("expires_at")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
