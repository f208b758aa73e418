"""What a Lambda invocation is asked to do: the function's environment and the event.

:func:`settings_from_env` reads the environment once per cold start into
:class:`HandlerSettings` (the run layer's settings, plus the job's own from
``job.configure``); :func:`parse_event` reads each event into a :class:`CrawlEvent`. Both
refuse anything malformed with a message that names the variable or the event field and says
how to fix it: :class:`~asyncrawl.errors.ConfigError` for the environment (the function is
misconfigured: answer 500), :class:`EventError` for the event (the caller sent a bad event:
answer 400).

The run layer's event keys (all optional; ``null`` counts as absent; ``null`` or ``{}`` as a
whole means "everything from the environment")::

    run_id        [A-Za-z0-9._-]{1,64}; default: a fresh id (payload-less: one per day)
    continuation  exactly what an earlier answer returned

Every other key belongs to the job (``CRAWL_JOB``; the OpenDART job reads ``companies``,
``years``, ``crawler_type`` and a Step Functions batch's ``Items``); a key neither knows is
a 400. Before any of that, the whole event is checked: JSON types only, at most
:data:`MAX_DEPTH` levels deep, :data:`MAX_NODES` values, strings of at most
:data:`MAX_STRING` characters, integers within +-2**53 (a JSON number a JavaScript or
orjson reader keeps exactly), finite floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from ..limiter import DEFAULT_RATES, Rate
from ..runs.continuation import MAX_TOKEN_BYTES, RUN_ID_PATTERN
from ..runs.job import Job, get_job

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_STRING",
    "RUN_KEYS",
    "CrawlEvent",
    "EventError",
    "HandlerSettings",
    "check_json",
    "parse_event",
    "settings_from_env",
]

#: The run layer's own event keys.
RUN_KEYS = ("run_id", "continuation")
#: Nesting levels an event may have (a company row sits at depth 3).
MAX_DEPTH = 16
#: Values (objects, lists, scalars) an event may hold in all.
MAX_NODES = 500_000
#: Characters one string may have (a continuation token is the longest).
MAX_STRING = MAX_TOKEN_BYTES + 1024
_MAX_INT = 2**53
#: The NAT gateway idle timeout a synchronous invoke must answer within (LAMBDA-HANG.md).
_NAT_IDLE_SECONDS = 350
_MAX_CONCURRENCY = 1000


class EventError(ConfigError):
    """The invocation event is malformed; the message names the event field and the fix."""


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return key if parent == "event" else f"{parent}.{key}"


def check_json(event: object) -> None:
    """Refuse an event that is not plain, bounded JSON (see the module docstring).

    Iterative, so a deeply nested event cannot exhaust the stack; raises :class:`EventError`
    naming the path of the first offending value.
    """
    stack: list[tuple[object, str, int]] = [(event, "event", 0)]
    nodes = 0
    while stack:
        value, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise EventError("event", f"holds more than {MAX_NODES} values; send less per call")
        if depth > MAX_DEPTH:
            raise EventError(where, f"is nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not -_MAX_INT <= value <= _MAX_INT:
                raise EventError(where, "is an integer too large to be read exactly; use a string")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise EventError(where, "is not a finite number")
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                raise EventError(where, f"is longer than {MAX_STRING} characters")
        elif isinstance(value, dict):
            for key, child in value.items():
                if not isinstance(key, str):
                    raise EventError(where, "has a key that is not a string")
                if len(key) > 256:
                    raise EventError(where, "has a key longer than 256 characters")
                stack.append((child, _path(where, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((child, _path(where, i), depth + 1) for i, child in enumerate(value))
        else:
            raise EventError(where, f"is a {type(value).__name__}, not a JSON value")


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSettings:
    """The function's configuration, read from its environment once per cold start.

    Error messages name the environment variable behind each field.
    """

    #: The job's registered name (``CRAWL_JOB``, default ``opendart``).
    job_name: str = "opendart"
    #: The output bucket (``S3_BUCKET``).
    s3_bucket: str
    #: The output prefix inside the bucket, without slashes at either end (``S3_PREFIX``).
    s3_prefix: str = ""
    #: Rate windows that all hold at once (``RATE``).
    rates: tuple[Rate, ...] = DEFAULT_RATES
    #: Requests in flight at most (``CONCURRENCY``).
    concurrency: int = 16
    #: The longest one invocation may work before answering (``MAX_SYNC_SECONDS``).
    max_sync_seconds: float = 240.0
    #: Seconds one HTTP attempt may take (``ATTEMPT_TIMEOUT``); None: derived from the budget.
    attempt_timeout: float | None = None
    #: Send a second copy of an idempotent request after this many seconds (``HEDGE_AFTER``).
    hedge_after: float | None = None
    #: The deployment secret that signs continuation tokens (``CONTINUATION_SECRET``);
    #: None: a random key per run, kept in the run's ``_meta/``.
    continuation_secret: str | None = field(default=None, repr=False)
    #: The job's own settings (``job.configure(environ)``).
    job_config: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.s3_bucket, str) or not 3 <= len(self.s3_bucket) <= 63:
            raise ConfigError("S3_BUCKET", "must be the output bucket's name (3 to 63 characters)")
        if "/" in self.s3_bucket or self.s3_bucket.startswith("s3:"):
            raise ConfigError(
                "S3_BUCKET", "must be a bare bucket name; put the folder in S3_PREFIX"
            )
        object.__setattr__(self, "s3_prefix", self.s3_prefix.strip("/"))
        if not self.rates or not all(isinstance(r, Rate) for r in self.rates):
            raise ConfigError("RATE", "give at least one N/DURATION window, e.g. 900/1m,18000/1d")
        object.__setattr__(self, "rates", tuple(self.rates))
        if type(self.concurrency) is not int or not 1 <= self.concurrency <= _MAX_CONCURRENCY:
            raise ConfigError(
                "CONCURRENCY", f"{self.concurrency!r}: use a whole number 1..{_MAX_CONCURRENCY}"
            )
        seconds = self.max_sync_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ConfigError("MAX_SYNC_SECONDS", f"{seconds!r} is not a number of seconds")
        if not (math.isfinite(seconds) and 0 < seconds < _NAT_IDLE_SECONDS):
            raise ConfigError(
                "MAX_SYNC_SECONDS",
                f"{seconds!r}: use more than 0 and less than {_NAT_IDLE_SECONDS} seconds "
                "(a synchronous answer must beat the NAT gateway's 350 s idle timeout), "
                "e.g. 240",
            )
        object.__setattr__(self, "max_sync_seconds", float(seconds))
        for name, env, high in (
            ("attempt_timeout", "ATTEMPT_TIMEOUT", 300.0),
            ("hedge_after", "HEDGE_AFTER", 300.0),
        ):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= high):
                raise ConfigError(
                    env, f"{value!r}: use a number of seconds above 0, at most {high:g}"
                )

    @property
    def out_uri(self) -> str:
        """The output root, ``s3://bucket/prefix`` (``s3://bucket`` without a prefix)."""
        return f"s3://{self.s3_bucket}/{self.s3_prefix}".rstrip("/")


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # CloudFormation and SAM pass optional parameters as "": treat that as unset.
    value = environ.get(name, "").strip()
    return value or None


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = _env(environ, name)
    if text is None:
        return default
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 9:
        raise ConfigError(name, f"{text!r} is not a whole number, e.g. {default}")
    return int(text)


def _env_seconds(environ: Mapping[str, str], name: str, default: float | None) -> float | None:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        example = f"{default:g}" if default is not None else "5"
        raise ConfigError(name, f"{text!r} is not a number of seconds, e.g. {example}")
    return value


def _env_list(environ: Mapping[str, str], name: str) -> list[str]:
    text = _env(environ, name)
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]


def settings_from_env(environ: Mapping[str, str]) -> HandlerSettings:
    """The handler's settings from ``environ`` (``os.environ`` in the function).

    Raises :class:`~asyncrawl.errors.ConfigError` naming the variable and the fix.
    """
    bucket = _env(environ, "S3_BUCKET")
    if bucket is None:
        raise ConfigError("S3_BUCKET", "is not set; set it to the output bucket's name")
    job_name = _env(environ, "CRAWL_JOB") or "opendart"
    job = get_job(job_name, modules=_env_list(environ, "CRAWL_JOB_MODULES"))
    rate_specs = _env_list(environ, "RATE")
    rates = tuple(Rate.parse(spec, field="RATE") for spec in rate_specs) or DEFAULT_RATES
    max_sync = _env_seconds(environ, "MAX_SYNC_SECONDS", 240.0)
    assert max_sync is not None
    return HandlerSettings(
        job_name=job_name,
        s3_bucket=bucket,
        s3_prefix=_env(environ, "S3_PREFIX") or "",
        rates=rates,
        concurrency=_env_int(environ, "CONCURRENCY", 16),
        max_sync_seconds=max_sync,
        attempt_timeout=_env_seconds(environ, "ATTEMPT_TIMEOUT", None),
        hedge_after=_env_seconds(environ, "HEDGE_AFTER", None),
        continuation_secret=_env(environ, "CONTINUATION_SECRET"),
        job_config=job.configure(environ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlEvent:
    """One invocation's event: the run layer's fields, and the job's fields as given."""

    #: The run to continue or start; None means "start a fresh run".
    run_id: str | None = None
    #: The continuation token exactly as given (checked for shape; verified with the store).
    continuation: str | None = None
    #: The job's own fields (``null`` values dropped).
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: True for ``null`` or ``{}``: the old ``payload=None`` ("everything from the environment").
    payload_less: bool = False


def _run_id(value: object) -> str:
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value) or value in (".", ".."):
        shown = repr(value) if len(repr(value)) <= 80 else "the value"
        raise EventError(
            "run_id", f"{shown}: use 1 to 64 characters of A-Z a-z 0-9 . _ - (or leave it out)"
        )
    return value


def parse_event(event: object, job: Job[Any]) -> CrawlEvent:
    """The work ``event`` asks for; raises :class:`EventError` naming the field and the fix."""
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise EventError("event", "must be a JSON object (or null for the defaults)")
    check_json(event)
    known = (*RUN_KEYS, *job.event_keys)
    unknown = sorted(str(key) for key in event if key not in known and key != "BatchInput")
    if unknown:
        raise EventError(
            unknown[0],
            f"unknown event key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"the keys are {', '.join(known)}",
        )
    given: Mapping[str, Any] = MappingProxyType({k: v for k, v in event.items() if v is not None})
    run_id = _run_id(given["run_id"]) if "run_id" in given else None
    token = given.get("continuation")
    if token is not None and not isinstance(token, str):
        raise EventError("continuation", "must be the string an earlier answer returned")
    fields = {k: v for k, v in given.items() if k in job.event_keys}
    return CrawlEvent(
        run_id=run_id,
        continuation=token,
        fields=fields,
        payload_less=not given,
    )
