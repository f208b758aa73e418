"""The Lambda handler: crawl within a budget, answer well inside 350 s, hand back the rest.

One invocation: read the settings (cached per cold start) and the event (400 when bad), work
out the budget ``min(MAX_SYNC_SECONDS, remaining time - safety margin)``, then in a fresh event
loop (a warm container runs many invocations; nothing bound to a closed loop is reused) open
the S3 store and an aiohttp session, crawl until the plan is done or the budget is spent,
write what was fetched, and answer:

- 200: nothing remains (``success`` only if nothing failed);
- 206: budget spent; ``continuation`` holds the remaining items, the run's totals so far and
  the rate limiter's recent send times, so the next invocation neither repeats work nor
  starts a fresh rate window;
- 400: bad event (the message names the field); 500: fatal (bad key, IP blocked, quota gone;
  the message says which, never the key).

Each answer's ``crawl_result`` is this invocation's summary (the safe caller adds them up);
``_meta/runs/{run_id}/summary.json`` holds the run's cumulative summary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from ..engine import CrawlConfig
from ..errors import AsyncrawlError, ConfigError, ContinuationError
from ..limiter import RateLimiter
from ..sinks import BlobStore, new_run_id, open_store, write_summary
from ..sources.opendart import (
    Company,
    OpenDartSource,
    StatementItem,
    item_from_key,
    load_companies,
    plan_items,
)
from ..sources.opendart.source import DEFAULT_BASE_URL
from ..summary import RunSummary
from .answer import bad_request, crawl_answer, fatal
from .continuation import ContinuationState, RunTotals, encode_or_spill, resolve
from .event import CrawlEvent, EventError, HandlerSettings, parse_event, settings_from_env
from .logs import configure_json_logging, log_context, reset_json_logging
from .metrics import emf_record, emit_emf
from .secrets import clear_cache, load_api_key

__all__ = ["SAFETY_MARGIN_S", "handler", "reset_cold_start_cache"]

log = logging.getLogger(__name__)

#: Seconds kept back from the function's remaining time (answer serialisation, runtime).
SAFETY_MARGIN_S = 10.0
_settings: HandlerSettings | None = None


def reset_cold_start_cache() -> None:
    """Forget the cached settings and key (tests change the environment between calls)."""
    global _settings
    _settings = None
    clear_cache()
    # Give asyncrawl's log records back to the root logger (pytest's caplog reads them there).
    reset_json_logging()


def _cached_settings() -> HandlerSettings:
    global _settings
    if _settings is None:
        _settings = settings_from_env(os.environ)
    return _settings


def budget_seconds(settings: HandlerSettings, context: Any) -> float:
    """``min(MAX_SYNC_SECONDS, remaining time - safety margin)``."""
    budget = settings.max_sync_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000.0 - SAFETY_MARGIN_S)
    return budget


def handler(event: object, context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: see the module docstring for the answers.

    Whatever goes wrong, the answer keeps the contract's shape (never a stack trace), and
    every 500 prints one EMF record with ``Fatal`` 1 so an alarm on it sees every failure.
    """
    configure_json_logging()
    started = time.monotonic()
    try:
        settings = _cached_settings()
        work = parse_event(event, settings)
    except EventError as error:
        return bad_request(str(error))
    except ConfigError as error:  # the function's own environment is wrong: not the caller's
        _emit_metrics(os.environ.get("CRAWLER_TYPE") or "unknown", None, None, fatal=True)
        return fatal(f"function misconfigured: {error}")
    run_id = work.run_id or new_run_id()
    request_id = getattr(context, "aws_request_id", None)

    def failed(message: str) -> dict[str, Any]:
        _emit_metrics(work.crawler_type, None, run_id, fatal=True)
        return fatal(message, crawler_type=work.crawler_type, run_id=run_id)

    with log_context(run_id=run_id, aws_request_id=request_id):
        try:
            api_key = load_api_key(os.environ)
        except AsyncrawlError as error:
            return failed(str(error))
        budget = budget_seconds(settings, context)
        if budget <= 1.0:
            return failed(
                f"no time to work: {budget:.1f} s left after the safety margin; raise the "
                "function's timeout"
            )
        try:
            return asyncio.run(_invoke(work, settings, api_key, run_id, budget, started))
        except EventError as error:
            return bad_request(str(error), crawler_type=work.crawler_type, run_id=run_id)
        except ContinuationError as error:
            problem = str(error).removeprefix("continuation: ")
            return bad_request(
                f"continuation: {problem}", crawler_type=work.crawler_type, run_id=run_id
            )
        except ConfigError as error:  # COMPANIES_URI, DART_BASE_URL...: the function's setup
            return failed(f"function misconfigured: {error}")
        except AsyncrawlError as error:
            log.exception("invocation failed")
            return failed(str(error))
        except Exception as error:  # a bug: still answer in the contract's shape, never a trace
            log.exception("invocation failed")
            return failed(
                f"internal error ({type(error).__name__}); see the function's log for "
                f"request {request_id}"
            )


def _engine_config(settings: HandlerSettings, budget: float) -> CrawlConfig:
    budget = max(budget, 0.1)  # planning ate it all: crawl a moment, hand the rest back (206)
    # Of the budget, keep back a grace for attempts in flight and time to flush what was
    # fetched (journal, summary, continuation), so the answer leaves before the budget ends.
    grace = min(2.0, budget * 0.1)
    flush = min(10.0, budget * 0.15)
    return CrawlConfig(
        concurrency=settings.concurrency,
        rates=settings.rates,
        deadline=max(budget - grace - flush, 0.1),
        grace=grace,
        attempt_timeout=min(30.0, max(budget - grace - flush, 0.1)),
    )


async def _invoke(
    work: CrawlEvent,
    settings: HandlerSettings,
    api_key: str,
    run_id: str,
    budget: float,
    started: float,
) -> dict[str, Any]:
    from ..jobs.opendart import run_statements_job

    source = OpenDartSource(api_key=api_key, base_url=settings.base_url or DEFAULT_BASE_URL)
    limiter = RateLimiter(settings.rates)
    async with open_store(settings.out_uri) as store:
        items, companies, previous = await _plan(work, store)
        if previous is not None and previous.limiter:
            limiter.import_state(previous.limiter)
        result = await run_statements_job(
            items,
            source=source,
            store=store,
            run_id=run_id,
            # The budget runs from the invocation's start: planning (a long company list, a
            # spilled continuation) has already used some of it.
            config=_engine_config(settings, budget - (time.monotonic() - started)),
            total=len(items),
            limiter=limiter,
        )
        part = result.summary
        totals = _add(previous.totals if previous else RunTotals(), part)
        await write_summary(store, run_id, _cumulative(part, totals))
        continuation = None
        if part.remaining and result.fatal is None:
            still_to_do = {key.partition("/")[0] for key in part.remaining}
            state = ContinuationState(
                run_id=run_id,
                crawler_type=work.crawler_type,
                years=work.years,
                fs_divs=work.fs_divs,
                remaining=part.remaining,
                # Only the companies that still have work: the token stays small.
                companies={
                    c.corp_code: (c.stock_code or "", c.corp_name or "")
                    for c in companies.values()
                    if c.corp_code in still_to_do
                },
                limiter=limiter.export_state(),
                invocation=(previous.invocation + 1) if previous else 1,
                totals=totals,
            )

            async def put(key: str, data: bytes) -> None:
                await store.put(key, data, content_type="application/json")

            continuation = await encode_or_spill(state, put)
    crawl_time = round(time.monotonic() - started, 3)
    stopped = result.fatal is not None or result.sink_error is not None
    _emit_metrics(work.crawler_type, part, run_id, fatal=stopped)
    s3_upload = {
        "bucket": settings.s3_bucket,
        "prefix": settings.s3_prefix,
        "objects_written": part.ok,
        "summary_key": "/".join(p for p in (settings.s3_prefix, result.summary_key) if p),
    }
    if stopped:
        problem = (
            f"upstream refused the run: {result.fatal.reason}"
            if result.fatal is not None
            else f"could not store results: {result.sink_error}"
        )
        return fatal(
            problem,
            crawler_type=work.crawler_type,
            run_id=run_id,
            crawl_result=part.to_dict(),
            s3_upload=s3_upload,
            crawl_time=crawl_time,
        )
    return crawl_answer(
        crawler_type=work.crawler_type,
        run_id=run_id,
        crawl_result=part.to_dict(),
        s3_upload=s3_upload,
        crawl_time=crawl_time,
        continuation=continuation,
    )


async def _plan(
    work: CrawlEvent, store: BlobStore
) -> tuple[list[StatementItem], dict[str, Company], ContinuationState | None]:
    """This invocation's items: the continuation's remaining ones, or a fresh plan."""
    if work.continuation is not None:
        state = await resolve(work.continuation, store.get)
        companies = {
            code: Company(corp_code=code, stock_code=stock or None, corp_name=name or None)
            for code, (stock, name) in state.companies.items()
        }
        try:
            items = [item_from_key(key, companies) for key in state.remaining]
        except ConfigError as error:  # the token passed its checks but names no real item
            raise ContinuationError(f"continuation: {error}") from None
        return items, companies, state
    if work.companies is not None:
        company_list = list(work.companies)
    else:
        assert work.companies_uri is not None
        company_list = await load_companies(work.companies_uri, field="COMPANIES_URI")
    items = list(plan_items(company_list, work.years, work.crawler_type, work.fs_divs))
    return items, {c.corp_code: c for c in company_list}, None


def _add(totals: RunTotals, part: RunSummary) -> RunTotals:
    return RunTotals(
        planned=totals.planned or part.planned,
        ok=totals.ok + part.ok,
        no_data=totals.no_data + part.no_data,
        failed=totals.failed + len(part.failed),
        requests=totals.requests + part.requests,
        retries=totals.retries + part.retries,
        elapsed_s=totals.elapsed_s + part.elapsed_s,
    )


def _cumulative(part: RunSummary, totals: RunTotals) -> Mapping[str, Any]:
    document = part.to_dict()
    document.update(
        planned=totals.planned,
        ok=totals.ok,
        no_data=totals.no_data,
        requests=totals.requests,
        retries=totals.retries,
        elapsed_s=round(totals.elapsed_s, 3),
        requests_per_s=round(totals.requests / totals.elapsed_s, 2) if totals.elapsed_s else 0.0,
        failed_total=totals.failed,
    )
    return document


def _emit_metrics(
    crawler_type: str, part: RunSummary | None, run_id: str | None, *, fatal: bool
) -> None:
    """Print the invocation's EMF record; ``part`` is None when nothing was crawled."""
    emit_emf(
        emf_record(
            crawler_type=crawler_type,
            ok=part.ok if part else 0,
            no_data=part.no_data if part else 0,
            failed=len(part.failed) if part else 0,
            remaining=len(part.remaining) if part else 0,
            requests=part.requests if part else 0,
            retries=part.retries if part else 0,
            slowdowns=part.status_counts.get("020", 0) if part else 0,
            fatal=fatal,
            properties={"run_id": run_id} if run_id else None,
        )
    )
