"""The Lambda handler: run one part of a job within a budget, answer well inside 350 s.

The job comes from ``CRAWL_JOB`` (default ``opendart``; see :mod:`asyncrawl.runs.job`):
nothing here knows what it crawls. One invocation: read the settings (cached per cold start)
and the event (400 when bad), work out the budget ``min(MAX_SYNC_SECONDS, remaining time -
safety margin)``, then in a fresh event loop (a warm container runs many invocations; nothing
bound to a closed loop is reused) open the S3 store, verify the continuation (or plan
afresh), take the run's lease, crawl through the run layer until the plan is done or the
budget is spent, and answer (:mod:`asyncrawl.aws.answer` lists the fields):

- 200: nothing remains (``success`` only if nothing failed in the run);
- 206: budget spent; ``continuation`` (signed) holds the remaining items, the run's totals so
  far and the rate limiter's recent send times;
- 400: bad event or an altered, forged or foreign continuation (the message names the field);
- 500: fatal (bad key, IP blocked, quota gone, storage failing, the function misconfigured:
  the message names the environment variable), the run is busy (another invocation holds its
  lease), or a payload-less run (the old ``payload=None``) did not finish in one invocation:
  its answer says how many items remain and the next payload-less invocation the same KST day
  resumes the same run id (a 206 would be a success to a caller that checks ``2xx``, marking
  a partial crawl as done; every caller treats 500 as a failure, so Airflow retries it).

Every answer prints one EMF record and one INFO line with the counts and the run id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..engine import CrawlConfig
from ..errors import AsyncrawlError, ConfigError, ContinuationError, SinkError
from ..limiter import RateLimiter
from ..runs.continuation import ContinuationState, decode, encode_or_spill, peek_run_id, resolve
from ..runs.job import Job, Plan, get_job
from ..runs.lease import RunBusyError
from ..runs.merge import COUNTERS, failed_count, remaining_count
from ..runs.run import RunResult, run_resumable
from ..runs.signing import RunKeys, SecretKeys, StoredRunKeys
from ..sinks import BlobStore, new_run_id, open_store, read_summary
from ..sinks.bounded import bounded
from .answer import bad_request, crawl_answer, fatal, kst_day
from .event import CrawlEvent, EventError, HandlerSettings, parse_event, settings_from_env
from .ledger import quota_admission
from .logs import configure_json_logging, log_context, reset_json_logging
from .metrics import emf_record, emit_emf
from .secrets import clear_cache, load_api_key

__all__ = [
    "SAFETY_MARGIN_S",
    "budget_seconds",
    "daily_run_id",
    "handler",
    "reset_cold_start_cache",
    "run_resumable",
]

log = logging.getLogger(__name__)

#: Seconds kept back from the function's remaining time (answer serialisation, runtime).
SAFETY_MARGIN_S = 10.0
#: How long past the invocation's own end a lease lasts, so a crashed holder frees it soon.
LEASE_MARGIN_S = 30.0
#: The longest one storage call may take (and never past the budget).
STORAGE_CALL_TIMEOUT_S = 10.0
#: The longest one lease call may take (taking and giving back the run's lease).
LEASE_CALL_TIMEOUT_S = 2.0
_settings: HandlerSettings | None = None

# Library errors name the parameter or the command-line flag; the function's user set an
# environment variable. Messages are translated before they leave.
_SETTING_NAMES = {
    "--out": "S3_BUCKET/S3_PREFIX",
    "--base-url": "DART_BASE_URL",
    "--concurrency": "CONCURRENCY",
    "--rate": "RATE",
    "--years": "CRAWL_YEARS",
    "--kind": "CRAWLER_TYPE",
    "--fs-div": "FS_DIV",
    "--companies": "COMPANIES_URI",
    "--deadline": "MAX_SYNC_SECONDS",
    "--attempt-timeout": "ATTEMPT_TIMEOUT",
    "--hedge-after": "HEDGE_AFTER",
    "--run-id": "run_id",
}


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


def _env_names(text: str) -> str:
    for flag, name in _SETTING_NAMES.items():
        text = text.replace(f"{flag}:", f"{name}:").replace(f"{flag} ", f"{name} ")
    return text


def budget_seconds(settings: HandlerSettings, context: Any) -> float:
    """``min(MAX_SYNC_SECONDS, remaining time - safety margin)``."""
    budget = settings.max_sync_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000.0 - SAFETY_MARGIN_S)
    return budget


def daily_run_id(job: Job[Any], label: str, now: datetime | None = None) -> str:
    """The run id of a payload-less invocation: one per job, label and KST day.

    A retry (or the next schedule the same day) resumes it from its journal.
    """
    day = kst_day(now or datetime.now(UTC))
    return "-".join(part for part in (job.name, label, day) if part)


class _Invocation:
    """One invocation's facts for its answer, metrics and log line."""

    def __init__(self, job: Job[Any] | None, label: str, run_id: str | None) -> None:
        self.job = job
        self.label = label
        self.run_id = run_id


def _signal(
    inv: _Invocation,
    status_code: int,
    status: str,
    part: Mapping[str, Any] | None,
    *,
    fatal_error: bool,
    started: float,
) -> None:
    """The invocation's EMF record and its one INFO line."""
    part = part or {}
    counts = {name: int(part.get(name, 0) or 0) for name in COUNTERS}
    emit_emf(
        emf_record(
            crawler_type=inv.label or "unknown",
            ok=counts["ok"],
            no_data=counts["no_data"],
            failed=failed_count(part),
            remaining=remaining_count(part),
            requests=counts["requests"],
            retries=counts["retries"],
            slowdowns=int((part.get("status_counts") or {}).get("020", 0)),
            fatal=fatal_error,
            bad_request=status_code == 400,
            already_done=counts["already_done"],
            properties={"run_id": inv.run_id, "StatusCode": status_code, "Status": status},
        )
    )
    log.info(
        "invocation answered %d (%s): run %s, planned %d, ok %d, no_data %d, already_done %d, "
        "failed %d, remaining %d, requests %d, %.1f s",
        status_code,
        status,
        inv.run_id,
        int(part.get("planned", 0) or 0),
        counts["ok"],
        counts["no_data"],
        counts["already_done"],
        failed_count(part),
        remaining_count(part),
        counts["requests"],
        time.monotonic() - started,
        extra={
            "status_code": status_code,
            "status": status,
            "counts": {**counts, "failed": failed_count(part), "remaining": remaining_count(part)},
        },
    )


def handler(event: object, context: Any = None) -> dict[str, Any]:
    """The Lambda entry point: see the module docstring for the answers.

    Whatever goes wrong, the answer keeps the contract's shape (never a stack trace), and
    every answer prints one EMF record (``Fatal`` 1 on a 500, ``BadRequest`` 1 on a 400).
    """
    configure_json_logging()
    started = time.monotonic()
    inv = _Invocation(None, os.environ.get("CRAWLER_TYPE", "").strip().lower(), None)

    def refuse(message: str) -> dict[str, Any]:
        _signal(inv, 400, "bad_request", None, fatal_error=False, started=started)
        name = inv.job.name if inv.job else None
        return bad_request(message, job=name, crawler_type=inv.label or None, run_id=inv.run_id)

    def failed(message: str, status: str = "fatal") -> dict[str, Any]:
        _signal(inv, 500, status, None, fatal_error=status == "fatal", started=started)
        name = inv.job.name if inv.job else None
        return fatal(
            _env_names(message),
            status=status,
            job=name,
            crawler_type=inv.label or None,
            run_id=inv.run_id,
        )

    try:
        settings = _cached_settings()
        job = get_job(settings.job_name)
    except ConfigError as error:  # the function's own environment is wrong: not the caller's
        return failed(f"function misconfigured: {error}")
    inv.job = job
    inv.label = job.label(settings.job_config)
    try:
        work = parse_event(event, job)
        if work.continuation is not None and work.run_id is None:
            work = CrawlEvent(
                run_id=peek_run_id(work.continuation),
                continuation=work.continuation,
                fields=work.fields,
            )
    except EventError as error:
        return refuse(str(error))
    except ContinuationError as error:
        return refuse(str(error))
    if work.run_id is not None:
        run_id = work.run_id
    elif work.payload_less:
        run_id = daily_run_id(job, inv.label)
    else:
        run_id = new_run_id()
    inv.run_id = run_id
    request_id = getattr(context, "aws_request_id", None)

    with log_context(run_id=run_id, aws_request_id=request_id):
        budget = budget_seconds(settings, context)
        if budget <= 1.0:
            return failed(
                f"no time to work: {budget:.1f} s left after the safety margin; raise the "
                "function's timeout"
            )
        lease_ttl = budget + SAFETY_MARGIN_S + LEASE_MARGIN_S
        try:
            return asyncio.run(
                _invoke(work, settings, job, inv, run_id, budget, lease_ttl, started)
            )
        except EventError as error:
            return refuse(str(error))
        except ContinuationError as error:
            problem = str(error).removeprefix("continuation: ")
            return refuse(f"continuation: {problem}")
        except RunBusyError as error:
            return failed(str(error), status="busy")
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
    flush = min(10.0, max(budget * 0.15, min(1.5, budget * 0.3)))
    work = max(budget - grace - flush, 0.1)
    attempt = settings.attempt_timeout if settings.attempt_timeout is not None else 30.0
    return CrawlConfig(
        concurrency=settings.concurrency,
        rates=settings.rates,
        deadline=work,
        grace=grace,
        attempt_timeout=min(attempt, work),
        hedge_after=settings.hedge_after,
    )


def _keys(settings: HandlerSettings, store: BlobStore) -> RunKeys:
    if settings.continuation_secret is not None:
        return SecretKeys(settings.continuation_secret)
    return StoredRunKeys(store)


async def _resume(
    work: CrawlEvent,
    job: Job[Any],
    settings: HandlerSettings,
    keys: RunKeys,
    store: BlobStore,
    run_id: str,
) -> tuple[Plan[Any], ContinuationState]:
    token, fields = work.continuation or "", work.fields
    state = await decode(token, keys.lookup, run_id=run_id)
    if state.job != job.name:
        raise ContinuationError(
            f"continuation: made for job {state.job}, but this function runs {job.name}"
        )
    state = await resolve(state, store.get)
    plan = job.resume(state.params, state.remaining, settings.job_config)
    check = getattr(job, "check_continuing", None)
    if fields and callable(check):  # the job says which of its fields may come along
        check(fields, plan)
    elif fields:
        name = sorted(fields)[0]
        raise EventError(name, f"leave {name} out when continuing: the token carries the plan")
    return plan, state


async def _earlier(
    store: BlobStore, run_id: str, state: ContinuationState
) -> tuple[Mapping[str, Any] | None, bool]:
    """The run's document before this part, and whether items found finished still count.

    The stored summary.json when it is the token's own (it has the whole ``failed`` list) or
    newer (a replayed old token: it already counts what later parts finished, so those items
    must not count twice); else the token's own counts.
    """
    totals = {"run_id": run_id, **state.totals} if state.totals else None
    try:
        stored = await read_summary(store, run_id)
    except (AsyncrawlError, ValueError):
        return totals, True
    if stored is None or totals is None:
        return totals, True
    made, now = totals.get("invocations", 0), stored.get("invocations", 0)
    if not isinstance(made, int) or not isinstance(now, int) or now < made:
        return totals, True
    if now == made:
        same = all(stored.get(name) == totals.get(name) for name in ("planned", "ok"))
        return (stored, True) if same else (totals, True)
    return stored, False


def _load_carried(source: Any, state: ContinuationState) -> list[Any]:
    """The discovered items the token carries whole, read back by the Source's ItemCodec."""
    if not state.items:
        return []
    load = getattr(source, "load_item", None)
    if not callable(load):
        raise ContinuationError(
            "continuation: carries discovered items, but this job's Source has no load_item"
        )
    items = []
    for key, data in state.items.items():
        try:
            item = load(data)
        except Exception as error:  # the Source's own validation: a bad token, not a bug
            raise ContinuationError(
                f"continuation: item {key[:80]} does not load ({type(error).__name__})"
            ) from None
        if source.key(item) != key:
            raise ContinuationError(f"continuation: item {key[:80]} loads as another key")
        items.append(item)
    return items


async def _invoke(
    work: CrawlEvent,
    settings: HandlerSettings,
    job: Job[Any],
    inv: _Invocation,
    run_id: str,
    budget: float,
    lease_ttl: float,
    started: float,
) -> dict[str, Any]:
    config = settings.job_config
    limiter = RateLimiter(settings.rates)
    loop = asyncio.get_running_loop()
    # Every storage call (company list, token key, journal, data, summary, continuation)
    # ends by the invocation's budget: a hung S3 becomes a SinkError naming it, never a
    # function timeout (the answer still has SAFETY_MARGIN_S to leave).
    ends_at = loop.time() + budget - (time.monotonic() - started)
    async with open_store(settings.out_uri) as raw_store:
        store = bounded(
            raw_store,
            deadline_at=ends_at,
            call_timeout=STORAGE_CALL_TIMEOUT_S,
            name=f"S3 store {settings.out_uri} (S3_BUCKET/S3_PREFIX)",
        )
        # The lease is given back even when the crawl used its whole budget (else the next
        # invocation would find the run busy): its calls may use part of the safety margin.
        lease_store = bounded(
            raw_store,
            deadline_at=ends_at + SAFETY_MARGIN_S / 2,
            call_timeout=LEASE_CALL_TIMEOUT_S,
            name=f"S3 store {settings.out_uri} (S3_BUCKET/S3_PREFIX)",
        )
        keys = _keys(settings, store)
        state: ContinuationState | None = None
        if work.continuation is not None:
            plan, state = await _resume(work, job, settings, keys, store, run_id)
        else:
            plan = await job.plan(work.fields, config, store)
        inv.label = plan.label or inv.label
        source = job.open_source(config)
        carried = _load_carried(source, state) if state is not None else []
        if state is not None and state.limiter:
            limiter.import_state(state.limiter)
        earlier, fold = await _earlier(store, run_id, state) if state else (None, True)
        seed_keys = {source.key(item) for item in plan.items}
        if state is None and plan.items:
            # Made now, not in the flush reserve at the end: a token may be needed then.
            await keys.create(run_id)
        # The budget runs from the invocation's start: planning (a long company list, a
        # spilled continuation) has already used some of it.
        config = _engine_config(settings, budget - (time.monotonic() - started))
        # With QUOTA_LEDGER_TABLE set, every request first draws from the shared daily quota.
        async with quota_admission(os.environ, api_key=lambda: load_api_key(os.environ)) as http:
            refine = getattr(job, "refine", None)
            if state is None and plan.items and callable(refine):
                # A plan mode that asks the upstream first (OpenDART's filing search): through
                # the crawl's fetcher (the shared quota) and limiter (its windows), within what
                # is left of the budget; the crawl gets the rest, the next part the remainder.
                plan = await refine(
                    plan,
                    settings.job_config,
                    store,
                    run_id=run_id,
                    fetcher=http,
                    limiter=limiter,
                    crawl_config=config,
                )
                seed_keys = {source.key(item) for item in plan.items}
                config = _engine_config(settings, budget - (time.monotonic() - started))
            result: RunResult[Any] = await run_resumable(
                source,
                [*plan.items, *carried],
                store=store,
                run_id=run_id,
                config=config,
                # ...and the lease and the journal come before the crawl starts: the engine's
                # deadline is a moment on the clock, not a length from whenever it starts.
                deadline_at=loop.time() + (config.deadline_s or 0.0),
                data_key=job.data_key,
                limiter=limiter,
                fetcher=http,
                earlier=earlier,
                fold=fold,
                lease_ttl_s=lease_ttl,
                lease_store=lease_store,
            )
        await _finish(job, settings, plan, result, store, run_id)
        continuation = None
        if result.remaining_items and result.fatal is None:
            try:
                continuation = await _continuation(
                    job, plan, source, result, seed_keys, limiter, keys, store, run_id, state
                )
            except SinkError:
                if result.sink_error is None:
                    raise  # the store failed only now: 500 naming it
                # The store had failed already: the 500 below names it.
    return _answer(work, settings, job, inv, plan, result, continuation, started)


async def _finish(
    job: Job[Any],
    settings: HandlerSettings,
    plan: Plan[Any],
    result: RunResult[Any],
    store: BlobStore,
    run_id: str,
) -> None:
    """The job's own last step once the whole run is done (OpenDART: record the filings)."""
    finish = getattr(job, "finish", None)
    done = not result.remaining_items and result.fatal is None and result.sink_error is None
    if not done or not callable(finish):
        return
    try:
        await finish(plan, settings.job_config, store, run_id=run_id)
    except AsyncrawlError as error:
        # What was crawled is stored and journalled: only the job's bookkeeping is behind.
        log.warning("run %s: the job's finishing step failed: %s", run_id, error)


async def _continuation(
    job: Job[Any],
    plan: Plan[Any],
    source: Any,
    result: RunResult[Any],
    seed_keys: set[str],
    limiter: RateLimiter,
    keys: RunKeys,
    store: BlobStore,
    run_id: str,
    previous: ContinuationState | None,
) -> str:
    seeds = [key for key in result.remaining_items if key in seed_keys]
    dump = getattr(source, "dump_item", None)
    whole: dict[str, Any] = {}
    for key, item in result.remaining_items.items():
        if key in seed_keys:
            continue
        if not callable(dump):
            raise AsyncrawlError(
                f"item {key[:80]} was discovered but the Source has no dump_item: implement "
                "the ItemCodec protocol to hand discovered work over"
            )
        whole[key] = dump(item)
    totals = {
        name: value
        for name, value in result.document.items()
        if name in ("planned", *COUNTERS, "elapsed_s", "invocations", "status_counts")
        and value is not None
    }
    totals["failed_count"] = failed_count(result.document)
    totals["remaining_count"] = remaining_count(result.document)
    state = ContinuationState(
        run_id=run_id,
        job=job.name,
        params=job.token_params(plan, seeds),
        remaining=tuple(seeds),
        items=whole,
        limiter=limiter.export_state(),
        invocation=(previous.invocation + 1) if previous else 1,
        totals=totals,
    )

    async def put(key: str, data: bytes) -> None:
        await store.put(key, data, content_type="application/octet-stream")

    return await encode_or_spill(state, await keys.create(run_id), put)


def _answer(
    work: CrawlEvent,
    settings: HandlerSettings,
    job: Job[Any],
    inv: _Invocation,
    plan: Plan[Any],
    result: RunResult[Any],
    continuation: str | None,
    started: float,
) -> dict[str, Any]:
    part, document = result.part, result.document
    left = remaining_count(document)
    run_failed = failed_count(document)
    summary_key = "/".join(p for p in (settings.s3_prefix, result.summary_key) if p)
    summary_uri = f"s3://{settings.s3_bucket}/{summary_key}"
    described = dict(job.describe(plan, document))
    message = str(described.pop("message", "")) or (
        f"run {inv.run_id}: ok {document.get('ok', 0)}, failed {run_failed}, remaining {left}"
    )
    if result.fatal is not None:
        status_code, status = 500, "fatal"
        message = f"upstream refused the run: {result.fatal.reason}. {message}"
    elif result.sink_error is not None and continuation is None:
        status_code, status = 500, "fatal"
        message = f"could not store results in S3 (S3_BUCKET/S3_PREFIX): {result.sink_error}"
    elif left and work.payload_less:
        status_code, status = 500, "incomplete"
        message = (
            f"incomplete: {left} item(s) remain in run {inv.run_id}; invoke again the same "
            f"KST day (an Airflow retry does) to resume it. {message}"
        )
    elif left:
        status_code, status = 206, "partial"
        if result.sink_error is not None:  # stopped by the store, yet the token was saved
            message = (
                f"storing stopped ({result.sink_error}); the continuation holds the "
                f"{left} remaining item(s). {message}"
            )
    else:
        status_code, status = 200, "finished"
        if part.get("planned", 0) and part.get("planned") == part.get("already_done"):
            message = (
                f"nothing new: all {part['already_done']} item(s) were already finished by an "
                f"earlier invocation of run {inv.run_id}; fetched and wrote nothing. {message}"
            )
    success = status == "finished" and run_failed == 0
    objects = int(part.get("ok", 0))
    upload_ok = result.sink_error is None
    s3_upload = {
        "success": upload_ok,
        "message": (
            f"{objects} new object(s) written to s3://{settings.s3_bucket}/{settings.s3_prefix}"
            if upload_ok
            else f"storing failed: {result.sink_error}"
        ),
        "bucket": settings.s3_bucket,
        "prefix": settings.s3_prefix,
        "objects_written": objects,
        "summary_key": summary_key,
        "summary_uri": summary_uri,
    }
    legacy = {
        "success": success,
        "message": message,
        "s3_bucket": settings.s3_bucket,
        "summary_uri": summary_uri,
        **described,
    }
    _signal(inv, status_code, status, part, fatal_error=status == "fatal", started=started)
    return crawl_answer(
        status_code=status_code,
        status=status,
        success=success,
        message=_env_names(message),
        job=job.name,
        crawler_type=inv.label,
        run_id=inv.run_id or "",
        crawl_result=part,
        legacy=legacy,
        s3_upload=s3_upload,
        elapsed_s=time.monotonic() - started,
        continuation=continuation,
    )
