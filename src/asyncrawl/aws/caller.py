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

Errors::

    AsyncrawlError
    └── LambdaInvocationError       status_code, function_error, message, summary, continuation
        ├── NotInvokedError          throttled or unreachable until retries ran out (retryable)
        ├── InvokeRejectedError      Lambda refused the request (no such function, no permission)
        ├── UncertainInvocationError the call broke after it was sent: the function may have run
        ├── LambdaFunctionError      the function raised (the answer has ``FunctionError``)
        ├── HandlerStatusError       the handler answered 400 (bad event) or 500 (fatal)
        ├── MalformedAnswerError     the answer is not the contract's shape
        ├── FailedItemsError         more items failed than ``tolerated_failed_items``
        ├── NoProgressError          a 206 answer that finished nothing
        └── InvocationLimitError     still 206 after ``max_invocations``
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from asyncrawl.aws._keepalive import install_socket_options, keepalive_socket_options
from asyncrawl.errors import AsyncrawlError, ConfigError
from asyncrawl.redact import redact_text

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
    "UncertainInvocationError",
    "invoke_until_done",
    "lambda_client",
]

_logger = logging.getLogger(__name__)

#: A NAT gateway drops a TCP flow after this many idle seconds, silently for a reading client.
NAT_IDLE_TIMEOUT_S = 350
#: Lambda's longest function timeout.
_MAX_FUNCTION_TIMEOUT_S = 900.0
#: How much longer than the function may run the client waits for its answer.
_READ_TIMEOUT_MARGIN_S = 60.0
_CONNECT_TIMEOUT_S = 5.0
#: Linux's upper bound for TCP_KEEPCNT.
_MAX_KEEPALIVE_COUNT = 127
#: Longest piece of a function's own error text carried into an exception message.
_MAX_MESSAGE_CHARS = 1000
#: Failed items named in a FailedItemsError message; the rest are counted.
_FAILED_SHOWN = 5

_NOT_RETRIED = "It was not retried, to avoid a duplicate crawl."


class LambdaInvocationError(AsyncrawlError):
    """An invocation did not give a usable answer, or the run it answered is not acceptable."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        function_error: str | None = None,
        summary: Mapping[str, Any] | None = None,
        continuation: Any = None,
    ) -> None:
        #: The handler's ``statusCode``, or the HTTP status of a refused call; None if unknown.
        self.status_code = status_code
        #: The ``FunctionError`` Lambda reported (``"Unhandled"``), if the function raised.
        self.function_error = function_error
        #: What went wrong, with secrets redacted.
        self.message = message
        #: The merged run summary of the invocations that did answer, if any did.
        self.summary = dict(summary) if summary is not None else None
        #: The last continuation received: invoke with it (and the run id) to finish the run.
        self.continuation = continuation
        super().__init__(message)


class NotInvokedError(LambdaInvocationError):
    """Lambda throttled the call, or no connection could be made, until retries ran out.

    The function did not run, so trying again later is safe.
    """

    retryable: ClassVar[bool] = True


class InvokeRejectedError(LambdaInvocationError):
    """Lambda refused the request (unknown function, no permission, bad payload): it did not run."""


class UncertainInvocationError(LambdaInvocationError):
    """The call broke after the request was sent; the function may have run, so no retry."""


class LambdaFunctionError(LambdaInvocationError):
    """The function raised instead of answering (the response carries ``FunctionError``)."""


class HandlerStatusError(LambdaInvocationError):
    """The handler answered with an error status: 400 (bad event) or 500 (fatal)."""


class MalformedAnswerError(LambdaInvocationError):
    """The answer is not ``{"statusCode", "headers", "body"}`` with the contract's body."""


class FailedItemsError(LambdaInvocationError):
    """The run finished, but more items failed than ``tolerated_failed_items`` allows."""


class NoProgressError(LambdaInvocationError):
    """A 206 answer finished no item: invoking again would loop without end."""


class InvocationLimitError(LambdaInvocationError):
    """The run still had work left after ``max_invocations`` invocations."""


def _seconds(field: str, value: float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(field, f"must be a number of seconds or a timedelta, not {value!r}")
    return float(value)


def _require_int(field: str, value: object, low: int, high: int | None, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(field, f"is {value}; {fix}")
    return value


_RETRIES_FIX = (
    "every botocore retry of Invoke runs the function again (a duplicate crawl); "
    "invoke_until_done retries only what proves the function did not run"
)


def _check_retries(retries: object) -> None:
    if not isinstance(retries, Mapping):
        raise ConfigError("retries", f"must be a dict like botocore's, not {retries!r}")
    attempts = retries.get("total_max_attempts")
    if attempts is None and "max_attempts" in retries:
        max_attempts = retries["max_attempts"]
        attempts = max_attempts + 1 if isinstance(max_attempts, int) else max_attempts
    if attempts != 1:
        raise ConfigError("retries", f"must keep total_max_attempts at 1: {_RETRIES_FIX}")


def _check_client(client: Any) -> None:
    """Refuse a client whose botocore retries are on (a plain ``boto3.client("lambda")``)."""
    retries = getattr(getattr(getattr(client, "meta", None), "config", None), "retries", None)
    if not isinstance(retries, Mapping) or retries.get("total_max_attempts") != 1:
        raise ConfigError(
            "client",
            f"has botocore retries on ({retries!r}): {_RETRIES_FIX}; create it with "
            "asyncrawl.aws.caller.lambda_client()",
        )


def lambda_client(
    *,
    function_timeout: float | timedelta = _MAX_FUNCTION_TIMEOUT_S,
    keepalive_idle: int = 60,
    keepalive_interval: int = 15,
    keepalive_count: int = 4,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    session: boto3.Session | None = None,
    **config_overrides: Any,
) -> Any:
    """A boto3 Lambda client that is safe for long synchronous invokes.

    - botocore's automatic retries are off (``total_max_attempts=1``): each retry of ``Invoke``
      would run the function again.
    - ``read_timeout`` is ``function_timeout`` + 60 s, so the client never gives up on an
      answer the function may still send; ``connect_timeout`` is 5 s.
    - This client's sockets send a TCP keep-alive probe after ``keepalive_idle`` seconds of
      silence, then every ``keepalive_interval`` seconds, and give up after ``keepalive_count``
      unanswered probes, so a NAT gateway (350 s idle limit) keeps the flow. Other clients in the
      process are not changed.

    ``config_overrides`` are further ``botocore.config.Config`` options (``max_pool_connections``,
    ``connect_timeout``, ``read_timeout`` above the function timeout, ...). ``session`` is the
    ``boto3.Session`` to create the client from (default: a new one, boto3's usual credential and
    region chain). Raises :class:`~asyncrawl.errors.ConfigError` for a setting that would bring
    the hang or the duplicate runs back.
    """
    timeout = _seconds("function_timeout", function_timeout)
    if not 0 < timeout <= _MAX_FUNCTION_TIMEOUT_S:
        raise ConfigError(
            "function_timeout",
            f"is {timeout:g} s; pass the Lambda function's timeout (1 to 900 seconds)",
        )
    below_nat = NAT_IDLE_TIMEOUT_S - 1
    idle = _require_int(
        "keepalive_idle",
        keepalive_idle,
        1,
        below_nat,
        f"the first probe must leave before the NAT's {NAT_IDLE_TIMEOUT_S} s idle limit; "
        "use 1 to 349 (60 is a good value)",
    )
    interval = _require_int(
        "keepalive_interval",
        keepalive_interval,
        1,
        below_nat,
        f"probes must come more often than the NAT's {NAT_IDLE_TIMEOUT_S} s idle limit; "
        "use 1 to 349 (15 is a good value)",
    )
    count = _require_int(
        "keepalive_count", keepalive_count, 1, _MAX_KEEPALIVE_COUNT, "use 1 to 127 (4 is good)"
    )
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": 1},
        "read_timeout": timeout + _READ_TIMEOUT_MARGIN_S,
        "connect_timeout": _CONNECT_TIMEOUT_S,
    }
    if "retries" in config_overrides:
        _check_retries(config_overrides["retries"])
    if "read_timeout" in config_overrides:
        read_timeout = _seconds("read_timeout", config_overrides["read_timeout"])
        if read_timeout <= timeout:
            raise ConfigError(
                "read_timeout",
                f"is {read_timeout:g} s, not above function_timeout ({timeout:g} s): the client "
                "would give up while the function still runs; leave it out to get "
                "function_timeout + 60 s",
            )
    if config_overrides.get("tcp_keepalive", True) is not True:
        raise ConfigError("tcp_keepalive", "cannot be turned off; leave it out")
    options.update(config_overrides)
    try:
        config = Config(**options)
    except TypeError as exc:
        raise ConfigError("config_overrides", f"{exc}; see botocore.config.Config") from None
    client = (session or boto3.Session()).client(
        "lambda", region_name=region_name, endpoint_url=endpoint_url, config=config
    )
    install_socket_options(
        client, keepalive_socket_options(idle=idle, interval=interval, count=count)
    )
    return client


def _shorten(text: str) -> str:
    text = redact_text(text)
    if len(text) > _MAX_MESSAGE_CHARS:
        return text[:_MAX_MESSAGE_CHARS] + "…"
    return text


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


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise MalformedAnswerError(f"{what} is not JSON: {_shorten(text[:200])!r}") from None


def _function_error(
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
        f"{function_name} raised ({kind}) {_shorten(detail)}",
        status_code=response.get("StatusCode"),
        function_error=kind,
    )


def _parse_answer(raw: bytes) -> tuple[int, dict[str, Any]]:
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


def _crawl_result(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
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


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One run summary for the invocations so far; counts add up, ``remaining`` is the last."""
    first, last = parts[0], parts[-1]
    status_counts: Counter[str] = Counter()
    for part in parts:
        status_counts.update(part["status_counts"])
    requests = sum(p["requests"] for p in parts)
    elapsed = sum(float(p["elapsed_s"]) for p in parts)
    merged: dict[str, Any] = {
        "run_id": first.get("run_id"),
        "planned": first["planned"],
        "ok": sum(p["ok"] for p in parts),
        "no_data": sum(p["no_data"] for p in parts),
        "failed": [f for p in parts for f in p["failed"]],
        "remaining": list(last["remaining"]),
        "requests": requests,
        "retries": sum(p["retries"] for p in parts),
        "status_counts": dict(sorted(status_counts.items())),
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 2) if elapsed > 0 else 0.0,
        "invocations": len(parts),
    }
    for key in ("fatal", "cancelled"):
        if key in last:
            merged[key] = last[key]
    return merged


def _error_message(body: Mapping[str, Any]) -> str:
    for key in ("message", "error", "errorMessage"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return _shorten(value)
    result = body.get("crawl_result")
    if isinstance(result, dict) and isinstance(result.get("fatal"), str):
        return _shorten(result["fatal"])
    return _shorten(json.dumps(body)[:200])


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
    ``planned`` from the first answer, ``ok``/``no_data``/``requests``/``retries``/
    ``status_counts``/``elapsed_s`` summed, ``failed`` concatenated, ``remaining`` from the last,
    plus ``invocations``; ``success`` is true only if no item failed. The other keys are the
    final answer's.

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
        previous_remaining = len(parts[-1]["remaining"]) if parts else part["planned"]
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
            len(part["failed"]),
            len(part["remaining"]),
            clock() - started,
        )
        if status == 200:
            if len(merged["failed"]) > tolerated:
                raise FailedItemsError(
                    f"{len(merged['failed'])} item(s) failed, more than the "
                    f"{tolerated} tolerated: {_failed_text(merged['failed'])}",
                    status_code=status,
                    summary=merged,
                )
            result = dict(body)
            result["crawl_result"] = merged
            result["success"] = bool(body.get("success")) and not merged["failed"]
            return result
        continuation = body.get("continuation")
        if continuation is None:
            raise MalformedAnswerError(
                f"{function_name} answered 206 without a continuation",
                status_code=status,
                summary=merged,
            )
        finished = part["ok"] + part["no_data"] + len(part["failed"])
        if finished == 0 and len(part["remaining"]) >= previous_remaining:
            raise NoProgressError(
                f"{function_name} answered 206 but finished no item "
                f"({len(part['remaining'])} remaining); invoking again would loop",
                status_code=status,
                summary=merged,
                continuation=continuation,
            )
        event = json.dumps({"run_id": run_id, "continuation": continuation}).encode()
    raise InvocationLimitError(
        f"{function_name} still had {len(parts[-1]['remaining'])} item(s) remaining after "
        f"{max_invocations} invocations; raise max_invocations, or invoke again with the "
        "run_id and this error's continuation",
        status_code=206,
        summary=_merge(parts),
        continuation=continuation,
    )
