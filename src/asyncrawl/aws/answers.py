"""Reading the crawler Lambda's answers: the contract's shape, checked before it is trusted.

Standard library only (plus asyncrawl.redact and the error classes): the boto3-only caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from asyncrawl.redact import redact_text

from .invoke_errors import LambdaFunctionError, MalformedAnswerError

__all__ = ["crawl_result", "error_message", "function_error", "parse_answer", "shorten"]

#: Longest piece of a function's own error text carried into an exception message.
_MAX_MESSAGE_CHARS = 1000


def shorten(text: str) -> str:
    text = redact_text(text)
    if len(text) > _MAX_MESSAGE_CHARS:
        return text[:_MAX_MESSAGE_CHARS] + "…"
    return text


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise MalformedAnswerError(f"{what} is not JSON: {shorten(text[:200])!r}") from None


def function_error(
    function_name: str, response: Mapping[str, Any], raw: bytes
) -> LambdaFunctionError:
    kind = str(response["FunctionError"])
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        detail = f"{payload.get('errorType', 'error')}: {payload.get('errorMessage', '')}"
    else:
        detail = raw.decode("utf-8", "replace")
    return LambdaFunctionError(
        f"{function_name} raised ({kind}) {shorten(detail)}",
        status_code=response.get("StatusCode"),
        function_error=kind,
    )


def parse_answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    answer = _json(raw, "the answer")
    if not isinstance(answer, dict) or "statusCode" not in answer or "body" not in answer:
        raise MalformedAnswerError(
            'the answer is not {"statusCode": ..., "headers": ..., "body": ...}'
        )
    status = answer["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int):
        raise MalformedAnswerError(f"the answer's statusCode is {status!r}, not an integer")
    body = answer["body"]
    if isinstance(body, str | bytes):
        body = _json(body, "the answer's body")
    if not isinstance(body, dict):
        raise MalformedAnswerError("the answer's body is not a JSON object", status_code=status)
    return status, body


_COUNTS = ("planned", "ok", "no_data", "requests", "retries")


def crawl_result(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """This answer's run summary, checked for everything the merge relies on."""
    part = body.get("crawl_result")
    if not isinstance(part, dict):
        raise MalformedAnswerError("the answer has no crawl_result object", status_code=status)

    def bad(key: str, expected: str) -> MalformedAnswerError:
        return MalformedAnswerError(
            f"crawl_result.{key} is {part.get(key)!r}, not {expected}", status_code=status
        )

    for key in _COUNTS:
        value = part.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(key, "a count")
    failed = part.get("failed")
    if not isinstance(failed, list) or not all(isinstance(f, dict) for f in failed):
        raise bad("failed", "a list of {item, status, reason}")
    if not isinstance(part.get("remaining"), list):
        raise bad("remaining", "a list of items")
    counts = part.get("status_counts")
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in counts.values()
    ):
        raise bad("status_counts", "an object of counts")
    elapsed = part.get("elapsed_s")
    if isinstance(elapsed, bool) or not isinstance(elapsed, int | float):
        raise bad("elapsed_s", "a number of seconds")
    return part


def error_message(body: Mapping[str, Any]) -> str:
    for key in ("message", "error", "errorMessage"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return shorten(value)
    result = body.get("crawl_result")
    if isinstance(result, dict) and isinstance(result.get("fatal"), str):
        return shorten(result["fatal"])
    return shorten(json.dumps(body)[:200])
