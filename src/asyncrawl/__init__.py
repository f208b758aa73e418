"""asyncrawl: crawl many targets concurrently behind a rate limiter and a retry policy.

The public names are imported lazily, so that ``asyncrawl.aws.caller`` can be imported with
boto3 alone (in Amazon MWAA, beside Airflow's pinned botocore) without pulling in aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RATES",
    "AiohttpFetcher",
    "AsyncrawlError",
    "AttemptTimeout",
    "BlobStore",
    "BodyTooLarge",
    "BreakerConfig",
    "ConfigError",
    "ContinuationError",
    "Crawl",
    "CrawlConfig",
    "DirectoryStore",
    "Failed",
    "Fatal",
    "FetchError",
    "Fetcher",
    "InputError",
    "ItemCodec",
    "ItemResult",
    "NoData",
    "Ok",
    "Outcome",
    "Rate",
    "RateLimiter",
    "RecordSink",
    "Request",
    "Response",
    "RetryPolicy",
    "RunSummary",
    "S3Store",
    "Sink",
    "SinkError",
    "SlowDown",
    "Source",
    "Transient",
    "TransportError",
    "Unusable",
    "UpstreamFatalError",
    "classify_http_status",
    "deliver",
    "open_store",
    "parse_retry_after",
    "run",
]

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AiohttpFetcher": "asyncrawl.http",
    "AsyncrawlError": "asyncrawl.errors",
    "AttemptTimeout": "asyncrawl.errors",
    "BlobStore": "asyncrawl.sinks.base",
    "BreakerConfig": "asyncrawl.breaker",
    "ConfigError": "asyncrawl.errors",
    "ContinuationError": "asyncrawl.errors",
    "Crawl": "asyncrawl.engine",
    "CrawlConfig": "asyncrawl.engine",
    "DEFAULT_RATES": "asyncrawl.limiter",
    "Failed": "asyncrawl.outcomes",
    "Fatal": "asyncrawl.outcomes",
    "FetchError": "asyncrawl.errors",
    "Fetcher": "asyncrawl.http",
    "InputError": "asyncrawl.errors",
    "ItemCodec": "asyncrawl.source",
    "ItemResult": "asyncrawl.results",
    "NoData": "asyncrawl.outcomes",
    "Ok": "asyncrawl.outcomes",
    "Outcome": "asyncrawl.outcomes",
    "Rate": "asyncrawl.limiter",
    "RateLimiter": "asyncrawl.limiter",
    "Request": "asyncrawl.http",
    "Response": "asyncrawl.http",
    "RetryPolicy": "asyncrawl.retry",
    "RunSummary": "asyncrawl.summary",
    "Sink": "asyncrawl.sinks.base",
    "SinkError": "asyncrawl.errors",
    "SlowDown": "asyncrawl.outcomes",
    "Source": "asyncrawl.source",
    "Transient": "asyncrawl.outcomes",
    "TransportError": "asyncrawl.errors",
    "Unusable": "asyncrawl.outcomes",
    "UpstreamFatalError": "asyncrawl.errors",
    "deliver": "asyncrawl.pipeline",
    "run": "asyncrawl.engine",
    "BodyTooLarge": "asyncrawl.errors",
    "DirectoryStore": "asyncrawl.sinks.directory",
    "RecordSink": "asyncrawl.sinks.record_sink",
    "S3Store": "asyncrawl.sinks.s3",
    "classify_http_status": "asyncrawl.outcomes",
    "open_store": "asyncrawl.sinks.store",
    "parse_retry_after": "asyncrawl.outcomes",
}

if TYPE_CHECKING:
    from .breaker import BreakerConfig as BreakerConfig
    from .engine import Crawl as Crawl
    from .engine import CrawlConfig as CrawlConfig
    from .engine import run as run
    from .errors import (
        AsyncrawlError as AsyncrawlError,
    )
    from .errors import (
        AttemptTimeout as AttemptTimeout,
    )
    from .errors import BodyTooLarge as BodyTooLarge
    from .errors import (
        ConfigError as ConfigError,
    )
    from .errors import (
        ContinuationError as ContinuationError,
    )
    from .errors import (
        FetchError as FetchError,
    )
    from .errors import (
        InputError as InputError,
    )
    from .errors import (
        SinkError as SinkError,
    )
    from .errors import (
        TransportError as TransportError,
    )
    from .errors import (
        UpstreamFatalError as UpstreamFatalError,
    )
    from .http import (
        AiohttpFetcher as AiohttpFetcher,
    )
    from .http import (
        Fetcher as Fetcher,
    )
    from .http import (
        Request as Request,
    )
    from .http import (
        Response as Response,
    )
    from .limiter import DEFAULT_RATES as DEFAULT_RATES
    from .limiter import Rate as Rate
    from .limiter import RateLimiter as RateLimiter
    from .outcomes import (
        Failed as Failed,
    )
    from .outcomes import (
        Fatal as Fatal,
    )
    from .outcomes import (
        NoData as NoData,
    )
    from .outcomes import (
        Ok as Ok,
    )
    from .outcomes import (
        Outcome as Outcome,
    )
    from .outcomes import (
        SlowDown as SlowDown,
    )
    from .outcomes import (
        Transient as Transient,
    )
    from .outcomes import Unusable as Unusable
    from .outcomes import classify_http_status as classify_http_status
    from .outcomes import parse_retry_after as parse_retry_after
    from .pipeline import deliver as deliver
    from .results import ItemResult as ItemResult
    from .retry import RetryPolicy as RetryPolicy
    from .sinks.base import BlobStore as BlobStore
    from .sinks.base import Sink as Sink
    from .sinks.directory import DirectoryStore as DirectoryStore
    from .sinks.record_sink import RecordSink as RecordSink
    from .sinks.s3 import S3Store as S3Store
    from .sinks.store import open_store as open_store
    from .source import ItemCodec as ItemCodec
    from .source import Source as Source
    from .summary import RunSummary as RunSummary


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncrawl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
