"""asyncrawl: crawl many targets concurrently behind a rate limiter and a retry policy.

The public names are imported lazily, so that ``asyncrawl.aws.caller`` can be imported with
boto3 alone (in Amazon MWAA, beside Airflow's pinned botocore) without pulling in aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AsyncrawlError": "asyncrawl.errors",
    "AttemptTimeout": "asyncrawl.errors",
    "ConfigError": "asyncrawl.errors",
    "ContinuationError": "asyncrawl.errors",
    "Failed": "asyncrawl.outcomes",
    "Fatal": "asyncrawl.outcomes",
    "FetchError": "asyncrawl.errors",
    "Fetcher": "asyncrawl.http",
    "InputError": "asyncrawl.errors",
    "ItemResult": "asyncrawl.results",
    "NoData": "asyncrawl.outcomes",
    "Ok": "asyncrawl.outcomes",
    "Outcome": "asyncrawl.outcomes",
    "Request": "asyncrawl.http",
    "Response": "asyncrawl.http",
    "SinkError": "asyncrawl.errors",
    "SlowDown": "asyncrawl.outcomes",
    "Source": "asyncrawl.source",
    "Transient": "asyncrawl.outcomes",
    "TransportError": "asyncrawl.errors",
    "UpstreamFatalError": "asyncrawl.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from .errors import (
        AsyncrawlError,
        AttemptTimeout,
        ConfigError,
        ContinuationError,
        FetchError,
        InputError,
        SinkError,
        TransportError,
        UpstreamFatalError,
    )
    from .http import Fetcher, Request, Response
    from .outcomes import Failed, Fatal, NoData, Ok, Outcome, SlowDown, Transient
    from .results import ItemResult
    from .source import Source


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncrawl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
