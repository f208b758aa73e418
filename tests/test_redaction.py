"""The DART key never shows: not in errors, their chains and tracebacks, logs, output or files.

The key travels in the request's query string (``crtfc_key=...``), so anything that renders a
request URL can leak it. The unit tests make :class:`AiohttpFetcher` fail every way a real
network fails and inspect everything the resulting error exposes; the end-to-end test runs the
real command line with DEBUG logging against a stand-in that injects every fault it offers,
then searches every byte the run printed or wrote.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import sys
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from asyncrawl.errors import AttemptTimeout, FetchError, TransportError
from asyncrawl.http import AiohttpFetcher, Request
from asyncrawl.testing import FaultPlan, FaultServer
from asyncrawl.testing.opendart import OpenDartStandIn

KEY = "Key0Secret1Value2Never3Shown4Anywhere567"
OTHER_KEY = "Other0Key1For2The3Server4That5Says010890"


def _request(url: str) -> Request:
    return Request(
        url=url,
        params={"crtfc_key": KEY, "corp_code": "00126380"},
        secret_params=frozenset({"crtfc_key"}),
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and every exception linked from it, suppressed context included."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return iter(seen)


def assert_no_key_in_error(error: BaseException) -> None:
    """Everything an error handler, logger or error reporter could render from ``error``."""
    for linked in _chain(error):
        for text in (str(linked), repr(linked), repr(linked.args)):
            assert KEY not in text, f"{type(linked).__name__} shows the key: {text[:300]}"
    for chained in (True, False):
        rendered = "".join(traceback.format_exception(error, chain=chained))
        assert KEY not in rendered
    # What a logger with exc_info renders, suppressed context shown as well.
    exploded = traceback.TracebackException.from_exception(error, compact=False)
    assert KEY not in "".join(exploded.format())


async def _fetch_error(url: str, *, timeout: float = 5.0) -> FetchError:
    async with AiohttpFetcher() as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(_request(url), timeout=timeout)
    return caught.value


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_refused_connection_error_hides_the_key() -> None:
    error = await _fetch_error(f"http://127.0.0.1:{_closed_port()}/api/fnlttSinglAcntAll.json")
    assert isinstance(error, TransportError)
    assert error.status == "connection_refused"
    assert "crtfc_key=***" in str(error)
    assert_no_key_in_error(error)


@pytest.mark.parametrize(
    ("plan", "kind", "status"),
    [
        (FaultPlan(p_reset=1.0), TransportError, "connection_reset"),
        (FaultPlan(p_truncate=1.0), TransportError, "truncated"),
        (FaultPlan(p_hang=1.0), AttemptTimeout, "timeout"),
    ],
    ids=["reset", "truncated", "hang"],
)
async def test_fault_errors_hide_the_key(
    plan: FaultPlan, kind: type[FetchError], status: str
) -> None:
    async with FaultServer(plan) as server:
        error = await _fetch_error(f"{server.url}/api/fnlttSinglAcntAll.json", timeout=0.3)
    assert isinstance(error, kind)
    assert error.status == status
    assert "crtfc_key=***" in str(error)
    assert "crtfc_key=***" in error.url
    assert_no_key_in_error(error)


@pytest.fixture
async def redirect_loop() -> AsyncIterator[str]:
    """A server that redirects every request to itself (a misconfigured proxy, say)."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(request.rel_url))

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def garbage_http() -> AsyncIterator[str]:
    """A server that answers with a status line no HTTP client can parse."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 abc not-a-status\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    yield f"http://{host}:{port}"
    server.close()
    await server.wait_closed()


async def test_redirect_loop_is_answered_not_followed(redirect_loop: str) -> None:
    # aiohttp's TooManyRedirects carried the request URL, query and all, in its text and args.
    # The fetcher no longer follows redirects: the 302 comes back as an answer, once.
    async with AiohttpFetcher() as fetcher:
        response = await fetcher.fetch(
            _request(f"{redirect_loop}/api/fnlttSinglAcntAll.json"), timeout=5.0
        )
    assert response.status == 302
    assert "Location" in response.headers


async def test_body_too_large_error_hides_the_key() -> None:
    async with FaultServer() as server, AiohttpFetcher(max_body_bytes=4) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(_request(f"{server.url}/api/x.json"), timeout=5.0)
    assert caught.value.status == "body_too_large"
    assert "crtfc_key=***" in str(caught.value)
    assert_no_key_in_error(caught.value)


async def test_unparsable_answer_error_hides_the_key(garbage_http: str) -> None:
    # aiohttp's ClientResponseError carries the request URL in its request_info.
    error = await _fetch_error(f"{garbage_http}/api/fnlttSinglAcntAll.json")
    assert isinstance(error, TransportError)
    assert_no_key_in_error(error)


# --- end to end: the real command line under every fault -------------------------------------

# The command line has no flag for the per-attempt timeout or the retry back-off (CONTRACTS.md
# fixes its flags), so this runner starts the real `main` with shorter ones: a hung request then
# costs half a second instead of thirty. Everything else -- logging set-up, redaction, progress,
# printing, exit code -- is the shipped code path.
_FAST_RUNNER = """
import functools, sys
import asyncrawl.cli as cli
from asyncrawl.engine import CrawlConfig
from asyncrawl.retry import RetryPolicy
cli.CrawlConfig = functools.partial(
    CrawlConfig,
    attempt_timeout=0.5,
    retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2),
)
sys.exit(cli.main(sys.argv[1:]))
"""


async def _run(
    args: list[str], *, key: str | None, runner: str = _FAST_RUNNER
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DART_API_KEY"}
    if key is not None:
        env["DART_API_KEY"] = key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        runner,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _every_file_text(root: Path) -> dict[Path, str]:
    """Every file under ``root``, decompressed when gzip, as text."""
    texts: dict[Path, str] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            texts[path] = data.decode("utf-8", errors="replace")
    return texts


def _companies(tmp_path: Path) -> Path:
    path = tmp_path / "companies.csv"
    path.write_text(
        "corp_code,stock_code,corp_name\n00126380,005930,삼성전자\n00164779,000660,SK하이닉스\n",
        encoding="utf-8",
    )
    return path


async def test_no_key_anywhere_after_a_faulty_verbose_run(tmp_path: Path) -> None:
    plan = FaultPlan(
        seed=3,
        latency=0.01,
        p_reset=0.08,
        p_hang=0.08,
        p_truncate=0.1,
        p_503=0.1,
        p_429=0.05,
        retry_after=0.1,
        p_html=0.1,
    )
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    async with OpenDartStandIn(plan=plan) as server:
        code, stdout, stderr = await _run(
            [
                "-v",
                "crawl",
                "--kind=quarter",
                f"--companies={_companies(tmp_path)}",
                "--years",
                "2023",
                "2024",
                f"--base-url={server.url}/api/",
                f"--out={out}",
                "--run-id=secrets",
                f"--summary={summary}",
            ],
            key=KEY,
        )
        faults = Counter(arrival.fault for arrival in server.arrivals)
    # The run really met every kind of fault (otherwise this test proves nothing).
    for fault in ("reset", "hang", "truncate", "503", "429", "html"):
        assert faults[fault] > 0, f"no {fault} was injected: {faults}"
    assert code in (0, 1), stderr
    assert "DEBUG" in stderr  # -v really turned DEBUG logging on
    assert "progress:" in stderr
    files = _every_file_text(tmp_path)
    assert summary in files
    assert out / "_meta" / "runs" / "secrets" / "summary.json" in files
    assert any(path.name.endswith(".jsonl.gz") for path in files)
    assert KEY not in stdout
    assert KEY not in stderr
    for path, text in files.items():
        assert KEY not in text, f"{path} holds the key"


async def test_no_key_anywhere_after_a_refused_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn(api_key=OTHER_KEY) as server:
        code, stdout, stderr = await _run(
            [
                "-v",
                "crawl",
                "--kind=annual",
                f"--companies={_companies(tmp_path)}",
                "--years=2023",
                f"--base-url={server.url}/api/",
                f"--out={out}",
            ],
            key=KEY,
        )
    assert code == 3
    assert "010" in stderr
    assert KEY not in stdout + stderr
    for path, text in _every_file_text(tmp_path).items():
        assert KEY not in text, f"{path} holds the key"


# A bug deep in a run whose error text holds a request URL, key and all (as aiohttp's do).
_BROKEN_RUNNER = """
import os, sys
import asyncrawl.jobs.opendart as job
async def broken(*args, **kwargs):
    url = "http://127.0.0.1:9/api/x.json?crtfc_key=" + os.environ["DART_API_KEY"]
    raise RuntimeError("unexpected failure for " + url)
job.run_statements_job = broken
from asyncrawl.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def test_an_unexpected_error_shows_a_masked_traceback(tmp_path: Path) -> None:
    code, stdout, stderr = await _run(
        [
            "crawl",
            "--kind=annual",
            f"--companies={_companies(tmp_path)}",
            "--years=2023",
            "--base-url=http://127.0.0.1:9/api/",
            f"--out={tmp_path / 'out'}",
        ],
        key=KEY,
        runner=_BROKEN_RUNNER,
    )
    assert code == 1
    assert "Traceback" in stderr
    assert "RuntimeError: unexpected failure for" in stderr
    assert "crtfc_key=***" in stderr
    assert KEY not in stdout + stderr
