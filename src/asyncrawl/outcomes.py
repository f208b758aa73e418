"""What one answer means: the vocabulary between a Source and the engine.

A Source reads an answer (status, headers, body) and returns one of these; the engine acts on
them and never on an upstream's own codes:

- ``Ok(payload, follow=...)``: the item is done and has data; ``follow`` holds new items found
  in the answer (next pages, links), which the engine plans as well (deduplicated by key).
- ``NoData(follow=...)``: the item is done and has nothing (never retried, never an error).
- ``Transient(reason, retry_after)``: try this item again after a back-off.
- ``SlowDown(reason, retry_after)``: the upstream asks everyone to pause; this item is retried.
- ``Fatal(reason)``: the whole run must stop now (bad key, blocked, quota gone).
- ``Failed(reason)``: this item cannot succeed; do not retry it.
- ``Unusable(reason)``: the answer is not what the Source expects (HTML where JSON was
  expected, unreadable JSON, a 404 from a wrong base URL). Retried like ``Transient``, but a
  streak of them with no usable answer between ends the run: the fault is systemic.

Each carries ``status``, a short string counted in the run summary (an upstream code such as
``"013"``, or ``"http_503"``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Failed",
    "Fatal",
    "FinalOutcome",
    "NoData",
    "Ok",
    "Outcome",
    "SlowDown",
    "Transient",
    "Unusable",
    "classify_http_status",
    "parse_retry_after",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ok:
    """The item finished with data; ``payload`` is what the sink stores."""

    payload: Any
    status: str = "ok"
    #: New items found in this answer; the engine crawls those whose key is new to the run.
    follow: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NoData:
    """The item finished and the upstream has nothing for it."""

    status: str = "no_data"
    reason: str = "no data"
    #: New items found in this answer (an empty page may still link on).
    follow: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Transient:
    """A passing failure: retry this item after a back-off (or ``retry_after`` seconds)."""

    reason: str
    status: str = "transient"
    retry_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowDown:
    """The upstream's limit signal: every worker pauses together, then this item is retried."""

    reason: str
    status: str = "slow_down"
    retry_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fatal:
    """The run must stop at once; nothing is retried."""

    reason: str
    status: str = "fatal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """This item cannot succeed (bad input, missing file); it is not retried."""

    reason: str
    status: str = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unusable:
    """An answer the Source cannot use (wrong format, wrong endpoint): retried like
    :class:`Transient`, and ``BreakerConfig.unusable_streak`` of them in a row stop the run.
    """

    reason: str
    status: str = "unusable"
    retry_after: float | None = None


Outcome = Ok | NoData | Transient | SlowDown | Fatal | Failed | Unusable
#: The outcomes an item can end with.
FinalOutcome = Ok | NoData | Failed


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` for a missing or unreadable header, and never a negative number.
    ``now`` is the wall-clock time (seconds since the epoch) an HTTP date is measured from.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_http_status(status: int, headers: Mapping[str, str]) -> Outcome | None:
    """The generic meaning of an HTTP status, or ``None`` when the body must decide.

    429 and 503 with ``Retry-After`` are a limit signal (``SlowDown``); 408, 425, 500, 502,
    503, 504 and other 5xx are transient; 401 and 403 are fatal for the run; other 4xx fail the
    item. Sources call this first and read the body only when it returns ``None``.
    """
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429 or (status == 503 and retry_after is not None):
        return SlowDown(reason=f"HTTP {status}", status=f"http_{status}", retry_after=retry_after)
    if status in (408, 425) or status >= 500:
        return Transient(reason=f"HTTP {status}", status=f"http_{status}", retry_after=retry_after)
    if status in (401, 403):
        return Fatal(reason=f"HTTP {status}: access refused", status=f"http_{status}")
    if status >= 400:
        return Failed(reason=f"HTTP {status}", status=f"http_{status}")
    return None
