"""The examples/ crawlers run with one command each, against the fault server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from asyncrawl.testing import FaultServer, HtmlSite

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _summary(output: str) -> dict[str, Any]:
    """The run summary: the JSON object the example prints last."""
    start = output.index("\n{\n") + 1
    value = json.loads(output[start:])
    assert isinstance(value, dict)
    return value


def _run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_paginated_api_example_collects_every_record() -> None:
    done = _run_example("paginated_api.py")
    assert done.returncode == 0, done.stderr
    assert "records: 120" in done.stdout
    summary = _summary(done.stdout)
    assert summary["planned"] == summary["ok"] == 21  # 3 collections of 7 pages
    assert summary["remaining"] == []
    assert summary["status_counts"]["http_503"] > 0
    assert summary["status_counts"]["http_429"] > 0


def test_site_crawl_example_on_its_own_sites() -> None:
    done = _run_example("site_crawl.py")
    assert done.returncode == 0, done.stderr
    summary = _summary(done.stdout)
    assert summary["ok"] > 0
    assert summary["skipped"] > 0  # the depth limit (2) left the deepest pages out
    assert summary["duplicates"] > 0
    assert summary["status_counts"]["body_too_large"] == 2  # one big page per site
    assert summary["status_counts"]["http_301"] == 2
    assert "skipped by robots.txt: 2" in done.stdout
    assert "/site/private/secret" in done.stdout


async def test_site_crawl_example_with_a_url_keeps_the_limits() -> None:
    site = HtmlSite(pages=15, delay=0.01)
    async with FaultServer(handler=site) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "site_crawl.py"),
            "--url",
            f"{server.url}/site/",
            "--depth",
            "1",
            "--per-host",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, stderr.decode()
    summary = _summary(stdout.decode())
    assert site.most_at_once == 1
    assert "/site/p/3" not in site.served  # depth 2
    assert summary["skipped"] > 0
    assert summary["status_counts"]["ok"] == summary["ok"]
