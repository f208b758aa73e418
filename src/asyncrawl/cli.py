"""The ``asyncrawl`` command line: ``crawl``, ``demo`` and ``companies``.

Exit codes (CONTRACTS.md): 0 every item finished and none failed; 1 some items failed or remain
undone (also: the store failed, the run was interrupted, or another process holds the run);
2 bad usage or bad input; 3 fatal upstream error (bad key, IP blocked, quota gone).
The OpenDART key comes only from ``DART_API_KEY`` and is never printed.

Signals: SIGINT (Ctrl-C) and SIGTERM (what containers, schedulers and ``timeout`` send) stop
the crawl the same way: the journal is flushed and the summary written, exit 1. A second
signal exits at once, still 1; the journal keeps every part already stored (parts are whole
objects, never half-written). Only the command line installs these handlers, never the library.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .engine import CrawlConfig
from .errors import AsyncrawlError, ConfigError, InputError, SinkError, UpstreamFatalError
from .limiter import DEFAULT_RATES, Rate
from .redact import install_log_redaction, redact_text, register_secret

__all__ = ["EXIT_FAILED", "EXIT_FATAL", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL = 3

log = logging.getLogger("asyncrawl")
T = TypeVar("T")

# Caps on every numeric option: a typo (an extra zero or three) must be a usage error, not a
# run that takes a gigabyte and half a minute to plan 2 items.
MAX_CONCURRENCY = 1000  # as the Lambda applies
MAX_DEADLINE_S = 7 * 86400.0
MAX_ATTEMPT_TIMEOUT_S = 3600.0
MAX_STORAGE_TIMEOUT_S = 300.0
MAX_RATE_LIMIT = 1_000_000
MAX_RATE_PERIOD_S = 31 * 86400.0
# Seconds a run may spend after its deadline on the grace for attempts in flight: the store's
# calls end by deadline + grace + two storage calls (journal flush, summary).
_GRACE_S = 2.0
# The run's lease: renewed every third of its life, so a crashed holder on another machine
# blocks its run id for this long at most (one on this machine: not at all, see _stale_holder).
LEASE_TTL_S = 120.0
# Library parameters -> the flag a user sets (messages name what the user can change).
_FLAGS = {
    "concurrency": "--concurrency",
    "deadline": "--deadline",
    "attempt_timeout": "--attempt-timeout",
    "hedge_after": "--hedge-after",
    "rates": "--rate",
    "rate": "--rate",
    "uri": "--out",
    "root": "--out",
    "call_timeout": "--storage-timeout",
    "base_url": "--base-url",
    "run_id": "--run-id",
}


def _whole_number(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} must be at least {low} and at most {high:,}, got {value:,}; "
                f"give e.g. {name} {min(max(16, low), high)}"
            )
        return value

    return parse


def _seconds(name: str, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number of seconds, got {text!r}"
            ) from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"{name} must be more than 0 and at most {high:g} seconds, got {text}"
            )
        return value

    return parse


def _hedge_after(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _seconds("--hedge-after", MAX_ATTEMPT_TIMEOUT_S)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--hedge-after must be 'auto' or a number of seconds (more than 0, at most "
            f"{MAX_ATTEMPT_TIMEOUT_S:g}), got {text!r}"
        ) from None


def _rate(text: str) -> Rate:
    try:
        rate = Rate.parse(text, field="--rate")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if rate.limit > MAX_RATE_LIMIT or rate.period > MAX_RATE_PERIOD_S or rate.period < 0.001:
        raise argparse.ArgumentTypeError(
            f"--rate: {text!r}: N must be at most {MAX_RATE_LIMIT:,} and DURATION between 1ms "
            "and 31d, e.g. 900/1m or 18000/1d"
        )
    return rate


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="asyncrawl",
        description="Crawl OpenDART financial statements concurrently, politely and resumably.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log DEBUG lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Also accepted after the command (`asyncrawl crawl -v ...`); SUPPRESS keeps a -v given
    # before the command from being reset by the command's own default.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log DEBUG lines"
    )

    crawl = commands.add_parser(
        "crawl",
        parents=[verbose],
        help="crawl financial statements (key from DART_API_KEY)",
        description="Crawl fnlttSinglAcntAll.json for every company x year x report x fs_div. "
        "The OpenDART key is read from the environment variable DART_API_KEY.",
    )
    crawl.add_argument("--kind", required=True, choices=["quarter", "annual"])
    crawl.add_argument(
        "--companies",
        required=True,
        metavar="FILE",
        help="CSV (header row), JSON or JSONL with a corp_code column; a path or s3://bucket/key",
    )
    crawl.add_argument(
        "--corp-codes",
        metavar="FILE",
        help="stock code -> corp_code table for lists without corp_code: corpCode.xml (ZIP or "
        "XML) or a list from 'asyncrawl companies' (default: download once, cached in --out)",
    )
    crawl.add_argument("--years", required=True, nargs="+", metavar="YEAR")
    crawl.add_argument(
        "--plan",
        choices=["blind", "filings"],
        default="blind",
        help="blind: every report (default); filings: only reports list.json says were filed",
    )
    crawl.add_argument(
        "--basis",
        choices=["both", "prefer-cfs"],
        default="both",
        help="both: CFS and OFS (default); prefer-cfs: OFS only where CFS has no data",
    )
    crawl.add_argument(
        "--fs-div",
        nargs="+",
        default=["CFS", "OFS"],
        metavar="DIV",
        help="CFS and/or OFS (default: both)",
    )
    crawl.add_argument(
        "--out",
        default="out",
        metavar="DIR|s3://bucket/prefix",
        help="where data and run metadata go (default: ./out)",
    )
    crawl.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="OpenDART's API base (default: https://opendart.fss.or.kr/api/)",
    )
    crawl.add_argument(
        "--concurrency",
        type=_whole_number("--concurrency", 1, MAX_CONCURRENCY),
        default=16,
        metavar="N",
        help=f"items in flight at once, 1 to {MAX_CONCURRENCY} (default: 16)",
    )
    crawl.add_argument(
        "--rate",
        type=_rate,
        action="append",
        metavar="N/DURATION",
        help="a rate window such as 900/1m; repeat for several (default: 900/1m and 18000/1d)",
    )
    crawl.add_argument(
        "--deadline",
        type=_seconds("--deadline", MAX_DEADLINE_S),
        metavar="SECONDS",
        help="stop starting new work after this many seconds (at most 7 days); storage calls "
        "end by then too, plus a short grace",
    )
    crawl.add_argument(
        "--attempt-timeout",
        type=_seconds("--attempt-timeout", MAX_ATTEMPT_TIMEOUT_S),
        default=None,
        metavar="SECONDS",
        help="seconds one HTTP attempt may take, body included (default: 30)",
    )
    crawl.add_argument(
        "--hedge-after",
        type=_hedge_after,
        default=None,
        metavar="SECONDS|auto",
        help="send a second copy of a request unanswered after SECONDS ('auto': from the "
        "observed latency); default: no hedging",
    )
    crawl.add_argument(
        "--storage-timeout",
        type=_seconds("--storage-timeout", MAX_STORAGE_TIMEOUT_S),
        default=10.0,
        metavar="SECONDS",
        help="seconds one storage call (a write, a read) may take before the store counts as "
        "failed (default: 10)",
    )
    crawl.add_argument(
        "--run-id",
        metavar="ID",
        help="[A-Za-z0-9._-]{1,64}; reuse it to resume a run (default: a new id)",
    )
    crawl.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="also write the run summary (JSON) to this file (written even when the store "
        "cannot take it)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="crawl 10 companies from an embedded OpenDART stand-in (no key, no network)",
    )
    demo.add_argument("--out", default="demo-out", metavar="DIR")
    demo.add_argument(
        "--quick", action="store_true", help="a short run (fewer companies, shorter pauses), for CI"
    )

    companies = commands.add_parser(
        "companies",
        parents=[verbose],
        help="list every listed company from OpenDART's corpCode.xml (needs the key)",
    )
    companies.add_argument("--output", required=True, type=Path, metavar="FILE.csv")
    companies.add_argument("--base-url", default=None, metavar="URL")
    companies.add_argument(
        "--listed-from",
        default="company.json",
        metavar="company.json|all|FILE",
        help="tell listed from delisted: OpenDART's company.json (default; ~3,900 requests the "
        "first time, cached in --out), all (keep delisted), or a KRX listing CSV",
    )
    companies.add_argument(
        "--out", default="out", metavar="DIR|s3://bucket/prefix", help="where the cache goes"
    )
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiohttp and botocore log request URLs at DEBUG; the filter masks the key in every line.
    install_log_redaction()


def _api_key() -> str:
    key = os.environ.get("DART_API_KEY", "").strip()
    if not key:
        raise ConfigError(
            "DART_API_KEY",
            "not set; export DART_API_KEY with your 40-character OpenDART key "
            "(never pass it as a flag: flags land in shell history)",
        )
    # Masked from here on in every log line and error text, whatever later fails.
    register_secret(key)
    return key


def exit_code(summary_failed: int, summary_remaining: int, fatal: bool) -> int:
    """The contract's exit code for a finished run."""
    if fatal:
        return EXIT_FATAL
    if summary_failed or summary_remaining:
        return EXIT_FAILED
    return EXIT_OK


def _config(args: argparse.Namespace) -> CrawlConfig:
    options: dict[str, Any] = {
        "concurrency": args.concurrency,
        "rates": tuple(args.rate) if args.rate else DEFAULT_RATES,
        "deadline": args.deadline,
        "grace": _GRACE_S,
    }
    if args.attempt_timeout is not None:
        options["attempt_timeout"] = args.attempt_timeout
    if args.hedge_after is not None:
        options["hedge_after"] = args.hedge_after
    try:
        return CrawlConfig(**options)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError) or args.hedge_after != "auto":
            raise
        # An engine without adaptive hedging takes only seconds.
        raise ConfigError(
            "hedge_after", "'auto' is not supported by this engine; give SECONDS"
        ) from None


def _open_out(uri: str) -> AbstractAsyncContextManager[Any]:
    from .sinks import open_store

    return open_store(uri)


def _machine() -> str:
    """This host and PID namespace: where a process id means the same process."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the host name alone
        namespace = 0
    return f"{socket.gethostname()}:{namespace}"


def _holder_id() -> str:
    """The lease holder id of this process: ``{machine}/{pid}/{random}``."""
    return f"{_machine()}/{os.getpid()}/{os.urandom(4).hex()}"


def _stale_holder(holder: str) -> bool:
    """A lease holder that was a process on this machine which no longer exists (kill -9)."""
    machine, _, rest = holder.partition("/")
    pid_text = rest.partition("/")[0]
    if machine != _machine() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    return False


class _RunBusy(AsyncrawlError):
    """Another process holds the run's lease."""


async def _crawl(args: argparse.Namespace) -> int:
    from .jobs.opendart import run_statements_job
    from .limiter import RateLimiter
    from .progress import CrawlProgress
    from .sinks import RunLease, bounded, describe_store, new_run_id, validate_run_id
    from .sources.opendart import OpenDartSource, StatementItem, load_companies, plan_items
    from .sources.opendart.lookup import corp_code_lookup
    from .sources.opendart.plans import run_planned
    from .sources.opendart.source import DEFAULT_BASE_URL

    key = _api_key()
    source = OpenDartSource(api_key=key, base_url=args.base_url or DEFAULT_BASE_URL)
    run_id = validate_run_id(args.run_id) if args.run_id else new_run_id()
    # Kept for main(): an interrupted run tells the user which id resumes it.
    args.run_id = run_id
    if args.summary is not None:
        _check_output_file(args.summary, "--summary")
    config = _config(args)
    loop = asyncio.get_running_loop()
    # The output is opened (a directory created and probed, an S3 URI checked) first, and the
    # run's lease taken before the first request: none is spent on results that could not be
    # kept, or on a run another process is working on.
    async with _open_out(args.out) as raw_store:
        lookup = corp_code_lookup(
            out=args.out, api_key=key, base_url=source.base_url, file=args.corp_codes
        )
        companies = await load_companies(args.companies, corp_codes=lookup)
        items = list(plan_items(companies, args.years, args.kind, args.fs_div))
        keys = [source.key(item) for item in items]
        name = describe_store(raw_store)
        store = bounded(raw_store, deadline_at=None, call_timeout=args.storage_timeout, name=name)
        if args.deadline is not None:
            # Every storage call ends by the deadline, the grace for attempts in flight and
            # time for the journal's last part and the summary.
            store.deadline_at = loop.time() + args.deadline + _GRACE_S + 2 * args.storage_timeout
        lease = RunLease(
            store,
            run_id,
            LEASE_TTL_S,
            holder=_holder_id(),
        )
        crawls: list[Any] = []
        try:
            taken = await lease.acquire(stale=_stale_holder)
        except SinkError as error:
            outcome = _Outcome()
            outcome.storage_error = error
            return _report(args, outcome, crawls, keys)
        if not taken:
            raise _RunBusy(
                f"run {run_id} is busy: another asyncrawl process holds its lease in {name} "
                f"(until that process ends, or {LEASE_TTL_S:.0f} s after its last renewal); "
                "wait for it, or choose another --run-id"
            )
        log.info(
            "run %s: %d companies, %d items -> %s", run_id, len(companies), len(items), args.out
        )
        try:
            progress = CrawlProgress(total=len(items))
            # One limiter for list.json and every pass (prefer-cfs runs two): each run making
            # its own would start with an empty window, and OpenDART would see two at once.
            limiter = RateLimiter(config.rates, adaptive=config.adaptive_rate)

            def planned_job(on_start: Callable[[Any], None]) -> Awaitable[Any]:
                def job(planned: list[StatementItem]) -> Awaitable[Any]:
                    return run_statements_job(
                        planned,
                        source=source,
                        store=store,
                        run_id=run_id,
                        config=config,
                        total=len(planned),
                        limiter=limiter,
                        on_result=progress.update,
                        on_start=on_start,
                    )

                return run_planned(
                    items,
                    plan=args.plan,
                    basis=args.basis,
                    store=store,
                    run_id=run_id,
                    api_key=key,
                    base_url=source.base_url,
                    config=config,
                    limiter=limiter,
                    run_job=job,
                )

            outcome = await _run_job(
                planned_job,
                crawls,
                progress,
                lease,
            )
        finally:
            await _release(lease)
    return _report(args, outcome, crawls, keys)


class _Outcome:
    """How the job ended, as the command line reports it."""

    def __init__(self) -> None:
        self.result: Any = None
        self.storage_error: SinkError | None = None
        self.interrupted = False


async def _run_job(
    job: Callable[[Callable[[Any], None]], Awaitable[Any]],
    crawls: list[Any],
    progress: Any,
    lease: Any,
) -> _Outcome:
    outcome = _Outcome()

    def on_start(crawl: Any) -> None:
        crawls.append(crawl)
        progress.attach(crawl)

    renewing = asyncio.create_task(_keep_lease(lease, crawls))
    try:
        with progress:
            outcome.result = await job(on_start)
    except SinkError as error:
        # The journal could not be read, or the summary not written: the store failed (perhaps
        # while finishing after a signal, which this error then replaced).
        outcome.storage_error = error
        outcome.interrupted = _uncancel()
    except asyncio.CancelledError:
        # SIGINT / SIGTERM (see _guard): the job flushed the journal and wrote the summary.
        if not _uncancel():
            raise
        outcome.interrupted = True
    finally:
        renewing.cancel()
    if outcome.result is not None and outcome.result.sink_error is not None:
        outcome.storage_error = outcome.result.sink_error
    return outcome


def _uncancel() -> bool:
    """Take back a cancellation _guard made (a signal); ``True`` if there was one."""
    task = asyncio.current_task()
    if task is None or task.cancelling() == 0:
        return False
    task.uncancel()
    return True


async def _keep_lease(lease: Any, crawls: list[Any]) -> None:
    """Renew the run's lease while it runs; a lease lost to another holder stops the crawl."""
    while True:
        await asyncio.sleep(lease.ttl_s / 3)
        try:
            kept = await lease.renew()
        except SinkError as error:
            log.warning("run %s: could not renew its lease: %s", lease.run_id, error)
            continue
        if not kept:
            log.error("run %s: its lease was taken over by another process; stopping", lease.run_id)
            for crawl in crawls:
                crawl.stop()
            return


async def _release(lease: Any) -> None:
    try:
        await lease.release()
    except SinkError as error:  # the lease expires by itself; nothing else depends on it
        log.warning("run %s: could not release its lease: %s", lease.run_id, error)


def _unstarted_summary(run_id: str, keys: list[str]) -> dict[str, Any]:
    from .summary import RunSummary

    return RunSummary(
        run_id=run_id,
        planned=len(keys),
        ok=0,
        no_data=0,
        failed=(),
        remaining=tuple(keys),
        requests=0,
        retries=0,
        status_counts={},
        elapsed_s=0.0,
    ).to_dict()


def _bounded_form(document: dict[str, Any], sample: int = 20) -> dict[str, Any]:
    """The summary with its lists cut to ``sample`` entries (counts kept), for a log line."""
    bounded = dict(document)
    for name in ("failed", "remaining"):
        entries = document.get(name, [])
        bounded[f"{name}_count"] = len(entries)
        bounded[name] = entries[:sample]
    bounded.pop("latency_ms", None)
    return bounded


def _report(args: argparse.Namespace, outcome: _Outcome, crawls: list[Any], keys: list[str]) -> int:
    result = outcome.result
    where = f"{args.out.rstrip('/')}/_meta/runs/{args.run_id}/summary.json"
    if result is not None:
        document: dict[str, Any] = getattr(result, "document", None) or result.summary.to_dict()
        summary = result.summary
        failed, remaining = len(summary.failed), len(summary.remaining)
        if result.resumed:
            print(
                f"resumed run {args.run_id}: {result.resumed} items were finished earlier, "
                "not fetched"
            )
    else:
        document = crawls[0].summary.to_dict() if crawls else _unstarted_summary(args.run_id, keys)
        failed, remaining = len(document["failed"]), len(document["remaining"])
    stored = result is not None
    if not stored:
        # Nothing is unaccounted for: the summary the store did not take goes to the log.
        log.error(
            "run %s: summary not stored (%s): %s",
            args.run_id,
            outcome.storage_error or "interrupted",
            orjson.dumps(_bounded_form(document)).decode(),
        )
    _print_summary(document, where=where if stored else "not stored (see the log line above)")
    code = exit_code(failed, remaining, result is not None and result.fatal is not None)
    if args.summary is not None:
        try:
            args.summary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        except OSError as error:
            print(
                f"error: --summary: cannot write {args.summary}: {error.strerror}", file=sys.stderr
            )
            code = max(code, EXIT_FAILED)
    if result is not None and result.fatal is not None:
        print(f"error: stopped by the upstream: {result.fatal.reason}", file=sys.stderr)
    if outcome.storage_error is not None:
        print(f"error: storage failure: {outcome.storage_error}", file=sys.stderr)
        code = max(code, EXIT_FAILED)
    if outcome.interrupted:
        listed = f"{where} lists" if stored else "the summary above lists"
        print(
            f"interrupted: {listed} what remains; rerun with --run-id {args.run_id} to resume",
            file=sys.stderr,
        )
        code = EXIT_FAILED if code == EXIT_OK else code
    return code


def _check_output_file(path: Path, flag: str) -> None:
    """Refuse an output file that cannot be written, before any request is spent."""
    if path.is_dir():
        raise ConfigError(flag, f"{path} is a directory; give a file name such as {path}/out.csv")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(flag, f"{parent} is a file, not a directory; choose another path")
    if not parent.is_dir():
        raise ConfigError(
            flag, f"the directory {parent} does not exist; create it or choose another file"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(flag, f"the directory {parent} is not writable; choose another file")


def _print_summary(document: dict[str, Any], *, where: str) -> None:
    print(
        f"run {document['run_id']}: planned {document['planned']}, ok {document['ok']}, "
        f"no data {document['no_data']}, failed {len(document['failed'])}, "
        f"remaining {len(document['remaining'])}; {document['requests']} requests "
        f"({document['retries']} retries) in {document['elapsed_s']:.1f} s, "
        f"{document['requests_per_s']:.1f} req/s"
    )
    for failure in document["failed"][:10]:
        print(f"  failed {failure['item']}: {failure['status']} {failure['reason']}")
    print(f"summary: {where}")


async def _companies(args: argparse.Namespace) -> int:
    import csv

    from .http import AiohttpFetcher
    from .sources.opendart.corpcode import fetch_corp_codes
    from .sources.opendart.listing import listed_companies
    from .sources.opendart.source import DEFAULT_BASE_URL

    key = _api_key()
    base_url = args.base_url or DEFAULT_BASE_URL
    # Checked before corpCode.xml (several MB) is downloaded.
    _check_output_file(args.output, "--output")
    async with AiohttpFetcher() as fetcher:
        companies = await fetch_corp_codes(fetcher, api_key=key, base_url=base_url)
        companies = await listed_companies(
            companies,
            listed_from=args.listed_from,
            out=args.out,
            fetcher=fetcher,
            api_key=key,
            base_url=base_url,
        )
    try:
        # UTF-8 with a BOM: Korean Excel reads a BOM-less file as CP949 and garbles the names.
        with args.output.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(["corp_code", "stock_code", "corp_name"])
            for company in companies:
                writer.writerow(
                    [company.corp_code, company.stock_code or "", company.corp_name or ""]
                )
    except OSError as error:
        raise ConfigError("--output", f"cannot write {args.output}: {error.strerror}") from None
    print(f"{len(companies)} listed companies -> {args.output}")
    return EXIT_OK


def _flag_error(error: ConfigError) -> str:
    """The error's text, naming the flag the user set where the library named its parameter."""
    flag = _FLAGS.get(error.field)
    if flag is None or isinstance(error, InputError):
        return str(error)
    return f"{flag}: {error.problem}"


async def _guard(work: Awaitable[T]) -> T:
    """Run ``work`` with SIGINT and SIGTERM handled: the first cancels it, the second exits."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[str] = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if len(received) == 1:
            print(
                f"{name}: stopping; flushing the journal and writing the summary "
                "(send it again to exit at once)",
                file=sys.stderr,
                flush=True,
            )
            if task is not None:
                task.cancel()
            return
        # The second signal: out now. The journal's parts already stored are whole (each an
        # atomic put); what was not yet flushed is fetched again on resume.
        print(f"{name} again: exiting now; the journal keeps what it had stored", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_FAILED)

    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            continue
        installed.append(signum)
    try:
        return await work
    except asyncio.CancelledError:
        if not received:
            raise
        # Interrupted before the crawl began (or after it ended): main() reports it.
        raise KeyboardInterrupt from None
    finally:
        for installed_signum in installed:
            loop.remove_signal_handler(installed_signum)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    # Before and after the event loop runs: SIGTERM behaves like Ctrl-C (exit 1, not 143).
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asyncrawl`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if args.command == "crawl":
            return asyncio.run(_guard(_crawl(args)))
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(out=Path(args.out), quick=args.quick))
        return asyncio.run(_companies(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # CancelledError: a signal that came as the crawl was returning its exit code.
        run_id = getattr(args, "run_id", None)
        if args.command == "crawl" and run_id:
            print(
                f"interrupted: rerun with --run-id {run_id} to resume; "
                f"{args.out.rstrip('/')}/_meta/runs/{run_id}/summary.json lists what remains "
                "if it was written",
                file=sys.stderr,
            )
        else:
            print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except UpstreamFatalError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_FATAL
    except ConfigError as error:
        print(f"error: {redact_text(_flag_error(error))}", file=sys.stderr)
        return EXIT_USAGE
    except AsyncrawlError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        # A bug, not a user error: show the traceback, but masked, as Python's own hook
        # would print it unmasked (a third-party error's text may hold a request URL).
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return EXIT_FAILED
    finally:
        if previous_sigterm is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
