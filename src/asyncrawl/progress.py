"""Progress for people: a rich progress bar on a terminal, plain log lines elsewhere.

rich draws the bar (done/total, ok / no data / failed, requests/s, ETA) and gets out of the way
when output is not a terminal; there we print one plain line every few seconds instead, so CI
logs and ``nohup`` files stay readable.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Self, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .engine import Crawl
from .outcomes import Failed, NoData
from .results import ItemResult

__all__ = ["CrawlProgress"]


class CrawlProgress:
    """Follows one crawl; call :meth:`update` with each stored result."""

    def __init__(
        self, *, total: int | None, stream: TextIO | None = None, interval: float = 5.0
    ) -> None:
        self._stream = stream or sys.stderr
        self._total = total
        self._interval = interval
        self._crawl: Crawl[Any] | None = None
        self._done = self._ok = self._no_data = self._failed = 0
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._console = Console(file=self._stream)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def attach(self, crawl: Crawl[Any]) -> None:
        """Read live request counts from ``crawl``."""
        self._crawl = crawl

    def __enter__(self) -> Self:
        if self._console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]crawl"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("crawl", total=self._total, counts="", rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
        else:
            self._line()

    def update(self, result: ItemResult[Any]) -> None:
        """Count one stored result."""
        self._done += 1
        if isinstance(result.outcome, Failed):
            self._failed += 1
        elif isinstance(result.outcome, NoData):
            self._no_data += 1
        else:
            self._ok += 1
        if self._progress is not None:
            self._refresh()
        elif time.monotonic() - self._last_line >= self._interval:
            self._line()

    def _rate(self) -> float:
        # counts(), not summary: a summary copies the lists, which grow with the run.
        requests = self._crawl.counts().requests if self._crawl else self._done
        elapsed = time.monotonic() - self._t0
        return requests / elapsed if elapsed > 0 else 0.0

    def _counts(self) -> str:
        return f"ok {self._ok} · no data {self._no_data} · failed {self._failed}"

    def _refresh(self) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            completed=self._done,
            counts=self._counts(),
            rate=f"{self._rate():.1f} req/s",
        )

    def _line(self) -> None:
        self._last_line = time.monotonic()
        total = "?" if self._total is None else str(self._total)
        print(
            f"progress: {self._done}/{total} done ({self._counts()}), {self._rate():.1f} req/s",
            file=self._stream,
            flush=True,
        )
