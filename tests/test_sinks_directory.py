"""DirectoryStore, the key layout, the record encoding and open_store."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from asyncrawl.errors import ConfigError, SinkError
from asyncrawl.outcomes import Failed, NoData, Ok
from asyncrawl.results import ItemResult
from asyncrawl.sinks import (
    DirectoryStore,
    RecordSink,
    RunJournal,
    S3Store,
    decode_jsonl_gz,
    encode_jsonl_gz,
    open_store,
    partitioned_key,
    summary_key,
)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _result(key: str, outcome: Ok | NoData | Failed) -> ItemResult[str]:
    return ItemResult(item=key, key=key, outcome=outcome, attempts=1, finished_at=0.0)


# --- layout -------------------------------------------------------------------------------


def test_partitioned_key_builds_hive_partitions_under_data() -> None:
    partitions = [("year", "2023"), ("report", "11011"), ("fs", "CFS")]
    key = partitioned_key(partitions, "00126380.jsonl.gz")
    assert key == "data/year=2023/report=11011/fs=CFS/00126380.jsonl.gz"
    assert summary_key("run-1") == "_meta/runs/run-1/summary.json"


@pytest.mark.parametrize(
    ("field", "partitions", "name"),
    [
        ("year", [("year", "20/23")], "1.jsonl.gz"),
        ("name", [("year", "2023")], ".."),
        ("fs", [("fs", "")], "1.jsonl.gz"),
    ],
)
def test_partitioned_key_refuses_values_that_would_change_the_path(
    field: str, partitions: list[tuple[str, str]], name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        partitioned_key(partitions, name)
    assert info.value.field == field


# --- records ------------------------------------------------------------------------------


def test_encoding_is_deterministic_utf8_jsonl() -> None:
    rows = [{"account_nm": "유동자산", "thstrm_amount": "1,000"}, {"account_nm": "부채"}]
    first = encode_jsonl_gz(rows)
    # Same rows, same bytes: a rewrite stores an identical object.
    assert encode_jsonl_gz(rows) == first
    text = gzip.decompress(first).decode("utf-8")
    assert text.splitlines()[0] == '{"account_nm":"유동자산","thstrm_amount":"1,000"}'
    assert text.endswith("\n")
    assert decode_jsonl_gz(first) == rows


# --- DirectoryStore -----------------------------------------------------------------------


async def test_put_get_list_with_nested_keys(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "out")
    await store.put("data/year=2023/a.jsonl.gz", b"A", content_type="application/gzip")
    await store.put("data/year=2024/b.jsonl.gz", b"B", content_type="application/gzip")
    await store.put("_meta/runs/r/summary.json", b"{}", content_type="application/json")

    assert await store.get("data/year=2023/a.jsonl.gz") == b"A"
    assert await store.get("data/year=2025/missing.jsonl.gz") is None
    assert [k async for k in store.list("data/")] == [
        "data/year=2023/a.jsonl.gz",
        "data/year=2024/b.jsonl.gz",
    ]
    # A plain string prefix, as on S3: it need not end at a directory boundary.
    assert [k async for k in store.list("data/year=202")] == [
        "data/year=2023/a.jsonl.gz",
        "data/year=2024/b.jsonl.gz",
    ]
    assert len([k async for k in store.list("")]) == 3
    assert [k async for k in store.list("nothing/")] == []


async def test_put_replaces_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    await store.put("a/b.txt", b"old", content_type="text/plain")
    await store.put("a/b.txt", b"new", content_type="text/plain")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"new"
    assert _files(tmp_path) == ["a/b.txt"]


async def test_a_write_that_fails_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryStore(tmp_path)
    await store.put("k.bin", b"complete old version", content_type="application/octet-stream")

    def broken_fsync(fd: int) -> None:
        # The bytes are in the temporary file by now: this is a crash mid-write.
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(SinkError, match=r"k\.bin"):
        await store.put("k.bin", b"new but never completed", content_type="x")
    with pytest.raises(SinkError, match=r"fresh\.bin"):
        await store.put("fresh.bin", b"never completed", content_type="x")

    # The old object is intact, the new key does not exist, and no temporary file is left.
    assert (tmp_path / "k.bin").read_bytes() == b"complete old version"
    assert _files(tmp_path) == ["k.bin"]


async def test_list_skips_temporary_files_left_by_a_killed_process(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    await store.put("data/x.jsonl.gz", b"x", content_type="application/gzip")
    (tmp_path / "data" / ".y.jsonl.gz.0123456789ab.asyncrawl-tmp").write_bytes(b"half")
    assert [k async for k in store.list("data/")] == ["data/x.jsonl.gz"]


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a//b", "a/./b", "", "a/", "a\\b"])
async def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = DirectoryStore(tmp_path / "root")
    with pytest.raises(ConfigError):
        await store.put(key, b"x", content_type="text/plain")
    with pytest.raises(ConfigError):
        await store.get(key)
    assert not (tmp_path / "escape").exists()


async def test_unwritable_target_is_a_sink_error_naming_the_path(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    await store.put("taken", b"a file", content_type="text/plain")
    # "taken" is a file, so it cannot also be a directory.
    with pytest.raises(SinkError, match="taken"):
        await store.put("taken/child", b"x", content_type="text/plain")


# --- RecordSink on a directory ------------------------------------------------------------


async def test_record_sink_writes_the_same_key_once_however_often(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    sink = RecordSink(store, data_key=lambda r: f"data/{r.key}.jsonl.gz", journal=None)
    rows = [{"corp_code": "00126380", "account_nm": "자산총계"}]
    await sink.write(_result("item-1", Ok(payload=rows)))
    await sink.write(_result("item-1", Ok(payload=rows)))
    await sink.write(_result("item-2", NoData()))
    await sink.write(_result("item-3", Failed(reason="bad input")))
    await sink.aclose()
    assert _files(tmp_path) == ["data/item-1.jsonl.gz"]
    assert decode_jsonl_gz((tmp_path / "data/item-1.jsonl.gz").read_bytes()) == rows


async def test_record_sink_does_not_journal_an_item_whose_write_failed(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"a file where the data directory should be")
    store = DirectoryStore(tmp_path)
    journal = RunJournal(store, "r1")
    sink = RecordSink(store, data_key=lambda r: f"data/{r.key}.jsonl.gz", journal=journal)
    with pytest.raises(SinkError):
        await sink.write(_result("item-1", Ok(payload=[{"a": "1"}])))
    assert await journal.load() == {}


async def test_record_sink_refuses_a_payload_that_is_not_rows(tmp_path: Path) -> None:
    sink = RecordSink(DirectoryStore(tmp_path), data_key=lambda r: "data/x", journal=None)
    with pytest.raises(SinkError, match="item-1"):
        await sink.write(_result("item-1", Ok(payload=[{"when": object()}])))
    assert _files(tmp_path) == []


# --- open_store ---------------------------------------------------------------------------


async def test_open_store_picks_the_store_from_the_uri(tmp_path: Path) -> None:
    async with open_store(str(tmp_path / "out")) as store:
        assert isinstance(store, DirectoryStore)
        await store.put("a", b"1", content_type="text/plain")
    assert (tmp_path / "out" / "a").read_bytes() == b"1"

    s3 = open_store("s3://my-bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("my-bucket", "some/prefix")
    assert isinstance(open_store("s3://my-bucket"), S3Store)


@pytest.mark.parametrize(
    "uri", ["s3://", "s3:/bucket/x", "s3://Bad_Bucket/x", "s3://bucket/a//b", "gs://b/x"]
)
def test_open_store_refuses_malformed_uris_naming_the_parameter(uri: str) -> None:
    # The library names its parameter; the command line maps it to --out (see test_cli).
    with pytest.raises(ConfigError) as info:
        open_store(uri)
    assert info.value.field == "uri"
    assert "s3://BUCKET" in str(info.value)


async def test_a_root_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file") as info:
        async with DirectoryStore(target):
            pass
    assert info.value.field == "root"


async def test_a_root_under_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create") as info:
        async with DirectoryStore(tmp_path / "file" / "out"):
            pass
    assert info.value.field == "root"
