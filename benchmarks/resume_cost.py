"""What a crash-consistent resume costs: a journal flushed every second vs. listing the store.

After ``kill -9`` a resume must not fetch again what was stored. Two ways to know what was:

1. the journal made durable in small time-bounded steps (asyncrawl's choice: a part every
   second or 50 entries): more, smaller parts to write during the run and to read on resume;
2. the resume listing the data objects already in the store (ListObjectsV2, 1000 keys a page).

This script measures, on moto's S3 server on loopback and on a local directory, for a run of
``--items`` finished items: loading a journal written in parts of 15 entries (one second at
OpenDART's 900/min), loading one written in parts of 200 (the old flush), and listing the
items' data objects; and loading the 15-entry journal a second time, when the first load has
left a checkpoint of its parts. Run: ``python benchmarks/resume_cost.py [--items 3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

from asyncrawl.sinks import BlobStore, DirectoryStore, RunJournal, S3Store


async def _fill(store: BlobStore, items: int, per_part: int, run_id: str) -> None:
    journal = RunJournal(store, run_id, flush_every=per_part, flush_interval=3600)
    for n in range(items):
        await journal.record(f"item-{n:06d}", "ok")
    await journal.aclose()


async def _put_data(store: BlobStore, items: int) -> None:
    slots = asyncio.Semaphore(16)

    async def put(n: int) -> None:
        async with slots:
            await store.put(f"data/p=1/item-{n:06d}.jsonl.gz", b"x", content_type="x")

    await asyncio.gather(*(put(n) for n in range(items)))


async def _timed(label: str, call: Callable[[], Awaitable[int]]) -> None:
    start = time.perf_counter()
    count = await call()
    print(f"  {label}: {time.perf_counter() - start:.3f} s ({count} items)")


async def _measure(store: BlobStore, items: int) -> None:
    await _fill(store, items, 15, "small-parts")
    await _fill(store, items, 200, "large-parts")
    await _put_data(store, items)

    async def load(run_id: str) -> int:
        return len(await RunJournal(store, run_id).load())

    async def listing() -> int:
        return len([key async for key in store.list("data/")])

    await _timed(f"journal in parts of 15 ({-(-items // 15)} parts)", lambda: load("small-parts"))
    # That load wrote a checkpoint of the parts it read (RunJournal.compact_after): the next
    # resume of the same run reads it instead.
    await _timed("the same journal, loaded again (its checkpoint)", lambda: load("small-parts"))
    await _timed(f"journal in parts of 200 ({-(-items // 200)} parts)", lambda: load("large-parts"))
    await _timed("listing the data objects", listing)


async def main(items: int) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL_S3=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        import boto3

        boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="bench")
        print(f"moto S3, {items} finished items:")
        async with S3Store("bench", "out", max_concurrency=16) as s3:
            await _measure(s3, items)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as root:
        print(f"directory, {items} finished items:")
        await _measure(DirectoryStore(root), items)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    asyncio.run(main(parser.parse_args().items))
