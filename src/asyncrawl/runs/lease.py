"""One invocation per run id at a time: the run layer's use of the storage lease.

The run layer takes the run's :class:`~asyncrawl.sinks.lease.RunLease` (conditional puts
under ``_meta/runs/{run_id}/lease/``) before it reads the journal and gives it back after the
summary is stored. A second invocation of the same run id (a retry by Airflow or Step
Functions while the first still runs, a replayed token) finds the lease held and is told the
run is busy (:class:`RunBusyError`) instead of crawling the same items twice at once. A
crashed holder blocks its run for ``ttl_s`` at most: the handler makes that its own budget
plus a margin, a little past the function's timeout.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import AsyncrawlError
from ..sinks.base import BlobStore
from ..sinks.lease import RunLease

__all__ = ["RunBusyError", "open_lease"]


class RunBusyError(AsyncrawlError):
    """Another invocation holds the run's lease: try again after it ends (or expires)."""

    def __init__(self, run_id: str, until: float | None) -> None:
        self.run_id = run_id
        #: When the holder's lease expires at the latest (wall clock), if known.
        self.until = until
        when = (
            f" until {datetime.fromtimestamp(until, UTC):%Y-%m-%d %H:%M:%S} UTC at the latest"
            if until is not None
            else ""
        )
        super().__init__(
            f"run {run_id} is busy: another invocation holds its lease{when}; try again "
            "later with the same run_id and continuation"
        )


def open_lease(store: BlobStore, run_id: str, ttl_s: float) -> RunLease:
    """The run's lease in ``store`` (not yet taken)."""
    return RunLease(store, run_id, ttl_s)
