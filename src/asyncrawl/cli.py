"""The ``asyncrawl`` command line: ``crawl``, ``demo`` and ``companies``.

Exit codes (CONTRACTS.md): 0 every item finished and none failed; 1 some items failed or remain
undone; 2 bad usage or bad input; 3 fatal upstream error (bad key, IP blocked, quota gone).
The OpenDART key comes only from ``DART_API_KEY`` and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .engine import CrawlConfig
from .errors import AsyncrawlError, ConfigError, UpstreamFatalError
from .limiter import DEFAULT_RATES, Rate
from .redact import install_log_redaction, redact_text, register_secret

__all__ = ["EXIT_FAILED", "EXIT_FATAL", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL = 3

log = logging.getLogger("asyncrawl")


def _positive_int(name: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {value}")
        return value

    return parse


def _positive_float(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a number of seconds, got {text!r}"
            ) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be more than 0 seconds, got {text}")
        return value

    return parse


def _rate(text: str) -> Rate:
    try:
        return Rate.parse(text, field="--rate")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    crawl.add_argument("--years", required=True, nargs="+", metavar="YEAR")
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
    crawl.add_argument("--concurrency", type=_positive_int("--concurrency"), default=16)
    crawl.add_argument(
        "--rate",
        type=_rate,
        action="append",
        metavar="N/DURATION",
        help="a rate window such as 900/1m; repeat for several (default: 900/1m and 18000/1d)",
    )
    crawl.add_argument(
        "--deadline",
        type=_positive_float("--deadline"),
        metavar="SECONDS",
        help="stop starting new work after this many seconds",
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
        help="also write the run summary (JSON) to this file",
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


async def _crawl(args: argparse.Namespace) -> int:
    from .jobs.opendart import run_statements_job
    from .progress import CrawlProgress
    from .sinks import new_run_id, open_store, validate_run_id
    from .sources.opendart import OpenDartSource, load_companies, plan_items
    from .sources.opendart.source import DEFAULT_BASE_URL

    key = _api_key()
    source = OpenDartSource(api_key=key, base_url=args.base_url or DEFAULT_BASE_URL)
    run_id = validate_run_id(args.run_id) if args.run_id else new_run_id()
    # Kept for main(): an interrupted run tells the user which id resumes it.
    args.run_id = run_id
    if args.summary is not None:
        _check_summary_file(args.summary)
    companies = await load_companies(args.companies)
    items = list(plan_items(companies, args.years, args.kind, args.fs_div))
    config = CrawlConfig(
        concurrency=args.concurrency,
        rates=tuple(args.rate) if args.rate else DEFAULT_RATES,
        deadline=args.deadline,
    )
    log.info("run %s: %d companies, %d items -> %s", run_id, len(companies), len(items), args.out)
    async with open_store(args.out) as store:
        with CrawlProgress(total=len(items)) as progress:
            result = await run_statements_job(
                items,
                source=source,
                store=store,
                run_id=run_id,
                config=config,
                total=len(items),
                on_result=progress.update,
                on_start=progress.attach,
            )
    summary = result.summary
    document = result.document or summary.to_dict()
    if result.resumed:
        print(f"resumed run {run_id}: {result.resumed} items were finished earlier, not fetched")
    _print_summary(document, where=f"{args.out.rstrip('/')}/{result.summary_key}")
    if args.summary is not None:
        try:
            args.summary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        except OSError as error:
            print(
                f"error: --summary: cannot write {args.summary}: {error.strerror}", file=sys.stderr
            )
            return EXIT_USAGE
    if result.fatal is not None:
        print(f"error: stopped by the upstream: {result.fatal.reason}", file=sys.stderr)
    if result.sink_error is not None:
        print(f"error: could not store results: {result.sink_error}", file=sys.stderr)
    return exit_code(len(summary.failed), len(summary.remaining), result.fatal is not None)


def _check_summary_file(path: Path) -> None:
    """Refuse a ``--summary`` path that cannot be written, before any request is spent."""
    if path.is_dir():
        raise ConfigError("--summary", f"{path} is a directory; give a file name such as run.json")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(
            "--summary", f"the directory {parent} does not exist; create it or choose another file"
        )


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
    from .sources.opendart.source import DEFAULT_BASE_URL

    key = _api_key()
    async with AiohttpFetcher() as fetcher:
        companies = await fetch_corp_codes(
            fetcher, api_key=key, base_url=args.base_url or DEFAULT_BASE_URL
        )
    with args.output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["corp_code", "stock_code", "corp_name"])
        for company in companies:
            writer.writerow([company.corp_code, company.stock_code or "", company.corp_name or ""])
    print(f"{len(companies)} listed companies -> {args.output}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asyncrawl`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "crawl":
            return asyncio.run(_crawl(args))
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(out=Path(args.out), quick=args.quick))
        return asyncio.run(_companies(args))
    except KeyboardInterrupt:
        run_id = getattr(args, "run_id", None)
        if args.command == "crawl" and run_id:
            print(
                f"interrupted: {args.out.rstrip('/')}/_meta/runs/{run_id}/summary.json lists "
                f"what remains; rerun with --run-id {run_id} to resume",
                file=sys.stderr,
            )
        else:
            print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except UpstreamFatalError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_FATAL
    except ConfigError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except AsyncrawlError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        # A bug, not a user error: show the traceback, but masked, as Python's own hook
        # would print it unmasked (a third-party error's text may hold a request URL).
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
