"""Plain-aiohttp scripts for the throughput part: ``python -m benchmarks.plain MODE SPEC``.

- ``fetch``: fetch and parse every item (``orjson.loads``), nothing else: the speed ceiling.
- ``output``: what a careful plain script does to store the same output asyncrawl stores:
  fetch, parse, add the five documented fields to each row, gzip JSON Lines at the same level,
  write to a temporary name, fsync, rename (on a worker thread), and append the item to a
  journal flushed and fsynced every 200 items. The CLI's client CPU per item is judged
  against this one.

Both print one ``RESULT {...}`` line like :mod:`benchmarks.contenders`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .contenders import KEY

_LEVEL = 6  # the same gzip level as asyncrawl.sinks.records.GZIP_LEVEL


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _open_journal(out: Path) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    return (out / "journal.jsonl").open("ab")


async def main_async(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Crawl ``spec['items']`` at ``spec['concurrency']``; count what came back."""
    gate = asyncio.Semaphore(int(spec["concurrency"]))
    out = Path(spec["out"])
    journal = _open_journal(out)
    pending = 0
    ok = 0
    stamp = "2024-05-01T09:30:00.000Z"

    async def one(session: aiohttp.ClientSession, item: list[str]) -> None:
        nonlocal ok, pending
        corp_code, year, reprt_code, fs_div = item
        params = {
            "crtfc_key": KEY,
            "corp_code": corp_code,
            "bsns_year": year,
            "reprt_code": reprt_code,
            "fs_div": fs_div,
        }
        async with gate:
            async with session.get(spec["base_url"] + "fnlttSinglAcntAll.json", params=params) as r:
                body = await r.read()
            document = orjson.loads(body)
            if mode == "fetch":
                ok += 1
                return
            rows = document["list"]
            extra = {"stock_code": "", "corp_name": "", "fs_div": fs_div, "crawled_at": stamp}
            for row in rows:
                row.update(extra)
            data = gzip.compress(
                b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows),
                compresslevel=_LEVEL,
                mtime=0,
            )
            name = out / f"year={year}" / f"report={reprt_code}" / f"fs={fs_div}"
            await asyncio.to_thread(_write, name / f"{corp_code}.jsonl.gz", data)
            journal.write(orjson.dumps({"key": "/".join(item), "status": "ok"}) + b"\n")
            pending += 1
            if pending >= 200:
                pending = 0
                journal.flush()
                await asyncio.to_thread(os.fsync, journal.fileno())
            ok += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, item) for item in spec["items"]))
    journal.flush()
    os.fsync(journal.fileno())
    journal.close()
    return {"elapsed": time.perf_counter() - started, "ok": ok, "no_data": 0, "failed": 0}


def main(argv: list[str]) -> int:
    """``MODE SPEC``: run and print the result line."""
    mode, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = asyncio.run(main_async(mode, spec))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
