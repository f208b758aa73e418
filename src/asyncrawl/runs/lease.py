"""One invocation per run id at a time: a lease in the run's ``_meta/`` folder.

The run layer takes the lease before it reads the journal and gives it back after the summary
and the continuation are stored. A second invocation of the same run id (a retry by Airflow
or Step Functions while the first still runs, a replayed token) finds the lease held and is
told the run is busy (:class:`RunBusyError`) instead of crawling the same items twice at once.

:func:`open_lease` uses the storage layer's ``asyncrawl.sinks.lease.RunLease`` (conditional
puts) when it is there, else :class:`StoreLease` below: a lease object
``_meta/runs/{run_id}/lease.json`` holding the holder's random id and its expiry (wall clock,
since holders are different processes), written with ``put_if_absent`` when the store has it,
then read back to check who won. An expired lease can be taken over, so a crashed holder
blocks its run for ``ttl_s`` at most: make that a little longer than the function's timeout.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import AsyncrawlError
from ..sinks.base import BlobStore

__all__ = ["Lease", "RunBusyError", "StoreLease", "lease_key", "open_lease"]


class RunBusyError(AsyncrawlError):
    """Another invocation holds the run's lease: try again after it ends (or expires)."""

    def __init__(self, run_id: str, ttl_s: float) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id} is busy: another invocation is working on it (its lease lasts up to "
            f"{ttl_s:.0f} s); try again later with the same run_id and continuation"
        )


class Lease(Protocol):
    """``acquire()`` true when this holder got the lease; ``release()`` gives it back."""

    async def acquire(self) -> bool: ...

    async def release(self) -> None: ...


def lease_key(run_id: str) -> str:
    """Where :class:`StoreLease` keeps a run's lease, relative to the output root."""
    return f"_meta/runs/{run_id}/lease.json"


class StoreLease:
    """A lease object in the store (see the module docstring)."""

    def __init__(
        self,
        store: BlobStore,
        run_id: str,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._key = lease_key(run_id)
        self._ttl = ttl_s
        self._clock = clock
        self._holder = secrets.token_hex(8)
        self._held = False

    async def _read(self) -> dict[str, Any] | None:
        data = await self._store.get(self._key)
        if data is None:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            return {}  # unreadable: treat as expired
        return record if isinstance(record, dict) else {}

    def _record(self, expires_at: float) -> bytes:
        return json.dumps({"holder": self._holder, "expires_at": expires_at}).encode()

    async def acquire(self) -> bool:
        """Take the lease unless another holder's is still valid."""
        current = await self._read()
        now = self._clock()
        if current is not None:
            expires = current.get("expires_at")
            valid = isinstance(expires, int | float) and expires > now
            if valid and current.get("holder") != self._holder:
                return False
        data = self._record(now + self._ttl)
        put_if_absent: Any = getattr(self._store, "put_if_absent", None)
        if current is None and callable(put_if_absent):
            if not await put_if_absent(self._key, data, content_type="application/json"):
                return False
        else:
            await self._store.put(self._key, data, content_type="application/json")
        after = await self._read()
        self._held = after is not None and after.get("holder") == self._holder
        return self._held

    async def release(self) -> None:
        """Give the lease back (an expired record; the store has no delete)."""
        if not self._held:
            return
        current = await self._read()
        if current is not None and current.get("holder") == self._holder:
            await self._store.put(self._key, self._record(0.0), content_type="application/json")
        self._held = False


def open_lease(store: BlobStore, run_id: str, ttl_s: float) -> Lease:
    """The storage layer's RunLease when available, else :class:`StoreLease`."""
    try:
        from ..sinks.lease import RunLease  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return StoreLease(store, run_id, ttl_s)
    lease: Lease = RunLease(store, run_id, ttl_s)
    return lease
