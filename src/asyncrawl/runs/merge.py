"""The one rule for adding up run summaries, and for bounding their lists.

Standard library only: the boto3-only caller (``asyncrawl.aws.caller``, run in Amazon MWAA)
imports it without aiohttp, orjson or aioboto3. The handler (a run's totals across Lambda
invocations), the caller (the answers it received) and a resumed CLI run all use it.

A summary here is the contract's JSON shape (``RunSummary.to_dict()``, ``summary.json``, a
Lambda body's ``crawl_result``), possibly bounded by :func:`bound_summary`: then ``failed``
and ``remaining`` are samples and ``failed_count`` / ``remaining_count`` hold the true counts.

Buckets. Every planned item ends in exactly one::

    planned == ok + no_data + already_done + skipped + failed_count + remaining_count

``already_done`` counts items of this part's plan that an earlier part of the same run had
already finished (found in the run's journal: not fetched, not written again); ``skipped``
counts what a crawl's depth or size limits left out. Both are 0 unless present.

Merging parts of one run (invocation 2 planned what invocation 1 left remaining, plus what
it discovered while crawling): ``planned`` is the first part's plus, for each later part, what
it planned beyond the previous part's remaining; every bucket and counter adds up, ``failed``
samples are concatenated (bounded), ``remaining`` is the last part's, and ``invocations``
counts parts. The invariant then holds on the merged counts whenever it held on each part.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COUNTERS",
    "DEFAULT_SAMPLE",
    "bound_summary",
    "failed_count",
    "invariant_holds",
    "merge_summaries",
    "remaining_count",
]

#: Counters that add up across parts (absent means 0).
COUNTERS = (
    "ok",
    "no_data",
    "already_done",
    "skipped",
    "duplicates",
    "requests",
    "retries",
    "hedges",
)
#: Entries kept in a bounded ``failed`` or ``remaining`` list.
DEFAULT_SAMPLE = 100


def _count(summary: Mapping[str, Any], name: str) -> int:
    value = summary.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _list(summary: Mapping[str, Any], name: str) -> list[Any]:
    value = summary.get(name)
    return list(value) if isinstance(value, list | tuple) else []


def failed_count(summary: Mapping[str, Any]) -> int:
    """How many items failed: ``failed_count`` when the list is a sample, else its length."""
    given = summary.get("failed_count")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    failed = summary.get("failed")
    if isinstance(failed, int) and not isinstance(failed, bool):
        return failed
    return len(_list(summary, "failed"))


def remaining_count(summary: Mapping[str, Any]) -> int:
    """How many items remain: ``remaining_count`` when the list is a sample, else its length."""
    given = summary.get("remaining_count")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    return len(_list(summary, "remaining"))


def invariant_holds(summary: Mapping[str, Any]) -> bool:
    """Whether every planned item is in exactly one bucket (on the counts)."""
    buckets = sum(_count(summary, n) for n in ("ok", "no_data", "already_done", "skipped"))
    total = buckets + failed_count(summary) + remaining_count(summary)
    return _count(summary, "planned") == total


def merge_summaries(
    parts: Sequence[Mapping[str, Any]], *, sample: int = DEFAULT_SAMPLE
) -> dict[str, Any]:
    """One summary for the parts of one run, in order (see the module docstring).

    A part may itself be merged (it carries ``invocations``); merging is associative, so the
    handler's running totals and the caller's list of answers give the same counts.
    """
    if not parts:
        raise ValueError("parts: merge_summaries needs at least one summary")
    first, last = parts[0], parts[-1]
    # A later part plans what the one before left remaining, plus what it discovered.
    planned = _count(first, "planned") + sum(
        max(_count(part, "planned") - remaining_count(before), 0)
        for before, part in itertools.pairwise(parts)
    )
    merged: dict[str, Any] = {"run_id": first.get("run_id"), "planned": planned}
    for name in COUNTERS:
        merged[name] = sum(_count(p, name) for p in parts)
    status_counts: Counter[str] = Counter()
    for part in parts:
        counts = part.get("status_counts")
        if isinstance(counts, Mapping):
            status_counts.update(
                {str(k): v for k, v in counts.items() if type(v) is int and v >= 0}
            )
    failed = [f for p in parts for f in _list(p, "failed")]
    elapsed = sum(_seconds(p.get("elapsed_s")) for p in parts)
    merged.update(
        failed=failed[:sample],
        failed_count=sum(failed_count(p) for p in parts),
        remaining=_list(last, "remaining")[:sample],
        remaining_count=remaining_count(last),
        status_counts=dict(sorted(status_counts.items())),
        elapsed_s=round(elapsed, 3),
        requests_per_s=round(merged["requests"] / elapsed, 2) if elapsed > 0 else 0.0,
        invocations=sum(max(_count(p, "invocations"), 1) for p in parts),
        fatal=last.get("fatal"),
        cancelled=bool(last.get("cancelled", False)),
    )
    return merged


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if value >= 0 else 0.0


def bound_summary(
    summary: Mapping[str, Any], *, sample: int = DEFAULT_SAMPLE, max_bytes: int = 64 * 1024
) -> dict[str, Any]:
    """``summary`` with its ``failed`` and ``remaining`` lists cut to a bounded sample.

    The counts stay exact (``failed_count``, ``remaining_count``); ``lists_complete`` says
    whether the lists are whole. The sample shrinks further until the lists together
    serialise under ``max_bytes`` (a failure reason can be long), so the result's size does
    not grow with the run's.
    """
    bounded = dict(summary)
    failed, remaining = _list(summary, "failed"), _list(summary, "remaining")
    bounded["failed_count"] = failed_count(summary)
    bounded["remaining_count"] = remaining_count(summary)
    keep = max(sample, 0)
    while True:
        bounded["failed"], bounded["remaining"] = failed[:keep], remaining[:keep]
        size = len(json.dumps([bounded["failed"], bounded["remaining"]], ensure_ascii=False))
        if size <= max_bytes or keep == 0:
            break
        keep //= 2
    complete = (
        len(bounded["failed"]) == bounded["failed_count"]
        and len(bounded["remaining"]) == bounded["remaining_count"]
    )
    bounded["lists_complete"] = complete and bool(summary.get("lists_complete", True))
    return bounded
