"""A BlobStore on an S3 bucket and prefix, through aioboto3."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, SinkError
from ..redact import redact_text
from .layout import validate_key, validate_prefix

__all__ = ["S3Store"]

# S3's bucket naming rules, loosely: enough to catch a path or a typo before any request.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Retry mode, chosen on purpose: botocore's "standard" mode retries throttling, 5xx and
# connection errors with full-jitter back-off, and its client-wide retry quota stops retrying
# once many calls fail -- an S3 outage then fails fast instead of multiplying every wait.
# ("legacy", the default, makes 5 attempts and retries fewer errors; "adaptive" adds a
# client-side rate limiter we do not want beside our own.) Three attempts in all: retrying a
# PutObject is safe (same bytes, same key), and more attempts only add waiting that the
# caller's time limit (see sinks.bounded) would cut anyway.
_ATTEMPTS = 3
# Short, fixed socket timeouts: a small PutObject or GetObject answers in well under a second;
# botocore's 60 s read timeout x attempts is what let a stalled S3 hold a run for minutes.
_CONNECT_TIMEOUT = 2.0
_READ_TIMEOUT = 5.0
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional put lost to an object already there (412), or to a concurrent conditional
# put of the same key (409): either way another writer holds the key.
_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class S3Store:
    """Objects under ``s3://{bucket}/{prefix}``; a key ``a/b`` is the object ``{prefix}/a/b``.

    Use it as an async context manager: the aioboto3 client is created on ``__aenter__``, in
    the running event loop, and closed on exit (or :meth:`aclose`). A warm Lambda container
    runs each invocation in a fresh loop, so nothing bound to a loop outlives one ``async
    with``; the store may be entered again later, in another loop, and opens a new client.

    Endpoint, region and credentials come from boto3's own settings (``AWS_ENDPOINT_URL_S3``,
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, the credential chain), so a local S3 works without
    code changes. Puts and gets run at most ``max_concurrency`` at a time. Every failure
    surfaces as :class:`~asyncrawl.errors.SinkError` naming the bucket and key.

    Each call waits at most about ``max_attempts`` x (``connect_timeout`` + ``read_timeout``)
    plus back-off; wrap the store in :func:`~asyncrawl.sinks.bounded` to end every call by a
    deadline as well.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        max_concurrency: int = 8,
        connect_timeout: float = _CONNECT_TIMEOUT,
        read_timeout: float = _READ_TIMEOUT,
        max_attempts: int = _ATTEMPTS,
        session: aioboto3.Session | None = None,
    ) -> None:
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(
                "bucket", f"{bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"
            )
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix, field="prefix")
        if isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ConfigError(
                "max_concurrency", f"must be a positive integer, not {max_concurrency!r}"
            )
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if isinstance(value, bool) or not 0 < value <= 300:
                raise ConfigError(name, f"must be between 0 and 300 seconds, not {value!r}")
        if isinstance(max_attempts, bool) or not 1 <= max_attempts <= 10:
            raise ConfigError("max_attempts", f"must be 1 to 10, not {max_attempts!r}")
        #: Seconds to open a connection, and to wait for each read (botocore's socket limits).
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        #: Attempts per call in all, first included (botocore "standard" retry mode).
        self.max_attempts = max_attempts
        #: The bucket every object goes to.
        self.bucket = bucket
        #: The key prefix under the bucket, without leading or trailing ``/`` ("" for none).
        self.prefix = prefix
        #: How many requests may be in flight at once.
        self.max_concurrency = max_concurrency
        self._session = session
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix``, for messages and summaries."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        """The full S3 object key that holds ``key`` (after validating the key)."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def __aenter__(self) -> Self:
        if self._client is not None:
            raise RuntimeError(f"{self!r} is already open")
        # A fresh session per opening unless one was given: a session caches credentials and
        # locks that may belong to the loop of an earlier invocation.
        session = self._session if self._session is not None else aioboto3.Session()
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=max(10, self.max_concurrency),
        )
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(session.client("s3", config=config))
        except (BotoCoreError, ClientError) as exc:
            await stack.aclose()
            raise SinkError(
                f"could not open an S3 client for {self.uri}: {_describe(exc)}"
            ) from None
        self._stack = stack
        self._slots = asyncio.Semaphore(self.max_concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client (idempotent); the store can be entered again afterwards."""
        stack, self._stack = self._stack, None
        self._client = None
        self._slots = None
        if stack is not None:
            await stack.aclose()

    def _open(self) -> tuple[Any, asyncio.Semaphore]:
        if self._client is None or self._slots is None:
            raise RuntimeError(f"{self!r} is not open; use 'async with S3Store(...) as store'")
        return self._client, self._slots

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """PutObject ``data`` at ``key`` (atomic on S3); SinkError naming the key on failure."""
        object_key = self.object_key(key)
        client, slots = self._open()
        async with slots:
            try:
                await client.put_object(
                    Bucket=self.bucket, Key=object_key, Body=data, ContentType=content_type
                )
            except (BotoCoreError, ClientError, OSError) as exc:
                raise SinkError(
                    f"could not write s3://{self.bucket}/{object_key}: {_describe(exc)}"
                ) from None

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """PutObject with ``If-None-Match: *``: ``True`` if stored, ``False`` if ``key`` exists.

        S3 decides atomically: of two writers exactly one gets ``True``.
        """
        object_key = self.object_key(key)
        client, slots = self._open()
        async with slots:
            try:
                await client.put_object(
                    Bucket=self.bucket,
                    Key=object_key,
                    Body=data,
                    ContentType=content_type,
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _code(exc) in _TAKEN:
                    return False
                raise SinkError(
                    f"could not write s3://{self.bucket}/{object_key}: {_describe(exc)}"
                ) from None
            except (BotoCoreError, OSError) as exc:
                raise SinkError(
                    f"could not write s3://{self.bucket}/{object_key}: {_describe(exc)}"
                ) from None
        return True

    async def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, or ``None`` when there is no such object."""
        object_key = self.object_key(key)
        client, slots = self._open()
        async with slots:
            try:
                response = await client.get_object(Bucket=self.bucket, Key=object_key)
                async with response["Body"] as body:
                    data: bytes = await body.read()
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise SinkError(
                    f"could not read s3://{self.bucket}/{object_key}: {_describe(exc)}"
                ) from None
            except (BotoCoreError, OSError) as exc:
                raise SinkError(
                    f"could not read s3://{self.bucket}/{object_key}: {_describe(exc)}"
                ) from None
        return data

    async def list(self, prefix: str) -> AsyncIterator[str]:
        """Every key that starts with ``prefix``, in S3's order (sorted by UTF-8 bytes).

        Pages through ListObjectsV2; keys are yielded relative to the store's prefix.
        """
        validate_prefix(prefix)
        client, _slots = self._open()
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for entry in page.get("Contents", ()):
                    yield entry["Key"][len(base) :]
        except (BotoCoreError, ClientError, OSError) as exc:
            raise SinkError(
                f"could not list s3://{self.bucket}/{base}{prefix}: {_describe(exc)}"
            ) from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    # The error code and S3's message, never the request: signed headers and URLs stay out.
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = f"{error.get('Code', 'error')} ({error.get('Message', '')}, HTTP {status})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact_text(text)
