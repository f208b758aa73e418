"""Run ids for the crawler from an orchestrator's own run ids (Airflow's, say).

The crawler's run id is ``[A-Za-z0-9._-]{1,64}`` (CONTRACTS.md). Airflow's run ids are longer
and use other characters: ``manual__2024-06-01T04:00:00.123456+00:00``,
``scheduled__2024-06-01T19:00:00+00:00``, or whatever a user typed when triggering. A run id
must be the same for every retry of one DAG run (a retry resumes the crawl) and different for
two DAG runs (a new run must not resume, and overwrite, a finished one; on Airflow 3 a manual
run has no logical date, so ``ds_nodash`` is no longer unique, nor even set).

:func:`crawler_run_id` maps ``(prefix, orchestrator run id)`` deterministically: the characters
outside the set become ``-``, and when anything had to change (or the result is too long), 8 hex
digits of a SHA-256 of the original are appended, so two different Airflow run ids never map to
the same crawler run id by the substitution alone. Standard library only: the Airflow workers
import it beside the boto3-only caller.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["RUN_ID_PATTERN", "crawler_run_id"]

#: The crawler's run-id alphabet and length (CONTRACTS.md).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OUTSIDE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX = 64
_DIGEST = 8


def crawler_run_id(prefix: str, run_id: str) -> str:
    """The crawler run id for the orchestrator's ``run_id``, under ``prefix`` (e.g. the DAG id).

    Deterministic, and distinct for distinct ``(prefix, run_id)`` pairs up to a 32-bit hash.
    """
    if not run_id:
        raise ValueError("run_id: empty; pass the orchestrator's run id")
    original = f"{prefix}-{run_id}" if prefix else run_id
    cleaned = _OUTSIDE.sub("-", original).strip("-.") or "run"
    if cleaned == original and len(cleaned) <= _MAX:
        return cleaned
    digest = hashlib.sha256(original.encode()).hexdigest()[:_DIGEST]
    return f"{cleaned[: _MAX - _DIGEST - 1].rstrip('-.')}-{digest}"
