"""The command line under faults: a hung or stalling S3, SIGTERM, kill -9, a busy run id.

Each test runs ``python -m asyncrawl crawl`` as a child process against the OpenDART stand-in,
with moto's S3 server behind a :class:`~asyncrawl.testing.FaultProxy` where storage is the
fault. The child's own exit is the bound: every run here ends by itself (the communicate
timeouts only keep a broken build from hanging the suite).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from asyncrawl.testing import FaultPlan, FaultProxy
from asyncrawl.testing.opendart import OpenDartStandIn
from test_cli import (
    KEY,
    Ran,
    SignallingStandIn,
    _env,
    asyncrawl,
    companies_file,
    crawl_args,
    data_files,
    planned_keys,
    read_summary,
)

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]

PREFIX = "out"


@pytest.fixture
async def s3_proxy(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FaultProxy]:
    """moto behind a FaultProxy; the children's S3 endpoint is the proxy."""
    host, _, port = moto_s3.endpoint.removeprefix("http://").partition(":")
    async with FaultProxy(host, int(port)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        yield proxy


def _stored_after_a_crash(out: Path) -> set[str]:
    """Item keys with a data file; a write cut by kill -9 may leave a hidden temporary file
    (``.NAME.RANDOM.asyncrawl-tmp``, which Hive-style readers skip as hidden): set aside."""
    for leftover in (out / "data").rglob(".*.asyncrawl-tmp"):
        leftover.rename(out / leftover.name)
    return set(data_files(out))


def _to_s3(args: list[str], moto_s3: MotoS3) -> list[str]:
    """``args`` with ``--out`` pointing at the test bucket's prefix."""
    return [
        f"--out=s3://{moto_s3.bucket}/{PREFIX}" if arg.startswith("--out=") else arg for arg in args
    ]


def _s3_data_items(moto_s3: MotoS3) -> set[str]:
    """Item keys (corp/year/report/fs) of the data objects in the bucket."""
    items = set()
    for key in moto_s3.keys(f"{PREFIX}/data/"):
        year, report, fs, name = (part.partition("=")[2] or part for part in key.split("/")[2:])
        items.add(f"{name.removesuffix('.jsonl.gz')}/{year}/{report}/{fs}")
    return items


def _check_ok_items_are_stored(
    summary: dict[str, Any], server: OpenDartStandIn, moto_s3: MotoS3, planned: set[str]
) -> None:
    unfinished = set(summary["remaining"]) | {f["item"] for f in summary["failed"]}
    finished = planned - unfinished
    ok = {item for item in finished if not server._is_no_data(item)}
    assert len(ok) == summary["ok"]
    assert ok <= _s3_data_items(moto_s3)  # every item counted ok has its object
    for item in ok:  # ... written once (the bucket is versioned)
        corp, year, report, fs = item.split("/")
        key = f"{PREFIX}/data/year={year}/report={report}/fs={fs}/{corp}.jsonl.gz"
        assert len(moto_s3.versions(key)) == 1, key


# --- storage that stops answering -------------------------------------------------------------


async def test_s3_hanging_from_the_start_is_a_storage_failure_with_the_summary_kept(
    tmp_path: Path, s3_proxy: FaultProxy, moto_s3: MotoS3
) -> None:
    s3_proxy.mode = "stall"
    summary_file = tmp_path / "summary.json"
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *_to_s3(
                crawl_args(
                    server,
                    companies_file(tmp_path, 2),
                    Path("unused"),
                    "--run-id=hang",
                    f"--summary={summary_file}",
                    "--deadline=20",
                    "--storage-timeout=1",
                    kind="annual",
                ),
                moto_s3,
            )
        )
        arrivals = server.arrivals
    assert ran.code == 1, ran.stderr
    assert f"storage failure: S3 store s3://{moto_s3.bucket}/{PREFIX} did not answer" in ran.stderr
    assert "summary not stored" in ran.stderr  # the bounded form, in the log
    assert "Traceback" not in ran.stderr
    assert arrivals == []  # no request spent on results that could not be kept
    summary = read_summary(summary_file)
    assert summary["planned"] == len(summary["remaining"]) == 8
    assert KEY not in ran.stdout + ran.stderr + summary_file.read_text()


async def test_s3_stalling_mid_run_ends_the_run_with_every_ok_item_stored(
    tmp_path: Path, s3_proxy: FaultProxy, moto_s3: MotoS3
) -> None:
    # Lease (list, put) and journal (list) take 3 requests; a few data puts go through, then
    # S3 accepts connections and never answers again.
    s3_proxy.stall_after_requests = 8
    moto_s3.enable_versioning()
    summary_file = tmp_path / "summary.json"
    async with OpenDartStandIn(plan=FaultPlan(latency=0.05)) as server:
        ran = await asyncrawl(
            *_to_s3(
                crawl_args(
                    server,
                    companies_file(tmp_path, 4),
                    Path("unused"),
                    "--run-id=stall",
                    f"--summary={summary_file}",
                    "--deadline=30",
                    "--storage-timeout=1",
                    "--concurrency=4",
                ),
                moto_s3,
            )
        )
    assert ran.code == 1, ran.stderr
    assert f"S3 store s3://{moto_s3.bucket}/{PREFIX}" in ran.stderr
    assert "storage failure" in ran.stderr
    assert "Traceback" not in ran.stderr
    summary = read_summary(summary_file)
    assert summary["remaining"]  # the run stopped early, its items left for a resume
    _check_ok_items_are_stored(summary, server, moto_s3, planned_keys(4))
    assert KEY not in ran.stdout + ran.stderr + summary_file.read_text()


async def test_a_slow_but_answering_s3_is_not_a_failure(
    tmp_path: Path, s3_proxy: FaultProxy, moto_s3: MotoS3
) -> None:
    s3_proxy.mode = "slow"
    s3_proxy.delay = 0.05
    async with OpenDartStandIn() as server:
        ran = await asyncrawl(
            *_to_s3(
                crawl_args(server, companies_file(tmp_path, 1), Path("unused"), "--run-id=slow"),
                moto_s3,
            )
        )
    assert ran.code == 0, ran.stderr
    stored = orjson.loads(
        moto_s3.client()
        .get_object(Bucket=moto_s3.bucket, Key=f"{PREFIX}/_meta/runs/slow/summary.json")["Body"]
        .read()
    )
    assert stored["ok"] == len(_s3_data_items(moto_s3))


# --- signals ----------------------------------------------------------------------------------


async def _signal(server: SignallingStandIn, args: list[str], *signals: signal.Signals) -> Ran:
    """Run the CLI; send ``signals`` (back to back) once the stand-in's mark is reached."""
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
    async with asyncio.timeout(60):
        await server.reached.wait()
        for sig in signals:
            if process.returncode is None:
                process.send_signal(sig)
        stdout, stderr = await communicate
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


async def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "out"
    companies = companies_file(tmp_path, 2)
    async with SignallingStandIn(arrivals=6, plan=FaultPlan(latency=0.2)) as server:
        args = crawl_args(server, companies, out, "--run-id=term", "--concurrency=2")
        first = await _signal(server, args, signal.SIGTERM)
        assert first.code == 1, first.stderr  # not 143
        assert "SIGTERM: stopping" in first.stderr
        assert "--run-id term" in first.stderr
        assert "Traceback" not in first.stderr
        before = read_summary(out / "_meta" / "runs" / "term" / "summary.json")
        assert before["cancelled"] is True
        stored = set(data_files(out))
        assert len(stored) == before["ok"] > 0

        server.reset_log()
        second = await asyncrawl(*args)
        fetched = server.attempts_by_item()
    assert second.code == 0, second.stderr
    assert not stored & set(fetched)  # the journal was flushed: nothing stored is fetched again


async def test_a_second_signal_exits_at_once_with_code_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with SignallingStandIn(arrivals=6, plan=FaultPlan(latency=0.2)) as server:
        args = crawl_args(
            server, companies_file(tmp_path, 2), out, "--run-id=twice", "--concurrency=2"
        )
        ran = await _signal(server, args, signal.SIGINT, signal.SIGTERM)
    assert ran.code == 1, ran.stderr  # not 130
    assert "Traceback" not in ran.stderr
    # Whatever part of the journal was stored is whole and loads.
    for part in (out / "_meta" / "runs" / "twice" / "journal").glob("part-*.jsonl"):
        for line in part.read_bytes().splitlines():
            assert orjson.loads(line)["status"] in ("ok", "no_data")


# --- kill -9 and resume -----------------------------------------------------------------------


async def test_a_resume_after_kill_9_refetches_only_what_was_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "out"
    concurrency = 4
    async with SignallingStandIn(arrivals=60, plan=FaultPlan(latency=0.3)) as server:
        args = crawl_args(
            server,
            companies_file(tmp_path, 6),
            out,
            "--run-id=killed",
            f"--concurrency={concurrency}",
        )
        killed = await _signal(server, args, signal.SIGKILL)
        assert killed.code == -signal.SIGKILL
        stored = _stored_after_a_crash(out)
        assert len(stored) > 30

        server.reset_log()
        resumed = await asyncrawl(*args)
        fetched = set(server.attempts_by_item())
    assert resumed.code == 0, resumed.stderr  # the dead process's lease did not block it
    refetched = stored & fetched
    # The journal is flushed every second: what was stored in the last second before the kill
    # (at most concurrency / latency = ~13 items) and what was in flight is all that is fetched
    # again (it was flushed every 200 entries before: all of it).
    assert len(refetched) <= concurrency + concurrency / 0.3 + 2, sorted(refetched)
    assert _stored_after_a_crash(out) >= stored


# --- one run at a time ------------------------------------------------------------------------


async def test_a_second_crawl_of_a_running_run_id_is_refused_as_busy(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Slow enough that the first run is still working whatever the machine's load; it is
    # stopped with SIGTERM once the second was refused.
    async with SignallingStandIn(arrivals=2, plan=FaultPlan(latency=1.0)) as server:
        args = crawl_args(
            server, companies_file(tmp_path, 2), out, "--run-id=busy", "--concurrency=1"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asyncrawl",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(KEY),
        )
        first = asyncio.ensure_future(process.communicate())
        async with asyncio.timeout(60):
            await server.reached.wait()
            second = await asyncrawl(*args)
            process.send_signal(signal.SIGTERM)
            _stdout, first_stderr = await first
    assert second.code == 1
    assert "run busy is busy" in second.stderr
    assert "Traceback" not in second.stderr
    assert process.returncode == 1, first_stderr.decode()
    summary = read_summary(out / "_meta" / "runs" / "busy" / "summary.json")
    assert summary["remaining"]  # the first run was still at work when the second was refused
