"""The run's ledger: every count, where each planned item is, and the hand-over to the consumer.

An item is *pending* from the moment it is started until its result is handed to the consumer;
with ``confirm=True`` an ok / no-data result then waits in *unconfirmed* until the consumer
confirms it (a sink stored it). Together with the feed's discovered-but-unstarted items and the
unstarted rest of a Sequence input, those are ``remaining``, so that

    planned == ok + no_data + failed + skipped + remaining

holds at every moment the consumer can look, cancellation included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ..outcomes import Failed, FinalOutcome, NoData, Ok
from ..results import ItemResult
from ..summary import FailedItem, LatencyHistogram, RunCounts, RunSummary

__all__ = ["Ledger"]

T = TypeVar("T")


class Ledger(Generic[T]):
    """Counts and buckets; plain attributes, because the engine touches them on every request."""

    def __init__(self, *, confirm: bool) -> None:
        self.confirm_writes = confirm
        self.planned = 0
        self.ok = 0
        self.no_data = 0
        self.failed: list[FailedItem] = []
        self.skipped = 0
        self.duplicates = 0
        self.requests = 0
        self.retries = 0
        self.hedges = 0
        self.status_counts: dict[str, int] = {}
        self.latency = LatencyHistogram()
        #: Items being crawled (or fetched and not yet handed over): key -> item.
        self.pending: dict[str, T] = {}
        #: Handed over, waiting for the consumer's confirmation: key -> item.
        self.unconfirmed: dict[str, T] = {}
        #: Keys of a Sequence input's items never started.
        self.not_started: list[str] = []

    def count_status(self, status: str) -> None:
        """One more answer (or failure) with this status."""
        counts = self.status_counts
        counts[status] = counts.get(status, 0) + 1

    def count_finished(self, outcome: FinalOutcome) -> None:
        """An item is done for good: ok or no data (failures are counted at hand-over)."""
        if isinstance(outcome, Ok):
            self.ok += 1
        elif isinstance(outcome, NoData):
            self.no_data += 1

    def hand_over(self, result: ItemResult[T]) -> None:
        """The consumer received ``result``: failed, awaiting confirmation, or finished."""
        item = self.pending.pop(result.key, result.item)
        outcome = result.outcome
        if isinstance(outcome, Failed):
            self.failed.append(
                FailedItem(item=result.key, status=outcome.status, reason=outcome.reason)
            )
        elif self.confirm_writes:
            self.unconfirmed[result.key] = item
        else:
            self.count_finished(outcome)

    def confirm(self, result: ItemResult[T]) -> None:
        """The consumer stored ``result``: count it (once)."""
        if result.key in self.unconfirmed:
            del self.unconfirmed[result.key]
            self.count_finished(result.outcome)

    def counts(self, queued: int) -> RunCounts:
        """The counters alone; ``queued`` is the feed's discovered items not started yet."""
        return RunCounts(
            planned=self.planned,
            ok=self.ok,
            no_data=self.no_data,
            failed=len(self.failed),
            skipped=self.skipped,
            remaining=len(self.pending) + len(self.unconfirmed) + queued + len(self.not_started),
            duplicates=self.duplicates,
            requests=self.requests,
            retries=self.retries,
            hedges=self.hedges,
        )

    def summary(
        self,
        *,
        run_id: str,
        queued: Iterable[str],
        elapsed: float,
        fatal: str | None,
        cancelled: bool,
    ) -> RunSummary:
        """The run summary; ``queued`` lists the keys of discovered items not started yet."""
        remaining = (*self.pending, *self.unconfirmed, *queued, *self.not_started)
        return RunSummary(
            run_id=run_id,
            planned=self.planned,
            ok=self.ok,
            no_data=self.no_data,
            failed=tuple(self.failed),
            remaining=remaining,
            skipped=self.skipped,
            duplicates=self.duplicates,
            requests=self.requests,
            retries=self.retries,
            hedges=self.hedges,
            status_counts=dict(self.status_counts),
            elapsed_s=elapsed,
            latency=self.latency.copy(),
            fatal=fatal,
            cancelled=cancelled,
        )
