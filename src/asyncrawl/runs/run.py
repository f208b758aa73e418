"""The resumable run: plan -> engine -> sink -> journal -> summary, for any Source.

:func:`run_resumable` is what both leaves call: ``asyncrawl crawl`` (through the OpenDART
job) and the Lambda handler (for whichever job ``CRAWL_JOB`` names). In order:

1. take the run's lease (optional; :mod:`asyncrawl.runs.lease`): a second holder is refused
   with :class:`~asyncrawl.runs.lease.RunBusyError`;
2. read the run's journal: items it lists as finished are not given to the engine, only
   counted as ``already_done`` (a replayed token or a re-run fetches and writes nothing
   twice, and says so);
3. crawl the rest, storing each result through a :class:`~asyncrawl.sinks.RecordSink`;
4. whatever ended the crawl (the plan's end, the deadline, a fatal answer, a failing store,
   cancellation), flush the journal and write ``_meta/runs/{run_id}/summary.json``: the
   run's document (see below);
5. hand back the remaining items by key (for a continuation), and release the lease.

Two summaries come out. The **part** (a Lambda answer's ``crawl_result``) says what this part
did: ``planned`` is what it was given, ``ok`` / ``no_data`` what it finished now, and
``already_done`` what it found finished (a bucket of its own: ``planned == ok + no_data +
already_done + failed + remaining``). The **document** (``summary.json``) is the run's: the
part merged (:func:`asyncrawl.runs.merge.merge_summaries`) onto the run's earlier document
when there is one, with items found finished counted as ``ok`` / ``no_data`` (they were
finished in this run, by a part whose answer was lost or by an earlier re-run), so the
contract's ``planned == ok + no_data + failed + remaining`` holds; ``resumed`` says how many
of them this part did not fetch. ``fold=False`` leaves them out instead, for an ``earlier``
document that already counts them (a replayed old token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..engine import CrawlConfig, run
from ..errors import SinkError, UpstreamFatalError
from ..http import AiohttpFetcher, Fetcher
from ..limiter import RateLimiter
from ..outcomes import NoData, Ok
from ..pipeline import deliver
from ..results import ItemResult
from ..sinks import BlobStore, RecordSink, RunJournal, summary_key, write_summary
from ..source import Source
from ..summary import RunSummary
from .lease import RunBusyError, open_lease
from .merge import bound_summary, merge_summaries

__all__ = ["RunResult", "run_resumable"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# The stored summary keeps whole lists (answers bound theirs; see merge.bound_summary).
_UNBOUNDED = 2**62


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult(Generic[T]):
    """How one part of a run ended."""

    #: The engine's summary of the items crawled in this part.
    summary: RunSummary
    #: This part's summary document: the engine's plus the ``already_done`` bucket.
    part: dict[str, Any]
    #: The run's summary as stored: ``part`` merged onto the earlier parts, if any.
    document: dict[str, Any]
    #: Where ``document`` is stored, relative to the output root.
    summary_key: str
    #: The remaining items by key, in plan order (for a continuation).
    remaining_items: dict[str, T] = field(default_factory=dict)
    fatal: UpstreamFatalError | None = None
    sink_error: SinkError | None = None
    #: Items of this plan an earlier part had already finished (not fetched again).
    already_done: int = 0
    #: Of those, how many had data (``ok``) -- the rest were ``no_data``.
    already_ok: int = 0

    @property
    def stopped(self) -> bool:
        """True when the upstream or the store stopped the run early."""
        return self.fatal is not None or self.sink_error is not None


async def run_resumable(
    source: Source[T],
    items: Iterable[T],
    *,
    store: BlobStore,
    run_id: str,
    config: CrawlConfig,
    data_key: Callable[[ItemResult[Any]], str],
    deadline_at: float | None = None,
    limiter: RateLimiter | None = None,
    fetcher: Fetcher | None = None,
    earlier: Mapping[str, Any] | None = None,
    fold: bool = True,
    lease_ttl_s: float | None = None,
    lease_store: BlobStore | None = None,
    on_result: Callable[[ItemResult[Any]], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
) -> RunResult[T]:
    """Crawl ``items`` into ``store`` under ``run_id``; always leaves a summary behind.

    ``earlier`` is the run's merged summary before this part (a continuation's totals), or
    None for a first part or a re-run that planned everything again. With ``lease_ttl_s`` the
    run's lease is held for the whole part (:class:`RunBusyError` when another holds it), in
    ``lease_store`` when given (its own time limits: giving the lease back must not fail
    because the crawl used its whole budget, or the next part would find the run busy).
    ``deadline_at`` (the running loop's clock) makes the engine's deadline end there however
    long the lease and the journal took. Cancellation is re-raised after the summary is
    written; a fatal upstream error and a failing store are reported in the result.
    """
    lease = None
    if lease_ttl_s is not None:
        lease = open_lease(lease_store or store, run_id, lease_ttl_s)
    if lease is not None and not await lease.acquire():
        raise RunBusyError(run_id, lease.busy_until)
    try:
        return await _run(
            source,
            items,
            store=store,
            run_id=run_id,
            config=config,
            data_key=data_key,
            deadline_at=deadline_at,
            limiter=limiter,
            fetcher=fetcher,
            earlier=earlier,
            fold=fold,
            on_result=on_result,
            on_start=on_start,
        )
    finally:
        if lease is not None:
            try:
                await asyncio.shield(lease.release())
            except Exception as error:  # expiry frees it anyway; the answer must still go out
                log.warning("run %s: could not release its lease: %s", run_id, error)


async def _run(
    source: Source[T],
    items: Iterable[T],
    *,
    store: BlobStore,
    run_id: str,
    config: CrawlConfig,
    data_key: Callable[[ItemResult[Any]], str],
    deadline_at: float | None,
    limiter: RateLimiter | None,
    fetcher: Fetcher | None,
    earlier: Mapping[str, Any] | None,
    fold: bool,
    on_result: Callable[[ItemResult[Any]], None] | None,
    on_start: Callable[[Any], None] | None,
) -> RunResult[T]:
    journal = RunJournal(store, run_id)
    done = await journal.load()
    todo: list[T] = []
    by_key: dict[str, T] = {}
    already_ok = already_no_data = 0
    for item in items:
        key = source.key(item)
        status = done.get(key)
        if status is not None:
            if key not in by_key:
                already_ok += status == "ok"
                already_no_data += status == "no_data"
                by_key[key] = item
            continue
        if key not in by_key:
            by_key[key] = item
        todo.append(item)
    sink = RecordSink(store, data_key=data_key, journal=journal)
    fatal: UpstreamFatalError | None = None
    sink_error: SinkError | None = None
    already = already_ok + already_no_data
    if deadline_at is not None:
        left = max(deadline_at - asyncio.get_running_loop().time(), 0.05)
        config = dataclasses.replace(config, deadline=min(config.deadline_s or left, left))
    async with _open_fetcher(fetcher) as http:
        # ``done`` also reaches the engine: a child discovered now whose key an earlier part
        # finished is counted, not fetched again (seeds were taken out above).
        crawl = run(
            source,
            todo,
            fetcher=http,
            config=config,
            limiter=limiter,
            run_id=run_id,
            total=len(todo),
            done=done,
            confirm=True,
        )
        stored = {"ok": 0, "no_data": 0}

        def count(result: ItemResult[Any]) -> None:
            if isinstance(result.outcome, Ok):
                stored["ok"] += 1
            elif isinstance(result.outcome, NoData):
                stored["no_data"] += 1
            if on_result is not None:
                on_result(result)

        if on_start is not None:
            on_start(crawl)
        try:
            await deliver(crawl, sink, on_result=count)
        except UpstreamFatalError as error:
            fatal = error
            log.error("run %s stopped: %s", run_id, error.reason)
        except SinkError as error:
            sink_error = error
            log.error("run %s stopped: the store keeps failing: %s", run_id, error)
        finally:
            # Shielded: on cancellation (Ctrl-C) the journal and summary must still be written.
            summary = crawl.summary
            part = summary.to_dict()
            # Discovered children the journal already had: the engine counted them finished.
            child_ok = max(summary.ok - stored["ok"], 0)
            child_no_data = max(summary.no_data - stored["no_data"], 0)
            part["ok"], part["no_data"] = summary.ok - child_ok, summary.no_data - child_no_data
            already_ok += child_ok
            already_no_data += child_no_data
            already = already_ok + already_no_data
            part["planned"] = summary.planned + already - child_ok - child_no_data
            part["already_done"] = already
            counted = dict(part, already_done=0)
            if fold:
                counted["ok"] += already_ok
                counted["no_data"] += already_no_data
            document = (
                merge_summaries([earlier, counted], sample=_UNBOUNDED) if earlier else counted
            )
            document["resumed"] = already
            finish_error = await asyncio.shield(_finish(sink, store, run_id, document))
    remaining = {key: by_key[key] for key in summary.remaining if key in by_key}
    unfinished = getattr(crawl, "unfinished_items", None)
    if callable(unfinished):  # discovered items the plan did not have (engine discovery)
        for item in unfinished():
            remaining.setdefault(source.key(item), item)
    return RunResult(
        summary=summary,
        part=part,
        document=document,
        summary_key=summary_key(run_id),
        remaining_items=remaining,
        fatal=fatal,
        sink_error=sink_error or finish_error,
        already_done=already,
        already_ok=already_ok,
    )


async def _finish(
    sink: RecordSink, store: BlobStore, run_id: str, document: Mapping[str, Any]
) -> SinkError | None:
    """Flush the journal and store the summary; the store's error, if it failed."""
    failure: SinkError | None = None
    try:
        await sink.aclose()
    except SinkError as error:  # the summary still goes out; the items stay resumable by data
        log.error("run %s: could not flush the journal: %s", run_id, error)
        failure = error
    try:
        await write_summary(store, run_id, document)
    except SinkError as error:
        # Nothing may go unaccounted: the summary's bounded form goes to the log instead.
        log.error(
            "run %s: could not store its summary (%s); the summary is %s",
            run_id,
            error,
            json.dumps(bound_summary(document, sample=20, max_bytes=16 * 1024)),
        )
        failure = failure or error
    return failure


@asynccontextmanager
async def _open_fetcher(given: Fetcher | None) -> AsyncIterator[Fetcher]:
    """Use the given fetcher as it is, or open an AiohttpFetcher for this run only."""
    if given is not None:
        yield given
        return
    async with AiohttpFetcher() as fetcher:
        yield fetcher
