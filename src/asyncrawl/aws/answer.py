"""The Lambda answer: always ``{"statusCode", "headers", "body"}`` with a JSON body.

The body's keys (README "AWS Lambda" lists them all)::

    success        true only when the run is finished and nothing failed
    crawler_type   the plan's label (OpenDART: annual | quarter)
    job            the job's registered name
    run_id         the run
    status         finished | partial | incomplete | busy | bad_request | fatal
    message        what happened, for people (Korean and English for OpenDART)
    crawl_result   this invocation's run summary (counts always; ``failed`` and ``remaining``
                   a bounded sample, ``failed_count`` / ``remaining_count`` the totals), plus
                   the old body's ``success``, ``total_companies``, ``message``, ``s3_bucket``,
                   and ``summary_uri``: the run's whole summary.json with the full lists
    s3_upload      {success, message, bucket, prefix, objects_written, summary_key, summary_uri}
    crawl_time     when the invocation ended, "YYYY-MM-DD HH:MM:SS" in KST (the old format)
    elapsed_s      the invocation's seconds (what ``crawl_time`` held in round 1)
    continuation   the token to finish the run with, or null

Status codes: 200 finished; 206 budget spent (``continuation`` holds the rest); 400 bad event
(``message`` names the field); 500 fatal, busy, or a payload-less run that did not finish in
one invocation (see :func:`crawl_answer`). The whole answer stays below
:data:`MAX_ANSWER_BYTES` whatever the run's size (Step Functions' 256 KiB state limit).

Korean company names stay readable in the body: it is UTF-8 JSON, not ``\\uNNNN`` escapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from ..redact import redact_text
from ..runs.merge import DEFAULT_SAMPLE, bound_summary, failed_count, remaining_count

__all__ = [
    "CONTENT_TYPE",
    "MAX_ANSWER_BYTES",
    "bad_request",
    "crawl_answer",
    "crawl_time",
    "fatal",
    "kst_day",
    "make_answer",
]

#: The answer's only header.
CONTENT_TYPE = "application/json; charset=utf-8"
#: The whole answer's size bound: under Step Functions' 256 KiB, with room to spare.
MAX_ANSWER_BYTES = 240 * 1024
_STATUS_CODES = frozenset({200, 206, 400, 500})
_KST = timezone(timedelta(hours=9), "KST")


def kst_day(now: datetime) -> str:
    """``YYYYMMDD`` of ``now`` in KST (payload-less run ids are one per KST day)."""
    return now.astimezone(_KST).strftime("%Y%m%d")


def crawl_time(now: datetime | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in KST: the old answer's ``crawl_time``."""
    return (now or datetime.now(UTC)).astimezone(_KST).strftime("%Y-%m-%d %H:%M:%S")


def make_answer(status_code: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer dictionary for ``status_code`` with ``body`` serialised as UTF-8 JSON text.

    Raises :class:`ValueError` for a status code the contract does not list (200, 206, 400,
    500) or a body that is not JSON-serialisable: both are handler bugs, not user input.
    """
    if status_code not in _STATUS_CODES:
        raise ValueError(f"status_code: {status_code} is not one of 200, 206, 400, 500")
    try:
        text = orjson.dumps(dict(body), option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise ValueError(f"body: not JSON-serialisable ({exc})") from None
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": CONTENT_TYPE},
        "body": redact_text(text),
    }


def _fits(answer: Mapping[str, Any]) -> bool:
    return len(orjson.dumps(dict(answer))) <= MAX_ANSWER_BYTES


def crawl_answer(
    *,
    status_code: int,
    status: str,
    success: bool,
    message: str,
    job: str,
    crawler_type: str,
    run_id: str,
    crawl_result: Mapping[str, Any],
    legacy: Mapping[str, Any],
    s3_upload: Mapping[str, Any],
    elapsed_s: float,
    continuation: str | None,
) -> dict[str, Any]:
    """The answer of an invocation that ran: its summary bounded so the answer fits.

    ``legacy`` holds the old ``crawl_result`` keys beside the summary (``success``,
    ``total_companies``, ``message``, ``s3_bucket``, ``summary_uri``).
    """
    sample = DEFAULT_SAMPLE
    while True:
        bounded = bound_summary(crawl_result, sample=sample, max_bytes=96 * 1024)
        bounded.update(legacy)
        body = {
            "success": success,
            "status": status,
            "message": message,
            "job": job,
            "crawler_type": crawler_type,
            "run_id": run_id,
            "crawl_result": bounded,
            "s3_upload": dict(s3_upload),
            "crawl_time": crawl_time(),
            "elapsed_s": round(elapsed_s, 3),
            "continuation": continuation,
        }
        answer = make_answer(status_code, body)
        if _fits(answer) or sample == 0:
            return answer
        sample //= 4


def _error_answer(
    status_code: int,
    message: str,
    *,
    status: str,
    job: str | None,
    crawler_type: str | None,
    run_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": False,
        "status": status,
        "message": message[:4000],
        "job": job,
        "crawler_type": crawler_type,
        "run_id": run_id,
        "crawl_result": None,
        "s3_upload": {"success": False, "message": message[:4000]},
        "crawl_time": crawl_time(),
        "elapsed_s": None,
        "continuation": None,
    }
    body.update(extra or {})
    return make_answer(status_code, body)


def bad_request(
    message: str,
    *,
    job: str | None = None,
    crawler_type: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """A 400 answer: the event is bad. ``message`` names the field and the fix."""
    return _error_answer(
        400, message, status="bad_request", job=job, crawler_type=crawler_type, run_id=run_id
    )


def fatal(
    message: str,
    *,
    status: str = "fatal",
    job: str | None = None,
    crawler_type: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """A 500 answer that crawled nothing: ``message`` says why (never the key)."""
    return _error_answer(
        500, message, status=status, job=job, crawler_type=crawler_type, run_id=run_id
    )


def counts_text(summary: Mapping[str, Any]) -> str:
    """``ok 3, no data 1, failed 0, remaining 5`` for messages."""
    return (
        f"ok {summary.get('ok', 0)}, no data {summary.get('no_data', 0)}, "
        f"failed {failed_count(summary)}, remaining {remaining_count(summary)}"
    )
