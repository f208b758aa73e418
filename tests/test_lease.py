"""RunLease: one holder of a run at a time, on a directory and on S3, with takeover after expiry."""

from __future__ import annotations

import asyncio

import pytest

from asyncrawl.errors import ConfigError
from asyncrawl.sinks import BlobStore, RunLease, lease_prefix

pytest_plugins = ["support.moto_s3"]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(any_store: BlobStore) -> BlobStore:
    return any_store


async def test_a_second_holder_is_refused_until_the_first_releases(store: BlobStore) -> None:
    clock = Clock()
    first = RunLease(store, "run-1", 60, clock=clock)
    second = RunLease(store, "run-1", 60, clock=clock)
    assert await first.acquire()
    assert first.held
    assert not await second.acquire()
    assert second.busy_holder == first.holder
    assert second.busy_until == clock.now + 60
    await first.release()
    assert not first.held
    assert await second.acquire()
    assert not await first.acquire()


async def test_other_runs_are_not_blocked(store: BlobStore) -> None:
    assert await RunLease(store, "run-1", 60).acquire()
    assert await RunLease(store, "run-2", 60).acquire()


async def test_an_expired_lease_is_taken_over_and_its_holder_finds_out(store: BlobStore) -> None:
    clock = Clock()
    crashed = RunLease(store, "run-1", 60, clock=clock)
    assert await crashed.acquire()
    clock.now += 59
    assert not await RunLease(store, "run-1", 60, clock=clock).acquire()
    clock.now += 2
    taker = RunLease(store, "run-1", 60, clock=clock)
    assert await taker.acquire()
    # The old holder comes back (a paused process): its renewal fails, it must stop.
    assert not await crashed.renew()
    assert not crashed.held
    await crashed.release()  # a no-op: it does not free the taker's lease
    assert not await RunLease(store, "run-1", 60, clock=clock).acquire()


async def test_a_holder_known_dead_is_taken_over_before_expiry(store: BlobStore) -> None:
    assert await RunLease(store, "run-1", 600, holder="host/4242/a").acquire()
    late = RunLease(store, "run-1", 600)
    assert not await late.acquire(stale=lambda holder: holder.startswith("host/9999/"))
    assert await late.acquire(stale=lambda holder: holder.startswith("host/4242/"))


async def test_renewal_keeps_the_lease_past_its_first_expiry(store: BlobStore) -> None:
    clock = Clock()
    holder = RunLease(store, "run-1", 60, clock=clock)
    assert await holder.acquire()
    clock.now += 50
    assert await holder.renew()
    clock.now += 50  # 100 s after the take, 50 after the renewal
    assert not await RunLease(store, "run-1", 60, clock=clock).acquire()


async def test_the_same_holder_may_take_its_own_lease_again(store: BlobStore) -> None:
    holder = RunLease(store, "run-1", 60, holder="invocation-a")
    assert await holder.acquire()
    assert await RunLease(store, "run-1", 60, holder="invocation-a").acquire()


async def test_of_many_racing_holders_exactly_one_wins(store: BlobStore) -> None:
    leases = [RunLease(store, "run-1", 60) for _ in range(6)]
    won = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert won.count(True) == 1


async def test_an_unreadable_generation_does_not_block_the_run(store: BlobStore) -> None:
    await store.put(f"{lease_prefix('run-1')}00000000.json", b"{not json", content_type="x")
    assert await RunLease(store, "run-1", 60).acquire()


def test_ttl_must_be_positive(store: BlobStore) -> None:
    with pytest.raises(ConfigError, match="ttl_s"):
        RunLease(store, "run-1", 0)
