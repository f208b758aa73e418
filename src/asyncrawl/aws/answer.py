"""The Lambda answer: always ``{"statusCode", "headers", "body"}`` with a JSON body.

The body's keys are the contract's (``success``, ``crawler_type``, ``run_id``,
``crawl_result``, ``s3_upload``, ``crawl_time``, ``continuation``, plus ``message`` on errors),
so a caller reads every answer the same way whatever happened:

* 200 the work is finished (``continuation`` is null; ``success`` is true only if nothing failed)
* 206 the time budget was spent; ``continuation`` holds what is needed to finish
* 400 the event is bad; ``message`` names the field and the fix
* 500 a fatal error (bad key, IP blocked, quota gone, broken configuration); ``message`` says which

Korean company names stay readable in the body: it is UTF-8 JSON, not ``\\uNNNN`` escapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..redact import redact_text

__all__ = [
    "CONTENT_TYPE",
    "bad_request",
    "crawl_answer",
    "fatal",
    "make_answer",
]

#: The answer's only header.
CONTENT_TYPE = "application/json; charset=utf-8"

_STATUS_CODES = frozenset({200, 206, 400, 500})


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


def crawl_answer(
    *,
    crawler_type: str,
    run_id: str,
    crawl_result: Mapping[str, Any],
    s3_upload: Any,
    crawl_time: Any,
    continuation: str | None,
) -> dict[str, Any]:
    """The answer for an invocation that crawled: 206 with a continuation, else 200.

    ``crawl_result`` is the run summary (``failed`` is a list, or a count). ``success`` is
    true only when the run is finished and nothing failed.
    """
    failed = crawl_result.get("failed", ())
    failed_count = failed if isinstance(failed, int) else len(failed)
    status = 206 if continuation is not None else 200
    body = {
        "success": continuation is None and failed_count == 0,
        "crawler_type": crawler_type,
        "run_id": run_id,
        "crawl_result": dict(crawl_result),
        "s3_upload": s3_upload,
        "crawl_time": crawl_time,
        "continuation": continuation,
    }
    return make_answer(status, body)


def _error_answer(
    status_code: int,
    message: str,
    *,
    crawler_type: str | None,
    run_id: str | None,
    crawl_result: Mapping[str, Any] | None,
    s3_upload: Any,
    crawl_time: Any,
) -> dict[str, Any]:
    body = {
        "success": False,
        "message": message,
        "crawler_type": crawler_type,
        "run_id": run_id,
        "crawl_result": None if crawl_result is None else dict(crawl_result),
        "s3_upload": s3_upload,
        "crawl_time": crawl_time,
        "continuation": None,
    }
    return make_answer(status_code, body)


def bad_request(
    message: str, *, crawler_type: str | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """A 400 answer: the event is bad. ``message`` names the field and the fix."""
    return _error_answer(
        400,
        message,
        crawler_type=crawler_type,
        run_id=run_id,
        crawl_result=None,
        s3_upload=None,
        crawl_time=None,
    )


def fatal(
    message: str,
    *,
    crawler_type: str | None = None,
    run_id: str | None = None,
    crawl_result: Mapping[str, Any] | None = None,
    s3_upload: Any = None,
    crawl_time: Any = None,
) -> dict[str, Any]:
    """A 500 answer: the run cannot go on. ``message`` says why (never the key).

    Pass what the run did before it stopped (``crawl_result`` and so on) so nothing is hidden.
    """
    return _error_answer(
        500,
        message,
        crawler_type=crawler_type,
        run_id=run_id,
        crawl_result=crawl_result,
        s3_upload=s3_upload,
        crawl_time=crawl_time,
    )
