"""The OpenDART statements job: plan -> engine -> record sink -> journal and summary.

Both leaves run it: ``asyncrawl crawl`` on a terminal and the Lambda handler within its budget.
It resumes by run id (items the run's journal lists as finished are not fetched again), and
whatever ends the run -- the end of the plan, the deadline, a fatal upstream answer, a failing
store, cancellation -- it flushes the journal and writes ``_meta/runs/{run_id}/summary.json``
before returning or re-raising, so nothing already fetched is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..engine import CrawlConfig, run
from ..errors import SinkError, UpstreamFatalError
from ..http import AiohttpFetcher, Fetcher
from ..limiter import RateLimiter
from ..pipeline import deliver
from ..results import ItemResult
from ..sinks import BlobStore, RecordSink, RunJournal, write_summary
from ..sources.opendart import OpenDartSource, StatementItem
from ..sources.opendart.layout import data_key
from ..summary import RunSummary

__all__ = ["JobResult", "run_statements_job"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """How a job ended: its summary, where the summary is stored, and a fatal error if any."""

    summary: RunSummary
    summary_key: str
    fatal: UpstreamFatalError | None = None
    sink_error: SinkError | None = None
    #: Items already finished by an earlier part of this run (resumed from its journal).
    resumed: int = 0


def _data_key(result: ItemResult[Any]) -> str:
    item: StatementItem = result.item
    return data_key(item)


async def run_statements_job(
    items: Iterable[StatementItem],
    *,
    source: OpenDartSource,
    store: BlobStore,
    run_id: str,
    config: CrawlConfig,
    total: int | None = None,
    limiter: RateLimiter | None = None,
    fetcher: Fetcher | None = None,
    on_result: Callable[[ItemResult[Any]], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
) -> JobResult:
    """Crawl ``items`` into ``store`` under ``run_id``; always leaves a summary behind.

    Cancellation is re-raised after the summary is written; a fatal upstream error and a
    failing store are reported in the returned :class:`JobResult` (the summary says which
    items remain).
    """
    journal = RunJournal(store, run_id)
    done = await journal.load()
    sink = RecordSink(store, data_key=_data_key, journal=journal)
    fatal: UpstreamFatalError | None = None
    sink_error: SinkError | None = None
    async with _open_fetcher(fetcher) as http:
        crawl = run(
            source,
            items,
            fetcher=http,
            config=config,
            limiter=limiter,
            run_id=run_id,
            total=total,
            done=done,
            confirm=True,
        )
        if on_start is not None:
            on_start(crawl)
        try:
            await deliver(crawl, sink, on_result=on_result)
        except UpstreamFatalError as error:
            fatal = error
            log.error("run %s stopped: %s", run_id, error.reason)
        except SinkError as error:
            sink_error = error
            log.error("run %s stopped: the store keeps failing: %s", run_id, error)
        finally:
            # Shielded: on cancellation (Ctrl-C) the journal and summary must still be written.
            await asyncio.shield(_finish(sink, store, run_id, crawl.summary))
    summary = crawl.summary
    return JobResult(
        summary=summary,
        summary_key=f"_meta/runs/{run_id}/summary.json",
        fatal=fatal,
        sink_error=sink_error,
        resumed=len(done),
    )


async def _finish(sink: RecordSink, store: BlobStore, run_id: str, summary: RunSummary) -> None:
    try:
        await sink.aclose()
    except SinkError as error:  # the summary still goes out; the items stay resumable by data
        log.error("run %s: could not flush the journal: %s", run_id, error)
    await write_summary(store, run_id, summary.to_dict())


@asynccontextmanager
async def _open_fetcher(given: Fetcher | None) -> AsyncIterator[Fetcher]:
    """Use the given fetcher as it is, or open an AiohttpFetcher for this job only."""
    if given is not None:
        yield given
        return
    async with AiohttpFetcher() as fetcher:
        yield fetcher
