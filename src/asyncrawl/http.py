"""HTTP as the engine sees it: a Request, a Response, and the Fetcher that turns one into the other.

:class:`AiohttpFetcher` is the real one: one ``aiohttp.ClientSession`` per run (pooling,
keep-alive), created and closed inside the running loop, with a per-attempt timeout (one timer
for all attempts: :mod:`asyncrawl.watchdog`), and errors whose text never carries a secret
query parameter.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from ssl import SSLContext
from types import TracebackType
from typing import Any, Final, Protocol, Self, runtime_checkable
from urllib.parse import urlencode, urlsplit

import aiohttp

from .errors import AttemptTimeout, BodyTooLarge, ConfigError, FetchError, TransportError
from .redact import redact_url
from .watchdog import AttemptWatchdog

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "IDEMPOTENT_METHODS",
    "AiohttpFetcher",
    "Fetcher",
    "Request",
    "Response",
]


#: The default cap on one answer's body (``AiohttpFetcher(max_body_bytes=...)``).
DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024

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
        joiner = "&" if "?" in self.url else "?"
        return redact_url(f"{self.url}{joiner}{urlencode(dict(self.params))}", self.secret_params)

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

    Session options (all keyword-only):

    - ``pool_size``: most open connections over all hosts (0: no limit);
      ``per_host_pool``: most per host (0: no limit). The engine's ``CrawlConfig.per_host``
      limits requests in flight; these limit sockets.
    - ``user_agent``; ``headers``: default headers sent with every request (a ``User-Agent``
      here wins over ``user_agent``); ``cookies``: initial cookies (the session's cookie jar
      then keeps what servers set).
    - ``auth``: HTTP basic auth for every request, a ``(user, password)`` pair (other schemes:
      put an ``Authorization`` header in ``headers``).
    - ``proxy``: an ``http://`` proxy URL for every request; ``proxy_auth`` its credentials.
      ``trust_env=True`` reads ``HTTP(S)_PROXY``/``NO_PROXY`` and ``~/.netrc`` instead.
    - ``ssl``: ``True`` (verify certificates, the default), ``False`` (do not verify: tests
      only), an ``ssl.SSLContext`` (your own CA, a client certificate) or an
      ``aiohttp.Fingerprint``.
    - ``keepalive_timeout``: seconds an idle pooled connection is kept (default aiohttp's 15).
    - ``max_body_bytes``: the largest body accepted (default 32 MiB; ``None``: no cap). A
      larger answer ends the attempt with :class:`~asyncrawl.errors.BodyTooLarge` (status
      ``"body_too_large"``, not retried), as soon as its ``Content-Length`` or the bytes read
      so far show it, so a huge or endless body never fills memory.

    Redirects are never followed here: a 3xx answer is returned as it is, ``Location`` header
    and all. aiohttp would follow up to ten hops silently, each one skipping the rate limiter,
    the per-host slot and the counts; a Source that wants to follow them turns the target into
    a discovered item (see :func:`asyncrawl.web.redirect_target`), which the engine limits and
    counts like any other request.
    """

    def __init__(
        self,
        *,
        pool_size: int = 100,
        per_host_pool: int = 0,
        user_agent: str = "asyncrawl/0.1",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        proxy: str | None = None,
        proxy_auth: tuple[str, str] | None = None,
        ssl: bool | SSLContext | aiohttp.Fingerprint = True,
        trust_env: bool = False,
        keepalive_timeout: float | None = None,
        max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        _check_count("pool_size", pool_size, low=0)
        _check_count("per_host_pool", per_host_pool, low=0)
        if max_body_bytes is not None:
            _check_count("max_body_bytes", max_body_bytes, low=1)
        if keepalive_timeout is not None and not (
            isinstance(keepalive_timeout, int | float) and keepalive_timeout > 0
        ):
            raise ConfigError("keepalive_timeout", "must be seconds > 0, or None for the default")
        if proxy is not None and urlsplit(proxy).scheme not in ("http", "https"):
            # The value may hold credentials: the message does not repeat it.
            raise ConfigError("proxy", "must be an http:// or https:// URL, or None")
        if not isinstance(ssl, bool | SSLContext | aiohttp.Fingerprint):
            raise ConfigError(
                "ssl", "must be True, False, an ssl.SSLContext or aiohttp.Fingerprint"
            )
        self._pool_size = pool_size
        self._per_host_pool = per_host_pool
        self._headers = {"User-Agent": user_agent}
        if auth is not None:
            self._headers["Authorization"] = _basic_auth("auth", auth)
        self._headers.update(headers or {})
        self._cookies = dict(cookies or {})
        self._proxy = proxy
        self._proxy_headers = (
            None
            if proxy_auth is None
            else {"Proxy-Authorization": _basic_auth("proxy_auth", proxy_auth)}
        )
        self._ssl = ssl
        self._trust_env = trust_env
        self._keepalive_timeout = keepalive_timeout
        self._max_body = max_body_bytes
        self._session: aiohttp.ClientSession | None = None
        self._watchdog = AttemptWatchdog()

    def __repr__(self) -> str:
        # Never the headers, cookies, auth or proxy: any of them may hold a credential.
        return f"AiohttpFetcher(pool_size={self._pool_size}, max_body_bytes={self._max_body})"

    async def __aenter__(self) -> Self:
        connector_options: dict[str, Any] = {}
        if self._keepalive_timeout is not None:
            connector_options["keepalive_timeout"] = self._keepalive_timeout
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=self._per_host_pool,
            ssl=self._ssl,
            enable_cleanup_closed=True,
            **connector_options,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Per-attempt timeouts are applied in fetch(); the session itself never times out.
            timeout=aiohttp.ClientTimeout(total=None),
            headers=self._headers,
            cookies=self._cookies or None,
            trust_env=self._trust_env,
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
        """Send ``request``; raise a FetchError (or AttemptTimeout) when no full answer came."""
        session = self._session
        if session is None:
            raise RuntimeError("AiohttpFetcher is not open: use 'async with AiohttpFetcher()'")
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("AiohttpFetcher.fetch must run in a task")
        headers = request.headers or None
        if self._proxy_headers is not None and not request.url.startswith("https:"):
            # A plain-http request goes to the proxy as it is (no CONNECT), and aiohttp adds
            # proxy_headers only to a CONNECT: the credentials go in the request's headers.
            headers = {**request.headers, **self._proxy_headers}
        # The timeout covers connecting, sending and reading the whole body.
        self._watchdog.watch(task, timeout)
        try:
            async with session.request(
                request.method,
                request.url,
                params=request.params or None,
                headers=headers,
                data=request.body,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as answer:
                body = await self._read(answer, request)
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

    async def _read(self, answer: aiohttp.ClientResponse, request: Request) -> bytes:
        """The whole body, or BodyTooLarge as soon as it is known to pass ``max_body_bytes``."""
        limit = self._max_body
        if limit is None or answer.method == "HEAD":
            return await answer.read()
        length = answer.content_length
        encoded = "Content-Encoding" in answer.headers
        if length is not None and not encoded:
            # The common case: the declared length is the body's length, checked up front.
            if length > limit:
                raise _too_large(request, limit, f"declares {length} bytes")
            return await answer.read()
        # No length, or a compressed body whose decoded size only reading tells: count.
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _too_large(request, limit, f"passed {limit} bytes while reading")
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(request: Request, limit: int, detail: str) -> BodyTooLarge:
    shown = request.display_url
    return BodyTooLarge(
        f"answer from {shown} {detail}, more than max_body_bytes={limit}; raise "
        f"AiohttpFetcher(max_body_bytes=...) to accept it",
        url=shown,
        status="body_too_large",
    )


def _check_count(name: str, value: int, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, f"must be an int >= {low}, got {value!r}")


def _basic_auth(name: str, value: tuple[str, str]) -> str:
    """The ``Basic`` credentials header value for a ``(user, password)`` pair."""
    if not (
        isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
    ):
        # The value is a credential: the message does not repeat it.
        raise ConfigError(name, "must be a (user, password) pair of str, or None")
    user, password = value
    if ":" in user:
        raise ConfigError(name, "the user name must not contain ':' (basic auth separates on it)")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


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
    if isinstance(error, aiohttp.ClientSSLError):
        message = f"TLS handshake or certificate check failed for {shown}"
        return TransportError(message, url=shown, status="tls_error")
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
