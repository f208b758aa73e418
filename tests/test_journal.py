"""The run journal, summary and state under _meta/runs/{run_id}/, on a directory and on S3."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from asyncrawl.errors import ConfigError, SinkError
from asyncrawl.sinks import (
    BlobStore,
    DirectoryStore,
    RunJournal,
    new_run_id,
    read_run_state,
    read_summary,
    validate_run_id,
    write_run_state,
    write_summary,
)

if TYPE_CHECKING:
    pass

pytest_plugins = ["support.moto_s3"]

PART = re.compile(r"_meta/runs/run-1/journal/part-\d{6}-[0-9a-f]+\.jsonl")


@pytest.fixture
def store(any_store: BlobStore) -> BlobStore:
    """An open store of each kind (see support.moto_s3.any_store)."""
    return any_store


class FlakyStore:
    """Wraps a store; puts fail while ``failing`` is set (an S3 outage, a full disk)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.failing = False
        self.puts: list[str] = []

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        if self.failing:
            raise SinkError(f"could not write {key}: simulated outage")
        self.puts.append(key)
        await self.inner.put(key, data, content_type=content_type)

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        if self.failing:
            raise SinkError(f"could not write {key}: simulated outage")
        return await self.inner.put_if_absent(key, data, content_type=content_type)

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self.inner.list(prefix)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _parts(store: BlobStore) -> list[str]:
    return [k async for k in store.list("_meta/runs/run-1/journal/")]


# --- journal ------------------------------------------------------------------------------


async def test_entries_are_written_in_parts_and_reload_as_one_map(store: BlobStore) -> None:
    journal = RunJournal(store, "run-1", flush_every=3)
    for i in range(7):
        await journal.record(f"item-{i}", "ok" if i % 2 else "no_data")
    # Two full parts so far; the seventh entry waits for the next flush.
    assert len(await _parts(store)) == 2
    assert journal.pending == 1
    await journal.aclose()

    parts = await _parts(store)
    assert len(parts) == 3
    assert all(PART.fullmatch(p) for p in parts)
    first = await store.get(parts[0])
    assert first is not None
    assert [orjson.loads(line) for line in first.splitlines()] == [
        {"key": "item-0", "status": "no_data"},
        {"key": "item-1", "status": "ok"},
        {"key": "item-2", "status": "no_data"},
    ]
    expected = {f"item-{i}": "ok" if i % 2 else "no_data" for i in range(7)}
    assert await RunJournal(store, "run-1").load() == expected


async def test_a_resumed_run_adds_parts_after_the_existing_ones(store: BlobStore) -> None:
    first = RunJournal(store, "run-1")
    await first.record("a", "ok")
    await first.aclose()

    resumed = RunJournal(store, "run-1")
    assert await resumed.load() == {"a": "ok"}
    await resumed.record("b", "no_data")
    await resumed.flush()

    names = [p.rsplit("/", 1)[1] for p in await _parts(store)]
    assert [n.split("-")[1] for n in names] == ["000000", "000001"]
    assert await RunJournal(store, "run-1").load() == {"a": "ok", "b": "no_data"}


async def test_a_part_written_twice_and_later_statuses_are_tolerated(store: BlobStore) -> None:
    line = b'{"key":"a","status":"no_data"}\n'
    await store.put("_meta/runs/run-1/journal/part-000000-aaaa.jsonl", line, content_type="x")
    await store.put("_meta/runs/run-1/journal/part-000000-bbbb.jsonl", line, content_type="x")
    await store.put(
        "_meta/runs/run-1/journal/part-000001-cccc.jsonl",
        b'{"key":"a","status":"ok"}\n{"key":"b","status":"ok"}\n',
        content_type="x",
    )
    # A stray object beside the parts is not a part.
    await store.put("_meta/runs/run-1/journal/notes.txt", b"not json", content_type="x")
    assert await RunJournal(store, "run-1").load() == {"a": "ok", "b": "ok"}


async def test_runs_do_not_see_each_others_entries(store: BlobStore) -> None:
    one = RunJournal(store, "run-1")
    await one.record("a", "ok")
    await one.aclose()
    assert await RunJournal(store, "run-10").load() == {}


async def test_no_entry_is_lost_when_a_flush_fails(tmp_path: Path) -> None:
    flaky = FlakyStore(DirectoryStore(tmp_path))
    journal = RunJournal(flaky, "run-1", flush_every=2, flush_interval=3600)
    flaky.failing = True
    await journal.record("a", "ok")
    # The automatic flush fails: logged, entries kept, the caller's write is not failed.
    await journal.record("b", "no_data")
    assert journal.pending == 2
    with pytest.raises(SinkError, match="simulated outage"):
        await journal.flush()
    with pytest.raises(SinkError):
        await journal.aclose()
    assert journal.pending == 2

    flaky.failing = False
    await journal.record("c", "ok")
    await journal.aclose()
    assert journal.pending == 0
    assert await RunJournal(flaky, "run-1").load() == {"a": "ok", "b": "no_data", "c": "ok"}


async def test_an_empty_flush_writes_nothing(tmp_path: Path) -> None:
    flaky = FlakyStore(DirectoryStore(tmp_path))
    journal = RunJournal(flaky, "run-1")
    await journal.flush()
    await journal.aclose()
    assert flaky.puts == []


async def test_unflushed_entries_count_as_finished_for_the_same_journal(tmp_path: Path) -> None:
    journal = RunJournal(DirectoryStore(tmp_path), "run-1")
    await journal.record("a", "ok")
    assert await journal.load() == {"a": "ok"}


async def test_an_unknown_status_is_refused(tmp_path: Path) -> None:
    journal = RunJournal(DirectoryStore(tmp_path), "run-1")
    bad: Any = "failed"
    with pytest.raises(ValueError, match="status"):
        await journal.record("a", bad)
    with pytest.raises(ConfigError) as info:
        RunJournal(DirectoryStore(tmp_path), "run-1", flush_every=0)
    assert info.value.field == "flush_every"


# --- run ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["run-1", "2024.01.31_x", "A" * 64, "-"])
def test_valid_run_ids(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["", "A" * 65, "a/b", "..", ".", "run 1", "ünï", "a\nb"])
def test_invalid_run_ids_name_the_flag_and_the_fix(run_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_run_id(run_id)
    assert info.value.field == "--run-id"
    assert "[A-Za-z0-9._-]" in str(info.value) or "letters, digits" in str(info.value)
    with pytest.raises(ConfigError):
        RunJournal(DirectoryStore("unused"), run_id)


def test_new_run_ids_are_valid_distinct_and_sort_by_time() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(validate_run_id(i) == i for i in ids)
    assert len(set(ids)) == 50
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", ids[0])


# --- summary and state --------------------------------------------------------------------


async def test_summary_is_written_as_indented_json_and_read_back(store: BlobStore) -> None:
    summary = {
        "run_id": "run-1",
        "planned": 3,
        "ok": 1,
        "no_data": 1,
        "failed": [{"item": "x", "status": "http_404", "reason": "HTTP 404"}],
        "remaining": [],
        "elapsed_s": 1.5,
    }
    assert await read_summary(store, "run-1") is None
    key = await write_summary(store, "run-1", summary)
    assert key == "_meta/runs/run-1/summary.json"
    raw = await store.get(key)
    assert raw is not None
    assert raw.startswith(b'{\n  "run_id": "run-1"')
    assert await read_summary(store, "run-1") == summary
    # Run metadata stays out of data/, where the tables point.
    assert [k async for k in store.list("data/")] == []


async def test_large_run_state_round_trips(store: BlobStore) -> None:
    blob = bytes(range(256)) * 200  # over 32 KB: too big for a continuation token
    assert await read_run_state(store, "run-1", "continuation") is None
    key = await write_run_state(store, "run-1", "continuation", blob)
    assert key == "_meta/runs/run-1/state/continuation"
    assert await read_run_state(store, "run-1", "continuation") == blob
    with pytest.raises(ConfigError):
        await write_run_state(store, "run-1", "../escape", b"x")


async def test_damaged_journal_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    async with DirectoryStore(tmp_path) as store:
        journal = RunJournal(store, "run-1")
        await journal.record("a", "ok")
        await journal.flush()
        part = "_meta/runs/run-1/journal/part-000099-deadbeef.jsonl"
        damaged = b'{"key": "b", "status": "no_data"}\nnot json\n{"key": "c", "status": "odd"}\n'
        await store.put(part, damaged, content_type="application/x-ndjson")
        assert await RunJournal(store, "run-1").load() == {"a": "ok", "b": "no_data"}


async def _until_parts(store: BlobStore, count: int) -> None:
    for _ in range(500):  # 10 s at most
        if len(await _parts(store)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} journal parts after 10 s")


async def test_entries_become_durable_within_the_flush_interval(tmp_path: Path) -> None:
    # A crash (kill -9) forgets at most the last interval's entries, however slow the run:
    # the part is written by a timer, with no further record() to trigger it.
    store = DirectoryStore(tmp_path)
    journal = RunJournal(store, "run-1", flush_every=50, flush_interval=0.2)
    await journal.record("a", "ok")
    await journal.record("b", "no_data")
    assert await _parts(store) == []
    await _until_parts(store, 1)
    assert await RunJournal(store, "run-1").load() == {"a": "ok", "b": "no_data"}
    await journal.record("c", "ok")
    await _until_parts(store, 2)
    assert await RunJournal(store, "run-1").load() == {"a": "ok", "b": "no_data", "c": "ok"}
    await journal.aclose()
    assert len(await _parts(store)) == 2  # nothing left pending: aclose writes no empty part


async def test_entries_become_durable_after_flush_every_entries(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    journal = RunJournal(store, "run-1", flush_every=3, flush_interval=3600)
    for key in "abc":
        await journal.record(key, "ok")
    assert journal.pending == 0
    assert len(await _parts(store)) == 1
    await journal.aclose()


async def test_many_parts_load_whole_and_in_order(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    journal = RunJournal(store, "run-1", flush_every=1)
    for n in range(40):
        await journal.record(f"k{n % 7}", "ok" if n % 2 else "no_data")
    await journal.aclose()
    expected = {f"k{n % 7}": "ok" if n % 2 else "no_data" for n in range(40)}
    assert await RunJournal(store, "run-1", load_concurrency=8).load() == expected


# --- checkpoints: a long run's parts read once ---------------------------------------------------


class CountingStore(FlakyStore):
    """Also counts gets, by object kind (part or checkpoint)."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner)
        self.gets: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.gets.append(key.rsplit("/", 1)[1].split("-")[0])
        return await self.inner.get(key)


async def _journal_of(store: BlobStore, entries: int) -> dict[str, str]:
    """``entries`` finished items, one part each, some finishing twice with a new status."""
    journal = RunJournal(store, "run-1", flush_every=1)
    expected: dict[str, str] = {}
    for n in range(entries):
        key, status = f"k{n % (entries - 3)}", "ok" if n % 3 else "no_data"
        await journal.record(key, status)  # type: ignore[arg-type]
        expected[key] = status
    await journal.aclose()
    return expected


async def test_a_load_of_many_parts_leaves_a_checkpoint_the_next_load_reads_instead(
    store: BlobStore,
) -> None:
    expected = await _journal_of(store, 12)
    counting = CountingStore(store)
    first = RunJournal(counting, "run-1", compact_after=10)
    assert await first.load() == expected
    assert counting.gets.count("part") == 12
    checkpoints = [name for name in await _parts(store) if "/checkpoint-" in name]
    assert len(checkpoints) == 1
    # The resumed run goes on after the checkpoint's number.
    await first.record("late", "ok")
    await first.aclose()
    expected["late"] = "ok"

    counting.gets.clear()
    assert await RunJournal(counting, "run-1", compact_after=10).load() == expected
    assert sorted(counting.gets) == ["checkpoint", "part"]  # not the 12 parts again


async def test_parts_after_a_checkpoint_win_over_it(store: BlobStore) -> None:
    await _journal_of(store, 12)
    assert await RunJournal(store, "run-1", compact_after=2).load()
    later = RunJournal(store, "run-1")
    await later.load()
    await later.record("k0", "ok")  # k0 was no_data in the checkpoint
    await later.aclose()
    loaded = await RunJournal(store, "run-1").load()
    assert loaded["k0"] == "ok"


async def test_a_checkpoint_that_cannot_be_written_costs_only_a_reread(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    expected = await _journal_of(store, 12)
    flaky = FlakyStore(store)
    flaky.failing = True
    assert await RunJournal(flaky, "run-1", compact_after=4).load() == expected
    assert not [name for name in await _parts(store) if "/checkpoint-" in name]
    assert await RunJournal(store, "run-1").load() == expected


async def test_a_vanished_checkpoint_falls_back_to_every_part(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    expected = await _journal_of(store, 12)
    await RunJournal(store, "run-1", compact_after=4).load()
    (checkpoint,) = [name for name in await _parts(store) if "/checkpoint-" in name]

    class Vanishing(FlakyStore):
        async def get(self, key: str) -> bytes | None:
            return None if key == checkpoint else await self.inner.get(key)

    assert await RunJournal(Vanishing(store), "run-1").load() == expected


def test_compact_after_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compact_after"):
        RunJournal(DirectoryStore(tmp_path), "run-1", compact_after=1)


async def test_a_slow_writer_s_part_stored_after_a_checkpoint_is_still_read(
    tmp_path: Path,
) -> None:
    # Two writers of one run id (a retried Lambda): the slow one's parts have old numbers.
    store = DirectoryStore(tmp_path)
    fast = RunJournal(store, "run-1", flush_every=1)
    slow = RunJournal(store, "run-1", flush_every=1)
    await fast.load()
    await slow.load()
    for n in range(12):
        await fast.record(f"fast-{n}", "ok")
    await RunJournal(store, "run-1", compact_after=10).load()  # checkpoint of parts 0..11
    await slow.record("slow", "ok")  # part-000000-..., after the checkpoint
    loaded = await RunJournal(store, "run-1").load()
    assert "slow" in loaded
    assert len(loaded) == 13


async def test_an_entry_stored_while_its_own_journal_loads_is_kept(tmp_path: Path) -> None:
    inner = DirectoryStore(tmp_path)
    writer = RunJournal(inner, "run-1", flush_every=1)
    for n in range(3):
        await writer.record(f"old-{n}", "ok")
    gate = asyncio.Event()

    class SlowParts(FlakyStore):
        async def put(self, key: str, data: bytes, *, content_type: str) -> None:
            if "/part-" in key:
                await gate.wait()
            await self.inner.put(key, data, content_type=content_type)

    journal = RunJournal(SlowParts(inner), "run-1", flush_every=1000, compact_after=2)
    await journal.record("new", "ok")
    flush = asyncio.create_task(journal.flush())  # its part is stored after the listing
    await asyncio.sleep(0)
    load = asyncio.create_task(journal.load())
    await asyncio.sleep(0.05)
    gate.set()
    loaded = await load
    await flush
    assert "new" in loaded
    assert "new" in await RunJournal(inner, "run-1").load()
