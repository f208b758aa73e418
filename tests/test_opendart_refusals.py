"""OpenDART refusing a run: maintenance (800), the daily quota (020), a wrong base URL (404).

Run as a user runs it: ``python -m asyncrawl crawl`` against the stand-in on 127.0.0.1. The run
stops soon with exit 3, names the reason, leaves every unfinished item remaining, and the same
``--run-id`` finishes them once OpenDART answers again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asyncrawl.testing import FaultPlan
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn
from support.cli_process import run_cli

KEY = "Refusal0Test1Key2For3Stand4In5abcdefghij"
assert len(KEY) == 40


async def asyncrawl(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args, key=KEY)


def companies_file(tmp_path: Path) -> Path:
    path = tmp_path / "companies.csv"
    rows = [f"{c['corp_code']},{c['stock_code']},{c['corp_name']}" for c in DEMO_COMPANIES]
    path.write_text("corp_code,stock_code,corp_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def crawl(base_url: str, companies: Path, out: Path, run_id: str) -> list[str]:
    return [
        "crawl",
        "--kind=quarter",
        f"--companies={companies}",
        "--years",
        "2022",
        "2023",
        f"--base-url={base_url}",
        f"--out={out}",
        f"--run-id={run_id}",
        "--concurrency=8",
    ]


def summary(out: Path, run_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (out / "_meta" / "runs" / run_id / "summary.json").read_text(encoding="utf-8")
    )
    # Items an earlier part of the run finished are the already_done bucket of a resumed run.
    assert loaded["planned"] == (
        loaded["ok"]
        + loaded["no_data"]
        + len(loaded["failed"])
        + len(loaded["remaining"])
        + loaded.get("already_done", 0)
    )
    return loaded


def finished(loaded: dict[str, Any]) -> int:
    return int(loaded["ok"] + loaded["no_data"] + loaded.get("already_done", 0))


PLANNED = len(DEMO_COMPANIES) * 2 * 4 * 2  # companies x years x reports x bases


async def test_maintenance_stops_the_run_soon_and_the_same_run_id_finishes_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    companies = companies_file(tmp_path)
    async with OpenDartStandIn(maintenance_after=40) as server:
        code, _, stderr = await asyncrawl(*crawl(f"{server.url}/api/", companies, out, "m1"))
        answered_800 = sum(a.fault == "maintenance" for a in server.arrivals)
        first = summary(out, "m1")
        # The window closes; a later run with the same id picks up what is left.
        server.maintenance = False
        server.reset_log()
        again, _, again_err = await asyncrawl(*crawl(f"{server.url}/api/", companies, out, "m1"))
        refetched = server.attempts_by_item()
    assert code == 3, stderr
    assert "OpenDART is under maintenance" in stderr
    # Stopped within a few dozen requests, not item by item with retries (2,200 before).
    assert 1 <= answered_800 <= 24
    assert first["failed"] == []
    assert len(first["remaining"]) >= PLANNED - 40
    assert first["status_counts"].get("800", 0) >= 1
    assert again == 0, again_err
    second = summary(out, "m1")
    assert second["failed"] == []
    assert second["remaining"] == []
    # Only what remained was fetched again.
    assert set(refetched) == set(first["remaining"])
    assert finished(second) == PLANNED


async def test_a_spent_daily_quota_stops_the_run_resumable_after_midnight(tmp_path: Path) -> None:
    out = tmp_path / "out"
    companies = companies_file(tmp_path)
    async with OpenDartStandIn(quota=30) as server:
        code, _, stderr = await asyncrawl(*crawl(f"{server.url}/api/", companies, out, "q1"))
        answered_020 = sum(a.fault == "quota" for a in server.arrivals)
        first = summary(out, "q1")
        server.new_day()
        server.quota = None
        again, _, again_err = await asyncrawl(*crawl(f"{server.url}/api/", companies, out, "q1"))
    assert code == 3, stderr
    assert "daily quota used" in stderr
    assert "midnight KST" in stderr
    # No cool-down and retry loop: the run stopped at the first 020s in flight.
    assert 1 <= answered_020 <= 24
    assert first["failed"] == []
    assert len(first["remaining"]) >= PLANNED - 30
    assert again == 0, again_err
    assert summary(out, "q1")["remaining"] == []


async def test_a_base_url_that_answers_404_stops_at_once_naming_the_setting(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        # The usual mistake: the host without the /api/ suffix.
        code, _, stderr = await asyncrawl(
            *crawl(f"{server.url}/", companies_file(tmp_path), out, "u1")
        )
        requests = len(server.arrivals)
    assert code == 3, stderr
    assert "base URL" in stderr
    assert "/api/" in stderr
    assert requests <= 8  # the requests already in flight, not one per item
    first = summary(out, "u1")
    assert first["failed"] == []
    assert first["ok"] == 0


async def test_html_to_everything_stops_the_run_instead_of_retrying_each_item(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    async with OpenDartStandIn(plan=FaultPlan(p_html=1.0)) as server:
        code, _, stderr = await asyncrawl(
            *crawl(f"{server.url}/api/", companies_file(tmp_path), out, "h1")
        )
        requests = len(server.arrivals)
    assert code == 3, stderr
    # Before: 5 attempts per item (394 requests for 80 items); now a streak stops it.
    assert requests <= 30
    first = summary(out, "h1")
    assert first["failed"] == []
    assert len(first["remaining"]) == PLANNED
