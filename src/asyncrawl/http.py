"""HTTP as the engine sees it: a Request, a Response, and the Fetcher that turns one into the other.

:class:`AiohttpFetcher` is the real one: one ``aiohttp.ClientSession`` per run (pooling,
keep-alive), created and closed inside the running loop, with a per-attempt timeout (one timer
for all attempts: :mod:`asyncrawl.watchdog`), and errors whose text never carries a secret
query parameter.
"""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Protocol, Self, runtime_checkable
from urllib.parse import urlencode, urlsplit

import aiohttp

from .errors import AttemptTimeout, FetchError, TransportError
from .redact import redact_url
from .watchdog import AttemptWatchdog

__all__ = [
    "IDEMPOTENT_METHODS",
    "AiohttpFetcher",
    "Fetcher",
    "Request",
    "Response",
]


#: Methods that are safe to send twice (RFC 9110, section 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One HTTP request an item needs.

    ``secret_params`` names query parameters whose values must never be shown (they are
    masked in every URL asyncrawl prints). ``weight`` is what one attempt costs in the rate
    limiter.

    ``idempotent`` says whether sending the request twice is safe. Left ``None`` it follows
    the method (GET, HEAD, PUT, DELETE, OPTIONS and TRACE yes; POST, PATCH and anything else
    no) and reads as a bool after construction. Only idempotent requests are hedged, and a
    non-idempotent one is not sent again after an attempt that may have reached the upstream.
    Set it to ``True`` for a POST that is safe to repeat (a search, a GraphQL query).
    """

    url: str
    method: str = "GET"
    # Not in the dataclass repr: it may hold a secret. __repr__ shows display_url instead.
    params: Mapping[str, str] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    secret_params: frozenset[str] = frozenset()
    weight: int = 1
    idempotent: bool | None = None

    def __post_init__(self) -> None:
        if self.idempotent is None:
            # Frozen: set through object.__setattr__, once, at construction.
            object.__setattr__(self, "idempotent", self.method.upper() in IDEMPOTENT_METHODS)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.display_url})"

    @property
    def display_url(self) -> str:
        """The URL with its query, secrets masked: safe to log."""
        if not self.params:
            return redact_url(self.url, self.secret_params)
        return redact_url(f"{self.url}?{urlencode(dict(self.params))}", self.secret_params)

    @property
    def host(self) -> str:
        """The host this request goes to (the key of the per-host concurrency limit)."""
        return _netloc(self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A complete HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Seconds from sending to the end of the body.
    elapsed: float = 0.0


@runtime_checkable
class Fetcher(Protocol):
    """Sends one request and returns the complete answer.

    Raises :class:`asyncrawl.errors.TransportError` when no complete answer arrived and
    :class:`asyncrawl.errors.AttemptTimeout` when ``timeout`` seconds passed first.
    """

    async def fetch(self, request: Request, *, timeout: float) -> Response: ...


class AiohttpFetcher:
    """The real Fetcher: one pooled ``aiohttp.ClientSession`` for a whole run.

    Use it as an async context manager inside the running loop; the session is created on
    entry and closed on exit, so nothing outlives the loop (a warm Lambda container runs each
    invocation in a fresh loop). Errors never carry the raw URL: aiohttp puts the request URL,
    query string and all, into its exception text, and OpenDART's key travels in the query.
    """

    def __init__(self, *, pool_size: int = 100, user_agent: str = "asyncrawl/0.1") -> None:
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._watchdog = AttemptWatchdog()

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._pool_size, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Per-attempt timeouts are applied in fetch(); the session itself never times out.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": self._user_agent},
            raise_for_status=False,
        )
        # aiohttp silently sends an idempotent request again when a pooled connection turns
        # out to be closed or reset. That second send bypasses the rate limiter (the upstream
        # counts it, we would not) and hides a reset from the circuit breaker, so it is turned
        # off: every attempt is one request, and retrying is the retry policy's job.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        self._watchdog.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        """Send ``request``; raise TransportError or AttemptTimeout when no full answer came."""
        session = self._session
        if session is None:
            raise RuntimeError("AiohttpFetcher is not open: use 'async with AiohttpFetcher()'")
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AiohttpFetcher.fetch must run in a task")
        # The timeout covers connecting, sending and reading the whole body.
        self._watchdog.watch(task, timeout)
        try:
            async with session.request(
                request.method,
                request.url,
                params=request.params or None,
                headers=request.headers or None,
                data=request.body,
            ) as answer:
                body = await answer.read()
                return Response(
                    status=answer.status,
                    headers=answer.headers,
                    body=body,
                    elapsed=loop.time() - started,
                )
        except asyncio.CancelledError:
            if not self._watchdog.expired(task):
                raise
            failure = _fetch_error(TimeoutError(), request.display_url, timeout)
        except (TimeoutError, aiohttp.ClientError) as error:
            # The safe URL is built only on failure: it costs more than the rest of an attempt.
            failure = _fetch_error(error, request.display_url, timeout)
        finally:
            self._watchdog.release(task)
        # Raised here, outside the except block, so that the error links to nothing: aiohttp's
        # exceptions carry the raw URL (key and all) in their text and request_info, and
        # `raise ... from None` only hides them from tracebacks; they stay in __context__,
        # where error reporters and debuggers still find them.
        raise failure


def _fetch_error(error: BaseException, shown: str, timeout: float) -> FetchError:
    """The FetchError for a failed attempt, built from redacted text only."""
    if isinstance(error, TimeoutError):
        message = f"no answer within {timeout:g}s from {shown}"
        return AttemptTimeout(message, url=shown, status="timeout")
    if isinstance(error, aiohttp.ClientPayloadError):
        message = f"answer cut short from {shown}"
        return TransportError(message, url=shown, status="truncated")
    if isinstance(error, aiohttp.ServerDisconnectedError):
        message = f"server closed the connection without answering: {shown}"
        return TransportError(message, url=shown, status="connection_reset")
    if isinstance(error, aiohttp.ClientConnectorError):
        status = _connect_status(error.os_error)
        return TransportError(f"cannot connect ({status}) to {shown}", url=shown, status=status)
    if isinstance(error, aiohttp.ClientOSError):
        status = _connect_status(error)
        return TransportError(f"{status} from {shown}", url=shown, status=status)
    message = f"{type(error).__name__} from {shown}"
    return TransportError(message, url=shown, status="transport_error")


@functools.lru_cache(maxsize=256)
def _netloc(url: str) -> str:
    # Cached: the engine asks every attempt's host, and most runs use a handful of URLs.
    return urlsplit(url).netloc


def _connect_status(error: OSError) -> str:
    """A short accounting status for a socket-level error."""
    if error.errno == errno.ECONNREFUSED:
        return "connection_refused"
    if error.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "connection_reset"
    return "connection_error"
