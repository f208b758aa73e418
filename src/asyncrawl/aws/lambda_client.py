"""A boto3 Lambda client safe for long synchronous invokes (no retries, TCP keep-alive).

boto3 and botocore only: it runs in Amazon MWAA beside Airflow's pinned botocore.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import boto3
from botocore.config import Config

from asyncrawl.aws._keepalive import install_socket_options, keepalive_socket_options
from asyncrawl.errors import ConfigError

__all__ = ["NAT_IDLE_TIMEOUT_S", "check_client", "lambda_client", "require_int", "seconds"]

#: A NAT gateway drops a TCP flow after this many idle seconds, silently for a reading client.
NAT_IDLE_TIMEOUT_S = 350
#: Lambda's longest function timeout.
_MAX_FUNCTION_TIMEOUT_S = 900.0
#: How much longer than the function may run the client waits for its answer.
_READ_TIMEOUT_MARGIN_S = 60.0
_CONNECT_TIMEOUT_S = 5.0
#: Linux's upper bound for TCP_KEEPCNT.
_MAX_KEEPALIVE_COUNT = 127


def seconds(field: str, value: float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(field, f"must be a number of seconds or a timedelta, not {value!r}")
    return float(value)


def require_int(field: str, value: object, low: int, high: int | None, fix: str) -> int:
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


def check_client(client: Any) -> None:
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
    timeout = seconds("function_timeout", function_timeout)
    if not 0 < timeout <= _MAX_FUNCTION_TIMEOUT_S:
        raise ConfigError(
            "function_timeout",
            f"is {timeout:g} s; pass the Lambda function's timeout (1 to 900 seconds)",
        )
    below_nat = NAT_IDLE_TIMEOUT_S - 1
    idle = require_int(
        "keepalive_idle",
        keepalive_idle,
        1,
        below_nat,
        f"the first probe must leave before the NAT's {NAT_IDLE_TIMEOUT_S} s idle limit; "
        "use 1 to 349 (60 is a good value)",
    )
    interval = require_int(
        "keepalive_interval",
        keepalive_interval,
        1,
        below_nat,
        f"probes must come more often than the NAT's {NAT_IDLE_TIMEOUT_S} s idle limit; "
        "use 1 to 349 (15 is a good value)",
    )
    count = require_int(
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
        read_timeout = seconds("read_timeout", config_overrides["read_timeout"])
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
