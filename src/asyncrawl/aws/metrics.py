"""One CloudWatch Embedded Metric Format (EMF) record per invocation.

An EMF record is a JSON log line that CloudWatch Logs turns into metrics by itself: no
``PutMetricData`` call, no extra permission, no latency in the handler. Its ``_aws`` member
holds the ``Timestamp`` (milliseconds since the epoch) and one metric directive (namespace,
dimension sets, metric names and units); the values sit at the top level under the same names.

The only dimension is ``CrawlerType``: every extra dimension (a run id, say) would create a
new metric series per value, each billed, and none of them useful for an alarm.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import orjson

__all__ = ["METRIC_UNITS", "emf_record", "emit_emf"]

#: Each metric the record carries and its CloudWatch unit, in the order they are listed.
METRIC_UNITS: Mapping[str, str] = {
    "ItemsOk": "Count",
    "ItemsNoData": "Count",
    "ItemsFailed": "Count",
    "ItemsRemaining": "Count",
    "Requests": "Count",
    "Retries": "Count",
    "SlowDowns": "Count",
    "Fatal": "Count",
    "BadRequest": "Count",
    "AlreadyDone": "Count",
}


def emf_record(
    *,
    crawler_type: str,
    ok: int,
    no_data: int,
    failed: int,
    remaining: int,
    requests: int,
    retries: int,
    slowdowns: int,
    fatal: bool,
    bad_request: bool = False,
    already_done: int = 0,
    namespace: str = "asyncrawl",
    properties: Mapping[str, Any] | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """The EMF record for one invocation's counts.

    ``slowdowns`` counts the upstream's "slow down" answers (OpenDART status 020); ``fatal`` is
    recorded as 1 or 0 so an alarm can sum it, and so is ``bad_request`` (a 400: every answer
    has its record). ``already_done`` counts items a replayed or retried invocation found
    finished by an earlier one (not fetched again). ``properties`` (e.g. ``run_id``) are added as
    plain members: searchable in Logs Insights, not metrics, not dimensions.
    ``timestamp_ms`` defaults to now.
    """
    values = {
        "ItemsOk": ok,
        "ItemsNoData": no_data,
        "ItemsFailed": failed,
        "ItemsRemaining": remaining,
        "Requests": requests,
        "Retries": retries,
        "SlowDowns": slowdowns,
        "Fatal": int(fatal),
        "BadRequest": int(bad_request),
        "AlreadyDone": already_done,
    }
    for name, value in values.items():
        if name not in ("Fatal", "BadRequest") and (type(value) is not int or value < 0):
            raise ValueError(f"{name}: {value!r} is not a count (an integer >= 0)")
    if not 1 <= len(namespace) <= 1024:
        raise ValueError("namespace: must be 1 to 1024 characters")
    reserved = set(values) | {"_aws", "CrawlerType"}
    extra = dict(properties or {})
    clash = reserved.intersection(extra)
    if clash:
        raise ValueError(f"properties: {sorted(clash)} would overwrite the record's own members")
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    metrics = [{"Name": name, "Unit": unit} for name, unit in METRIC_UNITS.items()]
    return {
        "_aws": {
            "Timestamp": stamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["CrawlerType"]],
                    "Metrics": metrics,
                }
            ],
        },
        "CrawlerType": crawler_type,
        **values,
        **extra,
    }


def emit_emf(record: Mapping[str, Any], stream: IO[str] | None = None) -> None:
    """Write ``record`` to ``stream`` (default: standard output) as one JSON line.

    Standard output, not a logger: CloudWatch Logs parses a line as EMF only when the whole
    line is the JSON object, and a log formatter would wrap it.
    """
    out = sys.stdout if stream is None else stream
    out.write(orjson.dumps(dict(record), default=str).decode() + "\n")
    out.flush()
