"""Run accounting: every planned item ends in exactly one bucket.

    planned == ok + no_data + len(failed) + skipped + len(remaining)

``ok`` and ``no_data`` count only items whose result the consumer confirmed (for a sink: the
write is durable); ``failed`` items carry their last status and reason; ``remaining`` lists the
keys of items not finished for any reason (deadline, cancellation, fatal stop, abandoned in
flight, or a write that was not confirmed), so a later run can finish exactly those; ``skipped``
counts what ``max_depth`` / ``max_items`` left out. ``planned`` counts seeds and discovered items
once per key; ``duplicates`` counts the items whose key was already planned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FailedItem", "LatencyHistogram", "RunCounts", "RunSummary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedItem:
    """An item that ended failed: its key, last status and the reason."""

    item: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The contract's ``{item, status, reason}`` object."""
        return {"item": self.item, "status": self.status, "reason": self.reason}


#: The histogram's range and resolution: 0.1 ms to about 2.8 hours, each bucket 5% wide.
_LOW = 1e-4
_GROWTH = 1.05
_BUCKETS = 360
# record() works out the bucket as log(seconds / _LOW) / log(_GROWTH): both constants folded.
_PER_LOG = 1 / math.log(_GROWTH)
_LOG_LOW = math.log(_LOW)
_LOG = math.log


class LatencyHistogram:
    """Attempt latencies in a fixed number of log-spaced buckets (5% wide).

    Memory and the cost of a quantile stay the same at 100 or 100,000 attempts; a quantile is
    exact to within one bucket (5%), and the maximum is exact.
    """

    __slots__ = ("_counts", "count", "max")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        #: Latencies recorded.
        self.count = 0
        #: The largest latency recorded, in seconds.
        self.max = 0.0

    def record(self, seconds: float) -> None:
        """Count one latency."""
        if seconds <= _LOW:
            index = 0
        else:
            index = int((_LOG(seconds) - _LOG_LOW) * _PER_LOG) + 1
            if index >= _BUCKETS:
                index = _BUCKETS - 1
        self._counts[index] += 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def record_many(self, values: list[float]) -> None:
        """Count many latencies (one loop, no call per value: the engine records in batches)."""
        counts = self._counts
        top = self.max
        for seconds in values:
            if seconds <= _LOW:
                counts[0] += 1
                continue
            index = int((_LOG(seconds) - _LOG_LOW) * _PER_LOG) + 1
            counts[index if index < _BUCKETS else _BUCKETS - 1] += 1
            if seconds > top:
                top = seconds
        self.max = top
        self.count += len(values)

    def quantile(self, fraction: float) -> float:
        """The latency below which ``fraction`` of those recorded fall (a bucket's upper edge,
        never above the maximum); 0.0 when nothing was recorded."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return min(self.max, _LOW * _GROWTH**index)
        return self.max  # pragma: no cover - the counts add up to self.count

    def copy(self) -> LatencyHistogram:
        """An independent copy (a summary keeps one that the run no longer changes)."""
        twin = LatencyHistogram()
        twin._counts = list(self._counts)
        twin.count = self.count
        twin.max = self.max
        return twin


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCounts:
    """A run's counters without its lists: cheap to take on every result (progress displays)."""

    planned: int
    ok: int
    no_data: int
    failed: int
    skipped: int
    remaining: int
    duplicates: int
    requests: int
    retries: int
    hedges: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """The outcome of one run, as written to ``summary.json`` and the Lambda body."""

    run_id: str
    planned: int
    ok: int
    no_data: int
    failed: tuple[FailedItem, ...]
    remaining: tuple[str, ...]
    requests: int
    retries: int
    status_counts: Mapping[str, int]
    elapsed_s: float
    #: Attempt latencies, for the percentiles (not serialised whole).
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    #: Why the run stopped early, when the upstream refused it.
    fatal: str | None = None
    #: True when the run was cancelled (Ctrl-C, task cancellation).
    cancelled: bool = False
    #: Planned items that ``max_depth`` / ``max_items`` left out.
    skipped: int = 0
    #: Items (seeds or discovered) whose key was already planned: the same work, done once.
    duplicates: int = 0
    #: Second copies sent of requests slow to answer (also counted in ``requests``).
    hedges: int = 0

    @property
    def consistent(self) -> bool:
        """Whether every planned item is in exactly one bucket."""
        return self.planned == (
            self.ok + self.no_data + len(self.failed) + self.skipped + len(self.remaining)
        )

    @property
    def finished(self) -> bool:
        """Nothing remains to be done (some items may have failed)."""
        return not self.remaining

    @property
    def requests_per_s(self) -> float:
        """Achieved request rate over the run."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Attempt latency percentiles (p50, p90, p99, max) in milliseconds."""
        latency = self.latency
        return {
            "p50": round(latency.quantile(0.50) * 1000, 1),
            "p90": round(latency.quantile(0.90) * 1000, 1),
            "p99": round(latency.quantile(0.99) * 1000, 1),
            "max": round(latency.max * 1000, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON shape (``summary.json``, ``--summary``, ``crawl_result``)."""
        return {
            "run_id": self.run_id,
            "planned": self.planned,
            "ok": self.ok,
            "no_data": self.no_data,
            "failed": [f.to_dict() for f in self.failed],
            "remaining": list(self.remaining),
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "requests": self.requests,
            "retries": self.retries,
            "hedges": self.hedges,
            "status_counts": dict(sorted(self.status_counts.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(self.requests_per_s, 2),
            "latency_ms": self.latency_ms(),
            "fatal": self.fatal,
            "cancelled": self.cancelled,
        }
