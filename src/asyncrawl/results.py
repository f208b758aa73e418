"""What the engine hands to consumers: one ItemResult per finished item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .outcomes import Failed, NoData, Ok

__all__ = ["ItemResult"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult(Generic[T]):
    """One item's final outcome, streamed as soon as the item finishes."""

    item: T
    #: The Source's stable key for the item.
    key: str
    outcome: Ok | NoData | Failed
    #: HTTP attempts this item took, retries included (hedge copies are counted in
    #: ``RunSummary.hedges``).
    attempts: int
    #: Wall-clock time (seconds since the epoch) the item finished.
    finished_at: float
    #: Items this answer discovered (``Ok.follow`` / ``NoData.follow``) that the run will
    #: crawl: new keys within the depth and item limits. A sink or journal records them no
    #: later than this result counts as finished, so they survive a crash or a hand-over.
    discovered: tuple[Any, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the item finished with data."""
        return isinstance(self.outcome, Ok)
