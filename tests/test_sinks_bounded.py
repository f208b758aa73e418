"""Every storage call ends in time: bounded(), S3's socket limits, daemon threads, put_if_absent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.retries.standard
import pytest

from asyncrawl.errors import ConfigError, SinkError
from asyncrawl.sinks import BlobStore, DirectoryStore, S3Store, bounded, describe_store
from asyncrawl.sinks import directory as directory_module
from asyncrawl.testing import FaultProxy

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]


class SilentStore:
    """Accepts every call and never answers (a stalled endpoint)."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await asyncio.Event().wait()

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        await asyncio.Event().wait()
        return False

    async def get(self, key: str) -> bytes | None:
        await asyncio.Event().wait()
        return None

    async def list(self, prefix: str) -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield prefix

    async def aclose(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.looptime
async def test_a_store_that_never_answers_is_a_sink_error_naming_it() -> None:
    store = bounded(SilentStore(), deadline_at=None, call_timeout=8.0, name="S3 store s3://b/p")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(SinkError, match=r"S3 store s3://b/p did not answer within 8\.0 s"):
        await store.put("data/x", b"1", content_type="text/plain")
    assert loop.time() - start == pytest.approx(8.0)
    with pytest.raises(SinkError, match="read _meta/x"):
        await store.get("_meta/x")
    with pytest.raises(SinkError, match="list _meta/"):
        _ = [key async for key in store.list("_meta/")]
    with pytest.raises(SinkError, match="write lease"):
        await store.put_if_absent("lease", b"1", content_type="text/plain")
    with pytest.raises(SinkError, match="close"):
        await store.aclose()
    assert store.timeouts == 5


@pytest.mark.looptime
async def test_the_deadline_cuts_a_call_short_and_then_refuses_new_ones() -> None:
    loop = asyncio.get_running_loop()
    store = bounded(SilentStore(), deadline_at=loop.time() + 3.0, call_timeout=10.0, name="s")
    with pytest.raises(SinkError, match=r"within 3\.0 s"):
        await store.put("k", b"1", content_type="text/plain")
    with pytest.raises(SinkError, match="no time left"):
        await store.get("k")
    store.deadline_at = loop.time() + 1.0  # a run may move its deadline
    with pytest.raises(SinkError, match=r"within 1\.0 s"):
        await store.get("k")


async def test_a_bounded_store_behaves_like_its_store(any_store: BlobStore) -> None:
    store = bounded(any_store, deadline_at=None, call_timeout=30.0, name=describe_store(any_store))
    await store.put("a/1", b"one", content_type="text/plain")
    assert await store.get("a/1") == b"one"
    assert await store.get("a/2") is None
    assert [k async for k in store.list("a/")] == ["a/1"]
    assert store.timeouts == 0


def test_call_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="call_timeout"):
        bounded(SilentStore(), deadline_at=None, call_timeout=0, name="s")


def test_stores_are_named_by_kind_and_place(tmp_path: Path) -> None:
    assert describe_store(S3Store("bkt", "p")) == "S3 store s3://bkt/p"
    assert describe_store(DirectoryStore(tmp_path)) == f"directory store {tmp_path}"


# --- put_if_absent --------------------------------------------------------------------------


async def test_put_if_absent_writes_once_and_keeps_the_first(any_store: BlobStore) -> None:
    assert await any_store.put_if_absent("x/lease", b"first", content_type="text/plain")
    assert not await any_store.put_if_absent("x/lease", b"second", content_type="text/plain")
    assert await any_store.get("x/lease") == b"first"
    assert [k async for k in any_store.list("x/")] == ["x/lease"]


async def test_of_concurrent_put_if_absent_exactly_one_wins(any_store: BlobStore) -> None:
    won = await asyncio.gather(
        *(any_store.put_if_absent("race", b"%d" % n, content_type="text/plain") for n in range(8))
    )
    assert won.count(True) == 1
    assert await any_store.get("race") == b"%d" % won.index(True)


# --- S3 behind a stalled endpoint -----------------------------------------------------------


@pytest.fixture
async def s3_proxy(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of moto, with boto3's S3 endpoint pointing at the proxy."""
    host, _, port = moto_s3.endpoint.removeprefix("http://").partition(":")
    async with FaultProxy(host, int(port)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        yield proxy


async def test_s3_that_stops_answering_is_a_sink_error_within_the_call_timeout(
    s3_proxy: FaultProxy, moto_s3: MotoS3
) -> None:
    async with S3Store(moto_s3.bucket, "p") as s3:
        store = bounded(s3, deadline_at=None, call_timeout=1.0, name=describe_store(s3))
        await store.put("a", b"1", content_type="text/plain")  # passes through
        s3_proxy.mode = "stall"
        with pytest.raises(SinkError, match=r"S3 store s3://asyncrawl-test/p did not answer"):
            await store.put("b", b"2", content_type="text/plain")
        s3_proxy.mode = "pass"
    assert moto_s3.keys("p/") == ["p/a"]


async def test_s3_answering_500s_is_a_sink_error_after_three_attempts(
    s3_proxy: FaultProxy, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )
    s3_proxy.mode = "error500"
    async with S3Store(moto_s3.bucket, "p") as s3:
        with pytest.raises(SinkError, match="InternalError"):
            await s3.put("a", b"1", content_type="text/plain")
    assert s3_proxy.requests == 3


def test_s3_uses_short_socket_timeouts_and_the_standard_retry_mode() -> None:
    store = S3Store("bkt")
    assert (store.connect_timeout, store.read_timeout, store.max_attempts) == (2.0, 5.0, 3)
    with pytest.raises(ConfigError, match="read_timeout"):
        S3Store("bkt", read_timeout=0)


# --- a hung disk ----------------------------------------------------------------------------


async def test_a_hung_file_write_times_out_and_runs_in_a_daemon_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hung_write(path: Path, data: bytes) -> None:
        threads.append(threading.current_thread())
        release.wait(30)

    monkeypatch.setattr(directory_module, "_write_atomic", hung_write)
    store = bounded(DirectoryStore(tmp_path), deadline_at=None, call_timeout=0.2, name="d")
    with pytest.raises(SinkError, match="did not answer"):
        await store.put("a", b"1", content_type="text/plain")
    release.set()
    assert threads
    assert threads[0].daemon


def test_a_hung_file_write_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    # asyncio.run() joins the default executor's threads, and so does the interpreter at exit:
    # with asyncio.to_thread a write stuck in the kernel would hold the process forever.
    script = textwrap.dedent(
        f"""
        import asyncio, threading
        from asyncrawl.sinks import DirectoryStore, bounded
        from asyncrawl.sinks import directory

        directory._write_atomic = lambda path, data: threading.Event().wait()

        async def main():
            store = bounded(DirectoryStore({str(tmp_path)!r}), deadline_at=None,
                            call_timeout=0.2, name="d")
            try:
                await store.put("a", b"1", content_type="text/plain")
            except Exception as error:
                print(type(error).__name__, error)

        asyncio.run(main())
        print("exited")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "SinkError d did not answer" in done.stdout
    assert "exited" in done.stdout
