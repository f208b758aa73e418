"""S3Store against moto's server on loopback, and the sink contract on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import botocore.retries.standard
import pytest
from aiohttp import web

from asyncrawl.errors import ConfigError, SinkError
from asyncrawl.outcomes import Failed, NoData, Ok
from asyncrawl.results import ItemResult
from asyncrawl.sinks import (
    BlobStore,
    RecordSink,
    RunJournal,
    S3Store,
    decode_jsonl_gz,
    partitioned_key,
)

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

# Registering the module as a plugin (rather than importing the fixture) keeps ruff's F811
# quiet and lets pytest rewrite it; see tests/support/moto_s3.py.
pytest_plugins = ["support.moto_s3"]

ROWS = [
    {"corp_code": "00126380", "account_nm": "자산총계", "thstrm_amount": "1,000"},
    {"corp_code": "00126380", "account_nm": "부채총계", "thstrm_amount": "400"},
]


def _result(key: str, outcome: Ok | NoData | Failed) -> ItemResult[dict[str, str]]:
    item = {"year": "2023", "report": "11011", "fs": "CFS", "corp_code": key}
    return ItemResult(item=item, key=key, outcome=outcome, attempts=1, finished_at=0.0)


def _data_key(result: ItemResult[dict[str, str]]) -> str:
    item = result.item
    partitions = [("year", item["year"]), ("report", item["report"]), ("fs", item["fs"])]
    return partitioned_key(partitions, f"{item['corp_code']}.jsonl.gz")


@pytest.fixture
def store(any_store: BlobStore) -> BlobStore:
    """An open store of each kind (see support.moto_s3.any_store)."""
    return any_store


# --- the same behaviour on both stores ----------------------------------------------------


async def test_put_get_list_round_trip(store: BlobStore) -> None:
    await store.put("data/b.txt", b"B", content_type="text/plain")
    await store.put("data/a.txt", b"A", content_type="text/plain")
    await store.put("_meta/x.json", b"{}", content_type="application/json")
    assert await store.get("data/a.txt") == b"A"
    assert await store.get("data/missing.txt") is None
    assert [k async for k in store.list("data/")] == ["data/a.txt", "data/b.txt"]
    assert [k async for k in store.list("")] == ["_meta/x.json", "data/a.txt", "data/b.txt"]


async def test_unsafe_keys_are_refused_on_every_store(store: BlobStore) -> None:
    for key in ("../x", "/x", "a//b"):
        with pytest.raises(ConfigError):
            await store.put(key, b"x", content_type="text/plain")


async def test_record_sink_layout_idempotency_and_journal(store: BlobStore) -> None:
    journal = RunJournal(store, "run-1", flush_every=2)
    sink = RecordSink(store, data_key=_data_key, journal=journal)
    await sink.write(_result("00126380", Ok(payload=ROWS)))
    await sink.write(_result("00126380", Ok(payload=ROWS)))
    await sink.write(_result("00164779", NoData()))
    await sink.write(_result("00258801", Failed(reason="HTTP 404")))
    await sink.aclose()

    data = [k async for k in store.list("data/")]
    assert data == ["data/year=2023/report=11011/fs=CFS/00126380.jsonl.gz"]
    stored = await store.get(data[0])
    assert stored is not None
    assert decode_jsonl_gz(stored) == ROWS
    # A fresh journal object (a re-run with the same id) sees what finished, and only that.
    assert await RunJournal(store, "run-1").load() == {"00126380": "ok", "00164779": "no_data"}


# --- S3 specifics -------------------------------------------------------------------------


async def test_objects_land_under_the_prefix_with_their_content_type(moto_s3: MotoS3) -> None:
    async with S3Store(moto_s3.bucket, "/team/dart/") as s3:
        sink = RecordSink(s3, data_key=_data_key, journal=None)
        await sink.write(_result("00126380", Ok(payload=ROWS)))
    key = "team/dart/data/year=2023/report=11011/fs=CFS/00126380.jsonl.gz"
    assert moto_s3.keys() == [key]
    head = moto_s3.client().head_object(Bucket=moto_s3.bucket, Key=key)
    assert head["ContentType"] == "application/gzip"


async def test_rewriting_an_item_replaces_the_same_key(moto_s3: MotoS3) -> None:
    moto_s3.enable_versioning()
    key = "data/year=2023/report=11011/fs=CFS/00126380.jsonl.gz"
    async with S3Store(moto_s3.bucket) as s3:
        sink = RecordSink(s3, data_key=_data_key, journal=None)
        await sink.write(_result("00126380", Ok(payload=ROWS)))
        assert len(moto_s3.versions(key)) == 1
        await sink.write(_result("00126380", Ok(payload=ROWS)))
    versions = moto_s3.versions(key)
    # Two writes: two versions of one key (never a second key), with identical bytes.
    assert len(versions) == 2
    assert versions[0]["ETag"] == versions[1]["ETag"]
    assert moto_s3.keys() == [key]


async def test_a_missing_bucket_is_a_sink_error_naming_bucket_and_key(moto_s3: MotoS3) -> None:
    async with S3Store("no-such-bucket", "p") as s3:
        with pytest.raises(SinkError) as info:
            await s3.put("data/x.jsonl.gz", b"x", content_type="application/gzip")
        with pytest.raises(SinkError, match="no-such-bucket"):
            await s3.get("data/x.jsonl.gz")
        with pytest.raises(SinkError, match="no-such-bucket"):
            _ = [k async for k in s3.list("data/")]
    message = str(info.value)
    assert "s3://no-such-bucket/p/data/x.jsonl.gz" in message
    assert "NoSuchBucket" in message
    assert "testing" not in message  # the (fake) credentials never appear


async def test_a_failed_upload_leaves_the_item_unjournalled(moto_s3: MotoS3) -> None:
    async with S3Store("no-such-bucket") as s3:
        journal = RunJournal(s3, "r1")
        sink = RecordSink(s3, data_key=_data_key, journal=journal)
        with pytest.raises(SinkError):
            await sink.write(_result("00126380", Ok(payload=ROWS)))
        assert journal.pending == 0


async def test_concurrent_puts_are_bounded_and_all_land(moto_s3: MotoS3) -> None:
    async with S3Store(moto_s3.bucket, max_concurrency=3) as s3:
        client = s3._client
        real_put = client.put_object
        in_flight = peak = 0

        async def counting_put(**kwargs: Any) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await real_put(**kwargs)
            finally:
                in_flight -= 1

        client.put_object = counting_put
        await asyncio.gather(
            *(s3.put(f"k/{i:03d}", b"%d" % i, content_type="text/plain") for i in range(40))
        )
        assert [k async for k in s3.list("k/")] == [f"k/{i:03d}" for i in range(40)]
    assert peak == 3


@pytest.fixture
async def flaky_s3(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[int]]:
    """A loopback S3 stand-in answering PUTs with the statuses in the yielded list, then 200.

    boto3's environment points at it; botocore's back-off is zeroed so retries do not wait.
    """
    statuses: list[int] = []

    async def put(request: web.Request) -> web.Response:
        await request.read()
        if statuses:
            status = statuses.pop(0)
            body = f"<Error><Code>SlowDown</Code><Message>status {status}</Message></Error>"
            return web.Response(status=status, text=body, content_type="application/xml")
        return web.Response(status=200, headers={"ETag": '"0123456789abcdef"'})

    app = web.Application()
    app.router.add_put("/{tail:.*}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )
    try:
        yield statuses
    finally:
        await runner.cleanup()


async def test_a_throttled_or_failing_put_is_retried(flaky_s3: list[int]) -> None:
    flaky_s3.extend([503, 500])
    async with S3Store("bucket", "p") as s3:
        await s3.put("data/x.jsonl.gz", b"x", content_type="application/gzip")
    assert flaky_s3 == []  # both errors were answered, then the third attempt succeeded


async def test_a_put_that_keeps_failing_is_a_sink_error_after_the_retries(
    flaky_s3: list[int],
) -> None:
    flaky_s3.extend([500] * 10)
    async with S3Store("bucket", "p") as s3:
        with pytest.raises(SinkError, match=r"s3://bucket/p/data/x\.jsonl\.gz.*HTTP 500"):
            await s3.put("data/x.jsonl.gz", b"x", content_type="application/gzip")
    # Three attempts in all (botocore's standard mode, chosen in sinks.s3), then the error.
    assert len(flaky_s3) == 7


def test_the_store_can_be_reopened_in_a_new_event_loop(moto_s3: MotoS3) -> None:
    # A warm Lambda container: each invocation runs its own loop; the client must not leak.
    s3 = S3Store(moto_s3.bucket)

    async def invocation(n: int) -> list[str]:
        async with s3:
            await s3.put(f"inv/{n}", b"x", content_type="text/plain")
            return [k async for k in s3.list("inv/")]

    assert asyncio.run(invocation(1)) == ["inv/1"]
    assert asyncio.run(invocation(2)) == ["inv/1", "inv/2"]


async def test_using_a_closed_store_is_a_programming_error(moto_s3: MotoS3) -> None:
    s3 = S3Store(moto_s3.bucket)
    with pytest.raises(RuntimeError, match="not open"):
        await s3.put("a", b"x", content_type="text/plain")
    async with s3:
        pass
    await s3.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="not open"):
        await s3.get("a")


@pytest.mark.parametrize(
    ("args", "field"),
    [(("Not_A_Bucket",), "bucket"), (("bucket", "a//b"), "prefix"), (("bucket", "../x"), "prefix")],
)
def test_bad_configuration_names_the_field(args: tuple[str, ...], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        S3Store(*args)
    assert info.value.field == field


def test_max_concurrency_must_be_positive() -> None:
    with pytest.raises(ConfigError) as info:
        S3Store("bucket", max_concurrency=0)
    assert info.value.field == "max_concurrency"
