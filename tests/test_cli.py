"""The ``asyncrawl`` command line, run as a user runs it: a subprocess against the stand-in.

Each test starts the OpenDART stand-in on 127.0.0.1 in its own event loop and runs
``python -m asyncrawl`` as a child process, so exit codes, stdout and stderr are the real ones,
and the stand-in's arrival log shows what the crawler really sent.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from asyncrawl.outcomes import Failed, NoData, Ok
from asyncrawl.progress import CrawlProgress
from asyncrawl.results import ItemResult
from asyncrawl.testing import FaultPlan, ItemContext
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn

KEY = "Cli0Test1Key2For3The4Stand5In6abcdefghij"
OTHER_KEY = "Another0Key1The2Server3Accepts4Only56789"
assert len(KEY) == len(OTHER_KEY) == 40

SUMMARY_KEYS = {
    "run_id",
    "planned",
    "ok",
    "no_data",
    "failed",
    "remaining",
    "requests",
    "retries",
    "status_counts",
    "elapsed_s",
    "requests_per_s",
}
DATA_FILE = re.compile(r"year=(\d{4})/report=(\d{5})/fs=(CFS|OFS)/(\d{8})\.jsonl\.gz")
QUARTER_REPORTS = ("11013", "11012", "11014", "11011")


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def _env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DART_API_KEY"}
    if key is not None:
        env["DART_API_KEY"] = key
    return env


async def asyncrawl(*args: str, key: str | None = KEY) -> Ran:
    """Run ``python -m asyncrawl ARGS`` while this loop keeps serving the stand-in."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncrawl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(key),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


def companies_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "companies.csv"
    lines = ["corp_code,stock_code,corp_name"]
    lines += [
        f"{c['corp_code']},{c['stock_code']},{c['corp_name']}" for c in DEMO_COMPANIES[:count]
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def crawl_args(
    server: OpenDartStandIn, companies: Path, out: Path, *extra: str, kind: str = "quarter"
) -> list[str]:
    return [
        "crawl",
        f"--kind={kind}",
        f"--companies={companies}",
        "--years",
        "2023",
        "2024",
        f"--base-url={server.url}/api/",
        f"--out={out}",
        *extra,
    ]


def read_summary(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert summary.keys() >= SUMMARY_KEYS
    failed = summary["failed"]
    assert all({"item", "status", "reason"} <= f.keys() for f in failed)
    assert summary["planned"] == (
        summary["ok"] + summary["no_data"] + len(failed) + len(summary["remaining"])
    )
    return summary


def data_files(out: Path) -> dict[str, Path]:
    """Item key (``corp/year/report/fs``) -> its data file; fails on anything else in data/."""
    files: dict[str, Path] = {}
    root = out / "data"
    if not root.exists():
        return files
    for path in root.rglob("*"):
        if path.is_dir():
            continue
        match = DATA_FILE.fullmatch(path.relative_to(root).as_posix())
        assert match, f"not a data file of the contract's layout: {path}"
        year, report, fs, corp = match.groups()
        files[f"{corp}/{year}/{report}/{fs}"] = path
    return files


def planned_keys(count: int, reports: tuple[str, ...] = QUARTER_REPORTS) -> set[str]:
    return {
        f"{c['corp_code']}/{year}/{report}/{fs}"
        for c in DEMO_COMPANIES[:count]
        for year in (2023, 2024)
        for report in reports
        for fs in ("CFS", "OFS")
    }


# --- exit 0: the contract's output ------------------------------------------------------------


async def test_a_clean_run_exits_0_and_writes_the_contract_layout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra_summary = tmp_path / "summary.json"
    companies = companies_file(tmp_path, 2)
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *crawl_args(server, companies, out, "--run-id=r1", f"--summary={extra_summary}")
        )
    assert ran.code == 0, ran.stderr
    summary = read_summary(out / "_meta" / "runs" / "r1" / "summary.json")
    assert read_summary(extra_summary) == summary
    assert summary["run_id"] == "r1"
    assert summary["planned"] == 32
    assert summary["failed"] == []
    assert summary["remaining"] == []
    assert summary["no_data"] > 0  # the stand-in answers 013 for about a tenth of the items
    assert "run r1: planned 32" in ran.stdout
    # Not a terminal: plain progress lines on stderr.
    assert "progress: 32/32 done" in ran.stderr
    assert "Traceback" not in ran.stderr

    files = data_files(out)
    # One file per item with data, none for the no-data items.
    assert len(files) == summary["ok"]
    assert set(files) <= planned_keys(2)
    names = {c["corp_code"]: c for c in DEMO_COMPANIES}
    for key, path in files.items():
        corp, year, report, fs = key.split("/")
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        assert lines
        for line in lines:
            row = orjson.loads(line)
            assert all(isinstance(value, str) for value in row.values()), row
            assert row["corp_code"] == corp
            assert row["bsns_year"] == year
            assert row["reprt_code"] == report
            assert row["fs_div"] == fs
            assert row["stock_code"] == names[corp]["stock_code"]
            assert row["corp_name"] == names[corp]["corp_name"]
            assert row["account_nm"]
            assert row["thstrm_amount"]
            crawled_at = datetime.fromisoformat(row["crawled_at"])
            assert crawled_at.utcoffset() == timedelta(0)


async def test_no_data_items_finish_without_a_data_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn(no_data_ratio=1.0) as server:
        args = crawl_args(server, companies_file(tmp_path, 1), out, "--run-id=nd", kind="annual")
        # -v after the command, where people put it, turns DEBUG logging on too.
        ran = await asyncrawl(args[0], "-v", *args[1:])
    assert ran.code == 0, ran.stderr
    assert " DEBUG " in ran.stderr
    summary = read_summary(out / "_meta" / "runs" / "nd" / "summary.json")
    assert summary["planned"] == summary["no_data"] == 4
    assert data_files(out) == {}


# --- exit 1: failed or remaining items --------------------------------------------------------

REFUSED_CORP = DEMO_COMPANIES[1]["corp_code"]


class RefusingStandIn(OpenDartStandIn):
    """Answers DART status 100 ("a field has an invalid value") for one company's statements."""

    def choose_fault(self, request: web.Request, item: str, attempt: int, now: float) -> str | None:
        fault = super().choose_fault(request, item, attempt, now)
        if fault is None and item.startswith(f"{REFUSED_CORP}/"):
            return "refuse"
        return fault

    async def fault_response(
        self, request: web.Request, context: ItemContext, fault: str
    ) -> web.StreamResponse:
        if fault == "refuse":
            return web.json_response({"status": "100", "message": "필드의 부적절한 값입니다."})
        return await super().fault_response(request, context, fault)


async def test_items_dart_refuses_are_failed_and_the_exit_code_is_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with RefusingStandIn(no_data_ratio=0.0) as server:
        ran = await asyncrawl(
            *crawl_args(server, companies_file(tmp_path, 2), out, "--run-id=f", kind="annual")
        )
        attempts = server.attempts_by_item()
    assert ran.code == 1, ran.stderr
    summary = read_summary(out / "_meta" / "runs" / "f" / "summary.json")
    failed = {f["item"]: f for f in summary["failed"]}
    assert set(failed) == {k for k in planned_keys(2, ("11011",)) if k.startswith(REFUSED_CORP)}
    assert {f["status"] for f in failed.values()} == {"100"}
    assert all(attempts[item] == 1 for item in failed)  # a refused item is not retried
    assert summary["ok"] == 4
    assert set(data_files(out)) == planned_keys(2, ("11011",)) - set(failed)
    assert f"failed {next(iter(sorted(failed)))}" in ran.stdout


# --- resume -----------------------------------------------------------------------------------


async def test_a_rerun_with_the_same_run_id_fetches_only_what_remains(tmp_path: Path) -> None:
    out = tmp_path / "out"
    companies = companies_file(tmp_path, 1)
    run = out / "_meta" / "runs" / "resume-1"
    async with OpenDartStandIn(plan=FaultPlan(latency=0.25)) as server:
        first = await asyncrawl(
            *crawl_args(server, companies, out, "--run-id=resume-1"),
            "--concurrency=2",
            "--deadline=0.6",
        )
        assert first.code == 1, first.stderr
        before = read_summary(run / "summary.json")
        remaining = set(before["remaining"])
        finished = planned_keys(1) - remaining
        assert before["failed"] == []
        assert remaining
        assert finished
        files_before = data_files(out)
        assert len(files_before) == before["ok"]

        server.reset_log()
        second = await asyncrawl(
            *crawl_args(server, companies, out, "--run-id=resume-1"), "--concurrency=8"
        )
        fetched = server.attempts_by_item()
    assert second.code == 0, second.stderr
    # Only the remaining items were asked for again, each once.
    assert fetched == dict.fromkeys(remaining, 1)
    after = read_summary(run / "summary.json")
    assert after["failed"] == []
    assert after["remaining"] == []
    assert after["ok"] + after["no_data"] == len(planned_keys(1))
    files_after = data_files(out)
    assert len(files_after) == after["ok"]
    assert set(files_before) <= set(files_after)


# --- the rate windows -------------------------------------------------------------------------


async def test_every_rate_window_holds_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *crawl_args(server, companies_file(tmp_path, 3), out),
            "--rate",
            "20/1s",
            "--rate=30/3s",
        )
        arrivals = server.arrivals
        most_in_1s = server.max_in_window(1.0)
        most_in_3s = server.max_in_window(3.0)
    assert ran.code == 0, ran.stderr
    assert len(arrivals) == 48
    assert most_in_1s <= 20
    assert most_in_3s <= 30


# --- exit 2: bad usage, named field and fix ---------------------------------------------------


def _run_sync(args: list[str], key: str | None = KEY) -> Ran:
    done = subprocess.run(
        [sys.executable, "-m", "asyncrawl", *args],
        capture_output=True,
        text=True,
        env=_env(key),
        timeout=60,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def _crawl(companies: Path, *extra: str) -> list[str]:
    # The port is never contacted: every case below is refused before any request.
    return [
        "crawl",
        "--kind=annual",
        f"--companies={companies}",
        "--years=2023",
        "--base-url=http://127.0.0.1:9/api/",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        (["--bogus"], KEY, ["unrecognized arguments: --bogus"]),
        (["--rate", "abc"], KEY, ["--rate", "'abc'", "N/DURATION", "900/1m"]),
        (["--concurrency", "0"], KEY, ["--concurrency", "at least 1"]),
        (["--concurrency", "1000000"], KEY, ["--concurrency", "at most 1,000", "1,000,000"]),
        (["--deadline", "1e9"], KEY, ["--deadline", "at most 604800 seconds"]),
        (["--deadline", "nan"], KEY, ["--deadline", "more than 0"]),
        (["--rate", "100000000/1s"], KEY, ["--rate", "at most 1,000,000", "900/1m"]),
        (["--rate", "5/400d"], KEY, ["--rate", "31d"]),
        (["--attempt-timeout", "0"], KEY, ["--attempt-timeout", "more than 0"]),
        (["--hedge-after", "soon"], KEY, ["--hedge-after", "'auto'", "'soon'"]),
        (["--storage-timeout", "1000"], KEY, ["--storage-timeout", "at most 300"]),
        (["--run-id", "../x"], KEY, ["--run-id", "'../x'", "letters, digits"]),
        (["--base-url", "http://127.0.0.1:99999/api/"], KEY, ["--base-url", "invalid port"]),
        ([], None, ["DART_API_KEY", "not set", "export DART_API_KEY"]),
        ([], "short", ["DART_API_KEY", "40"]),
    ],
    ids=[
        "unknown-flag",
        "bad-rate",
        "bad-concurrency",
        "huge-concurrency",
        "huge-deadline",
        "nan-deadline",
        "huge-rate",
        "long-rate-window",
        "zero-attempt-timeout",
        "bad-hedge-after",
        "huge-storage-timeout",
        "bad-run-id",
        "bad-port",
        "no-key",
        "short-key",
    ],
)
def test_bad_usage_exits_2_naming_the_field_and_the_fix(
    tmp_path: Path, extra: list[str], key: str | None, expected: list[str]
) -> None:
    out = tmp_path / "out"
    ran = _run_sync(_crawl(companies_file(tmp_path, 1), f"--out={out}", *extra), key=key)
    assert ran.code == 2
    for text in expected:
        assert text in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not out.exists()


def test_a_malformed_company_file_exits_2_naming_the_line_and_field(tmp_path: Path) -> None:
    companies = tmp_path / "bad.csv"
    companies.write_text(
        "corp_code,stock_code,corp_name\n00126380,005930,삼성전자\n12x4,000660,SK하이닉스\n",
        encoding="utf-8",
    )
    ran = _run_sync(_crawl(companies, f"--out={tmp_path / 'out'}"))
    assert ran.code == 2
    assert "line 3" in ran.stderr
    assert "corp_code" in ran.stderr
    assert "'12x4'" in ran.stderr
    assert "8-digit" in ran.stderr
    assert "Traceback" not in ran.stderr


async def test_an_unwritable_summary_file_is_refused_before_any_request(tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "no-such-dir" / "summary.json"
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *crawl_args(server, companies_file(tmp_path, 1), out, f"--summary={missing}")
        )
        arrivals = server.arrivals
    assert ran.code == 2
    assert "--summary" in ran.stderr
    assert "does not exist" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert arrivals == []


async def test_an_output_under_a_file_is_refused_before_any_request(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(*crawl_args(server, companies_file(tmp_path, 1), blocker / "out"))
        arrivals = server.arrivals
    assert ran.code == 2
    assert "--out:" in ran.stderr  # the flag, though the store names its parameter (root)
    assert "cannot create" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert arrivals == []


def test_a_malformed_s3_output_names_the_flag(tmp_path: Path) -> None:
    ran = _run_sync(_crawl(companies_file(tmp_path, 1), "--out=s3://Bad_Bucket/x"))
    assert ran.code == 2
    assert "--out: 's3://Bad_Bucket/x'" in ran.stderr
    assert "s3://BUCKET" in ran.stderr


@pytest.mark.parametrize("where", ["directory", "missing-parent", "parent-is-a-file"])
async def test_companies_output_is_checked_before_corpcode_is_downloaded(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_text("x")
    output = {
        "directory": tmp_path,
        "missing-parent": tmp_path / "missing" / "companies.csv",
        "parent-is-a-file": tmp_path / "file" / "companies.csv",
    }[where]
    async with OpenDartStandIn() as server:
        ran = await asyncrawl("companies", f"--output={output}", f"--base-url={server.url}/api/")
        arrivals = server.arrivals
    assert ran.code == 2, ran.stderr
    assert "--output" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert arrivals == []  # corpCode.xml was not downloaded


async def test_attempt_timeout_and_hedge_after_flags_are_accepted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *crawl_args(server, companies_file(tmp_path, 1), out, kind="annual"),
            "--attempt-timeout=5",
            "--hedge-after=2.5",
        )
    assert ran.code == 0, ran.stderr


# --- Ctrl-C -----------------------------------------------------------------------------------


class SignallingStandIn(OpenDartStandIn):
    """Sets :attr:`reached` when ``arrivals`` requests have arrived."""

    def __init__(self, *, arrivals: int, plan: FaultPlan) -> None:
        super().__init__(plan=plan)
        self._wanted = arrivals
        self.reached = asyncio.Event()

    def choose_fault(self, request: web.Request, item: str, attempt: int, now: float) -> str | None:
        if len(self.arrivals) + 1 >= self._wanted:
            self.reached.set()
        return super().choose_fault(request, item, attempt, now)


async def _interrupt(server: SignallingStandIn, args: list[str]) -> Ran:
    """Run the CLI and send it SIGINT (Ctrl-C) once the stand-in's arrivals reached its mark."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncrawl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(KEY),
    )
    communicate = asyncio.ensure_future(process.communicate())
    async with asyncio.timeout(30):
        await server.reached.wait()
        process.send_signal(signal.SIGINT)
        stdout, stderr = await communicate
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


async def test_ctrl_c_leaves_a_summary_and_the_same_run_id_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    companies = companies_file(tmp_path, 2)
    async with SignallingStandIn(arrivals=6, plan=FaultPlan(latency=0.2)) as server:
        args = crawl_args(server, companies, out, "--run-id=ctrl-c", "--concurrency=2")
        first = await _interrupt(server, args)
        assert first.code == 1, first.stderr
        assert "interrupted" in first.stderr
        assert "--run-id ctrl-c" in first.stderr
        assert "Traceback" not in first.stderr
        before = read_summary(out / "_meta" / "runs" / "ctrl-c" / "summary.json")
        assert before["cancelled"] is True
        stored = set(data_files(out))
        finished = before["ok"] + before["no_data"]
        assert len(stored) == before["ok"] > 0

        server.reset_log()
        second = await asyncrawl(*args)
        fetched = server.attempts_by_item()
    assert second.code == 0, second.stderr
    assert not stored & set(fetched)  # stored items are not fetched again
    assert sum(fetched.values()) == len(planned_keys(2)) - finished
    assert set(data_files(out)) >= stored


async def test_an_interrupted_runs_summary_lists_every_unfinished_item(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with SignallingStandIn(arrivals=6, plan=FaultPlan(latency=0.2)) as server:
        args = crawl_args(
            server, companies_file(tmp_path, 2), out, "--run-id=ctrl-c", "--concurrency=2"
        )
        ran = await _interrupt(server, args)
    assert ran.code == 1, ran.stderr
    summary = read_summary(out / "_meta" / "runs" / "ctrl-c" / "summary.json")
    # CONTRACTS.md: `remaining` holds every item not finished "for any reason: ...
    # cancellation", and `planned` is the whole plan, not the part started before Ctrl-C.
    assert summary["planned"] == len(planned_keys(2))
    finished = planned_keys(2) - set(summary["remaining"])
    assert len(finished) == summary["ok"] + summary["no_data"]


# --- exit 3: the upstream refuses the run -----------------------------------------------------


async def test_a_refused_key_exits_3_and_leaves_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn(api_key=OTHER_KEY) as server:
        ran = await asyncrawl(
            *crawl_args(server, companies_file(tmp_path, 2), out, "--run-id=bad-key"),
            key=KEY,
        )
    assert ran.code == 3
    assert "DART_API_KEY" in ran.stderr
    assert "010" in ran.stderr
    assert KEY not in ran.stdout + ran.stderr
    summary = read_summary(out / "_meta" / "runs" / "bad-key" / "summary.json")
    assert summary["ok"] == 0
    assert len(summary["remaining"]) == summary["planned"] == 32
    assert data_files(out) == {}


# --- progress when not a terminal -------------------------------------------------------------


def _result(outcome: Ok | NoData | Failed) -> ItemResult[str]:
    return ItemResult(item="x", key="x", outcome=outcome, attempts=1, finished_at=0.0)


def test_progress_writes_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with CrawlProgress(total=3, stream=stream, interval=0.0) as progress:
        progress.update(_result(Ok(status="000", payload=[])))
        progress.update(_result(NoData(status="013", reason="no data")))
        progress.update(_result(Failed(status="100", reason="bad field")))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("progress: 1/3 done (ok 1 · no data 0 · failed 0)")
    assert lines[-1].startswith("progress: 3/3 done (ok 1 · no data 1 · failed 1)")
    assert all(line.startswith("progress: ") for line in lines)
    assert "\x1b[" not in stream.getvalue()  # no terminal control codes in a log file
