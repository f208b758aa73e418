"""Call the crawler Lambda synchronously without hanging, without duplicate runs.

This is what an Airflow task (Amazon MWAA) runs, so it imports the standard library, boto3 and
botocore only, never aiohttp or aioboto3::

    from asyncrawl.aws.caller import invoke_until_done

    summary = invoke_until_done("opendart-crawler", {"years": [2024]})

Why each piece exists (docs/CALLING-FROM-AIRFLOW.md tells the whole story):

- botocore retries a read timeout or a dropped connection by sending ``Invoke`` again, and every
  retry runs the function again: a duplicate crawl, logged only at DEBUG. :func:`lambda_client`
  turns botocore's retries off and :func:`invoke_until_done` retries only what proves the
  function did not run (throttling, a connection that was never made).
- A NAT gateway drops a flow idle for 350 s; a synchronous invoke sends nothing while the
  function runs. :func:`lambda_client` times TCP keep-alive probes well under that.
- The handler never runs long: it answers 206 with a continuation when its budget is spent, and
  :func:`invoke_until_done` re-invokes with ``{"run_id": ..., "continuation": ...}`` until the
  answer is 200, then returns one summary whose counts add up across the invocations.

A payload-less run that does not finish in one invocation answers 500 with ``status``
``"incomplete"`` and a continuation (so that a caller that only trusts 200 marks it failed);
:func:`invoke_until_done` follows it like a 206.

Modules: :mod:`.invoke_errors` (the errors), :mod:`.lambda_client` (the client factory),
:mod:`.answers` (parsing answers), :mod:`asyncrawl.runs.merge` (adding up the parts: the one
merge rule the handler and a resumed command-line run use too).

Errors::

    AsyncrawlError
    └── LambdaInvocationError       status_code, function_error, message, summary, continuation
        ├── NotInvokedError          throttled or unreachable until retries ran out (retryable)
        ├── InvokeRejectedError      Lambda refused the request (no such function, no permission)
        ├── UncertainInvocationError the call broke after it was sent: the function may have run
        ├── LambdaFunctionError      the function raised (the answer has ``FunctionError``)
        ├── HandlerStatusError       the handler answered 400 (bad event) or 500 (fatal)
        │   └── RunBusyError         another invocation holds the run's lease (500 "busy")
        ├── MalformedAnswerError     the answer is not the contract's shape
        ├── FailedItemsError         more items failed than ``tolerated_failed_items``
        ├── NoProgressError          a 206 answer that finished nothing
        └── InvocationLimitError     still 206 after ``max_invocations``
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from asyncrawl.errors import ConfigError
from asyncrawl.runs.merge import failed_count, merge_summaries, remaining_count

from .answers import crawl_result as _crawl_result
from .answers import error_message as _error_message
from .answers import function_error as _function_error
from .answers import parse_answer as _parse_answer
from .answers import shorten as _shorten
from .invoke_errors import (
    FailedItemsError,
    HandlerStatusError,
    InvocationLimitError,
    InvokeRejectedError,
    LambdaFunctionError,
    LambdaInvocationError,
    MalformedAnswerError,
    NoProgressError,
    NotInvokedError,
    RunBusyError,
    UncertainInvocationError,
)
from .lambda_client import NAT_IDLE_TIMEOUT_S, lambda_client
from .lambda_client import check_client as _check_client
from .lambda_client import require_int as _require_int
from .lambda_client import seconds as _seconds

__all__ = [
    "NAT_IDLE_TIMEOUT_S",
    "FailedItemsError",
    "HandlerStatusError",
    "InvocationLimitError",
    "InvokeRejectedError",
    "LambdaFunctionError",
    "LambdaInvocationError",
    "MalformedAnswerError",
    "NoProgressError",
    "NotInvokedError",
    "RunBusyError",
    "UncertainInvocationError",
    "invoke_until_done",
    "lambda_client",
]

_logger = logging.getLogger(__name__)
#: Failed items named in a FailedItemsError message; the rest are counted.
_FAILED_SHOWN = 5

_NOT_RETRIED = "It was not retried, to avoid a duplicate crawl."


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One run summary for the invocations so far (:func:`asyncrawl.runs.merge.merge_summaries`)."""
    return merge_summaries(parts)


def _backoff(retry: int, base_delay: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): doubling, jittered ±50%."""
    return float(base_delay * 2**retry * rng.uniform(0.5, 1.5))


def _invoke_once(
    client: Any,
    function_name: str,
    event: bytes,
    *,
    retries: int,
    base_delay: float,
    sleep: Callable[[float], object],
    rng: random.Random,
    log: logging.Logger,
) -> tuple[dict[str, Any], bytes]:
    """One invocation: Lambda's response and the function's answer bytes.

    Retries only what proves the function did not run; everything else raises at once.
    """
    retry = 0
    while True:
        try:
            response = client.invoke(
                FunctionName=function_name, InvocationType="RequestResponse", Payload=event
            )
            return response, response["Payload"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = _shorten(f"{code}: {error.get('Message', '')}")
            if code != "TooManyRequestsException":
                if isinstance(http_status, int) and http_status < 500:
                    raise InvokeRejectedError(
                        f"Lambda refused to invoke {function_name} ({detail})",
                        status_code=http_status,
                    ) from None
                raise UncertainInvocationError(
                    f"Lambda failed to invoke {function_name} ({detail}, HTTP {http_status}); "
                    f"the function may have run. {_NOT_RETRIED}",
                    status_code=http_status,
                ) from None
            reason = f"throttled ({detail})"
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            # The TCP connection was never made, so no request left: safe to send again.
            reason = f"could not connect ({_shorten(str(exc))})"
        except (HTTPClientError, BotocoreConnectionError) as exc:
            raise UncertainInvocationError(
                f"the call to {function_name} failed after the request may have been sent "
                f"({type(exc).__name__}: {_shorten(str(exc))}); the function may have run. "
                f"{_NOT_RETRIED}"
            ) from None
        if retry == retries:
            raise NotInvokedError(
                f"{function_name} was not invoked: {reason}, {retries + 1} attempt(s); "
                "the function did not run, so trying again later is safe"
            )
        delay = _backoff(retry, base_delay, rng)
        log.warning(
            "lambda %s %s; the function did not run; retry %d of %d in %.1f s",
            function_name,
            reason,
            retry + 1,
            retries,
            delay,
        )
        sleep(delay)
        retry += 1


def _failed_text(failed: list[dict[str, Any]]) -> str:
    shown = [
        f"{f.get('item')} ({f.get('status')}: {_shorten(str(f.get('reason', '')))})"
        for f in failed[:_FAILED_SHOWN]
    ]
    more = len(failed) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def invoke_until_done(
    function_name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    client: Any = None,
    max_invocations: int = 50,
    tolerated_failed_items: int = 0,
    throttle_retries: int = 3,
    throttle_base_delay: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Invoke the crawler Lambda until its run is done, and return the final answer's body.

    The first invocation sends ``payload`` (None sends ``{}``: "everything from the
    environment"). While the handler answers 206, the next invocation sends exactly
    ``{"run_id": <the answer's run_id>, "continuation": <the answer's continuation>}``: the
    continuation carries what is left to do, so the original payload (possibly thousands of
    companies) is not sent again. The returned body's ``crawl_result`` is the merged summary:
    :func:`asyncrawl.runs.merge.merge_summaries` of the answers (``planned`` from the first,
    counts summed, ``failed`` a bounded sample with ``failed_count``, ``remaining`` the last
    answer's sample with ``remaining_count``, plus ``invocations``); ``success`` is true only if
    no item failed. The other keys are the final answer's. A 500 answer with ``status``
    ``"incomplete"`` (a payload-less run that did not finish) is followed like a 206; one with
    ``"busy"`` raises :class:`RunBusyError`.

    Throttling (``TooManyRequestsException``) and connections that were never made are retried
    up to ``throttle_retries`` times, waiting ``throttle_base_delay`` doubled each time with
    jitter, via ``sleep``. Anything after the request was sent is never retried, since the
    function may have run. ``client`` defaults to :func:`lambda_client`'s. One INFO line per
    invocation goes to ``log`` (status, counts, seconds; never the payload).

    Raises a :class:`LambdaInvocationError` subclass: see the module docstring.
    """
    if not isinstance(function_name, str) or not function_name:
        raise ConfigError("function_name", "must be the Lambda function's name or ARN")
    max_invocations = _require_int("max_invocations", max_invocations, 1, None, "use 1 or more")
    tolerated = _require_int(
        "tolerated_failed_items", tolerated_failed_items, 0, None, "use 0 or more"
    )
    retries = _require_int("throttle_retries", throttle_retries, 0, 10, "use 0 to 10")
    base_delay = _seconds("throttle_base_delay", throttle_base_delay)
    if base_delay < 0:
        raise ConfigError("throttle_base_delay", f"is {base_delay:g}; use 0 or more seconds")
    if payload is not None and not isinstance(payload, Mapping):
        raise ConfigError("payload", "must be a mapping (the Lambda event) or None")
    try:
        event = json.dumps(dict(payload or {})).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError("payload", f"must be JSON-serialisable ({exc})") from None
    log = log or _logger
    rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
    if client is None:
        client = lambda_client()
    else:
        _check_client(client)

    parts: list[dict[str, Any]] = []
    continuation: Any = None
    for number in range(1, max_invocations + 1):
        started = clock()
        response, raw = _invoke_once(
            client,
            function_name,
            event,
            retries=retries,
            base_delay=base_delay,
            sleep=sleep,
            rng=rng,
            log=log,
        )
        try:
            if response.get("FunctionError"):
                raise _function_error(function_name, response, raw)
            status, body = _parse_answer(raw)
            if status == 500 and body.get("status") == "incomplete" and body.get("continuation"):
                status = 206  # payload-less and unfinished: a failure to a plain caller only
            if status == 500 and body.get("status") == "busy":
                raise RunBusyError(
                    f"{function_name} answered 500: {_error_message(body)}", status_code=status
                )
            if status >= 400:
                raise HandlerStatusError(
                    f"{function_name} answered {status}: {_error_message(body)}",
                    status_code=status,
                )
            if status not in (200, 206):
                raise MalformedAnswerError(
                    f"{function_name} answered statusCode {status}; expected 200, 206, 400 or 500",
                    status_code=status,
                )
            part = _crawl_result(status, body)
            run_id = body.get("run_id")
            if not isinstance(run_id, str) or not run_id:
                raise MalformedAnswerError("the answer has no run_id", status_code=status)
        except LambdaInvocationError as exc:
            # What earlier invocations finished stays done; the error says how far the run got.
            exc.summary = _merge(parts) if parts else None
            exc.continuation = continuation
            raise
        previous_remaining = remaining_count(parts[-1]) if parts else part["planned"]
        parts.append(part)
        merged = _merge(parts)
        log.info(
            "lambda %s invocation %d: status %d, ok %d, no_data %d, failed %d, remaining %d, "
            "%.1f s",
            function_name,
            number,
            status,
            part["ok"],
            part["no_data"],
            failed_count(part),
            remaining_count(part),
            clock() - started,
        )
        if status == 200:
            if failed_count(merged) > tolerated:
                raise FailedItemsError(
                    f"{failed_count(merged)} item(s) failed, more than the "
                    f"{tolerated} tolerated: {_failed_text(merged['failed'])}",
                    status_code=status,
                    summary=merged,
                )
            result = dict(body)
            result["crawl_result"] = merged
            result["success"] = bool(body.get("success")) and not failed_count(merged)
            return result
        continuation = body.get("continuation")
        if continuation is None:
            raise MalformedAnswerError(
                f"{function_name} answered 206 without a continuation",
                status_code=status,
                summary=merged,
            )
        finished = part["ok"] + part["no_data"] + failed_count(part)
        if finished == 0 and remaining_count(part) >= previous_remaining:
            raise NoProgressError(
                f"{function_name} answered 206 but finished no item "
                f"({remaining_count(part)} remaining); invoking again would loop",
                status_code=status,
                summary=merged,
                continuation=continuation,
            )
        event = json.dumps({"run_id": run_id, "continuation": continuation}).encode()
    raise InvocationLimitError(
        f"{function_name} still had {remaining_count(parts[-1])} item(s) remaining after "
        f"{max_invocations} invocations; raise max_invocations, or invoke again with the "
        "run_id and this error's continuation",
        status_code=206,
        summary=_merge(parts),
        continuation=continuation,
    )
