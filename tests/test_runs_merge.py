"""The one summary-merge rule: associative, bounded, the invariant kept on the counts."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asyncrawl.runs.merge import (
    bound_summary,
    failed_count,
    invariant_holds,
    merge_summaries,
    remaining_count,
)


def chain(
    draws: list[tuple[int, int, int, int, int, int]], first_planned: int
) -> list[dict[str, Any]]:
    """Parts of one run: each plans the last one's remaining plus what it discovered."""
    parts: list[dict[str, Any]] = []
    left = first_planned
    for index, (ok, no_data, failed, done, found, requests) in enumerate(draws):
        planned = left + (found if index else 0)
        used = 0
        buckets = []
        for n in (ok, no_data, failed, done):
            n = min(n, planned - used)
            buckets.append(n)
            used += n
        ok, no_data, failed, done = buckets
        remaining = planned - used
        parts.append(
            {
                "run_id": "r",
                "planned": planned,
                "ok": ok,
                "no_data": no_data,
                "already_done": done,
                "failed": [
                    {"item": f"f{index}-{i}", "status": "x", "reason": "y"} for i in range(failed)
                ],
                "remaining": [f"k{i}" for i in range(remaining)],
                "requests": requests,
                "retries": 0,
                "status_counts": {"000": requests},
                "elapsed_s": 1.5,
            }
        )
        left = remaining
    return parts


counts = st.integers(0, 40)
parts_strategy = st.tuples(
    st.integers(0, 200),
    st.lists(st.tuples(counts, counts, counts, counts, counts, counts), min_size=1, max_size=6),
)


@given(parts_strategy)
def test_the_merged_counts_keep_the_invariant(drawn: tuple[int, list[Any]]) -> None:
    first, draws = drawn
    parts = chain(draws, first)
    assert all(invariant_holds(p) for p in parts)
    merged = merge_summaries(parts, sample=5)
    assert invariant_holds(merged)
    assert merged["invocations"] == len(parts)
    assert merged["failed_count"] == sum(len(p["failed"]) for p in parts)
    assert len(merged["failed"]) <= 5
    assert merged["remaining_count"] == len(parts[-1]["remaining"])
    # Associative: the handler's running totals give what the caller's list of answers gives.
    if len(parts) > 2:
        stepwise = merge_summaries([merge_summaries(parts[:2], sample=5), *parts[2:]], sample=5)
        for name in ("planned", "ok", "no_data", "already_done", "failed_count", "remaining_count"):
            assert stepwise[name] == merged[name]


def test_bounding_keeps_counts_and_cuts_lists() -> None:
    summary = {
        "planned": 30_000,
        "ok": 0,
        "no_data": 0,
        "failed": [{"item": str(i), "status": "x", "reason": "r" * 500} for i in range(1000)],
        "remaining": [f"{i:08d}/2024/11011/CFS" for i in range(29_000)],
    }
    bounded = bound_summary(summary, sample=100, max_bytes=16 * 1024)
    assert failed_count(bounded) == 1000
    assert remaining_count(bounded) == 29_000
    assert len(json.dumps([bounded["failed"], bounded["remaining"]])) <= 16 * 1024
    assert bounded["lists_complete"] is False
    assert invariant_holds(bounded)
    assert bound_summary({"planned": 0, "failed": [], "remaining": []})["lists_complete"] is True


def test_the_merge_rule_needs_the_standard_library_only() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.split('.')[0]\n"
        "        if top not in sys.stdlib_module_names and top != 'asyncrawl':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from asyncrawl.runs.merge import merge_summaries\n"
        "print(merge_summaries([{'planned': 1, 'ok': 1, 'failed': [], 'remaining': []}])['ok'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
