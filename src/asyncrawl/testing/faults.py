"""A loopback HTTP server that misbehaves on purpose, the same way every time.

:class:`FaultServer` answers every request after a deterministic latency, and sometimes with a
fault instead of an answer: HTTP 503, HTTP 429 with ``Retry-After``, a reset connection, a body
cut short of its ``Content-Length``, an HTML error page sent as HTTP 200, or no answer at all.
Which fault a request meets is a pure function of ``(seed, item, attempt)``
(:meth:`FaultPlan.fault_for`), so every client measured against the same plan meets the same
faults on the same items, however it schedules its requests. Only the rate window depends on
timing, as it does on a real server: it counts requests when they arrive.

Every arrival is logged (:attr:`FaultServer.arrivals`) for tests to check what a client really
sent: how many attempts per item, and the most requests in any window
(:meth:`FaultServer.max_in_window`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import socket
import struct
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Final, Self

from aiohttp import web

from ..errors import ConfigError

__all__ = [
    "SECRET_QUERY_PARAMS",
    "Arrival",
    "FaultPlan",
    "FaultServer",
    "Handler",
    "ItemContext",
    "ItemKey",
    "default_item_key",
    "query_param_item_key",
]

#: Query parameters never part of an item's identity (they are credentials, not the question).
SECRET_QUERY_PARAMS: Final = frozenset({"access_token", "api_key", "apikey", "crtfc_key", "key"})

#: Fault names as they appear in :attr:`Arrival.fault`.
FAULT_503: Final = "503"
FAULT_429: Final = "429"
FAULT_RESET: Final = "reset"
FAULT_TRUNCATE: Final = "truncate"
FAULT_HTML: Final = "html"
FAULT_HANG: Final = "hang"
FAULT_RATE_LIMIT: Final = "rate_limit"
FAULT_FAIL_FIRST: Final = "fail_first"

# Seconds the runner waits for in-flight handlers at shutdown before cancelling them. Hung
# handlers are woken explicitly first, so this only bounds handlers still sleeping out latency.
_SHUTDOWN_TIMEOUT: Final = 0.25

_HTML_ERROR_PAGE: Final = (
    "<!DOCTYPE html>\n<html lang='ko'><head><meta charset='utf-8'><title>오류</title></head>"
    "<body><h1>서비스 이용에 불편을 드려 죄송합니다.</h1>"
    "<p>일시적인 오류가 발생하였습니다. 잠시 후 다시 시도해 주십시오.</p></body></html>\n"
)
_HTML_503_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your "
    "request. Please try again later.</p></body></html>\n"
)


def _uniform(seed: int, item: str, attempt: int, stream: str) -> float:
    """A float in [0, 1) drawn from ``(seed, item, attempt, stream)`` alone."""
    digest = hashlib.blake2b(f"{seed}:{item}:{attempt}:{stream}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2.0**64


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(name, f"must be a probability between 0 and 1, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """How a :class:`FaultServer` misbehaves.

    The fault probabilities are exclusive (one request meets at most one fault) and must add up
    to at most 1. ``latency`` is the least delay before any answer; ``latency_jitter`` is the
    mean of an extra, exponentially distributed delay (capped at ten times that mean), which
    gives the long tail real servers have. ``rate_limit=(n, seconds)`` answers every request
    that arrives when ``n`` requests already arrived in the last ``seconds`` (rejected ones
    count too, as they do on a server that counts arrivals). ``fail_first_attempts=k`` makes
    the first ``k`` attempts of every item answer 503.
    """

    seed: int = 0
    latency: float = 0.0
    latency_jitter: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    retry_after: float | None = None
    p_reset: float = 0.0
    p_truncate: float = 0.0
    p_html: float = 0.0
    p_hang: float = 0.0
    rate_limit: tuple[int, float] | None = None
    fail_first_attempts: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", f"must be an int, got {self.seed!r}")
        for name in ("latency", "latency_jitter"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(name, f"must be a finite number of seconds >= 0, got {value!r}")
        for name, probability in self._probabilities():
            _check_probability(f"p_{name}", probability)
        total = sum(p for _, p in self._probabilities())
        if total > 1.0 + 1e-9:
            raise ConfigError(
                "p_503",
                f"the fault probabilities (p_503, p_429, p_reset, p_truncate, p_html, p_hang) "
                f"add up to {total:g}; lower them so that they add up to at most 1",
            )
        if self.retry_after is not None and not (
            math.isfinite(self.retry_after) and self.retry_after >= 0
        ):
            raise ConfigError(
                "retry_after", f"must be None or seconds >= 0, got {self.retry_after!r}"
            )
        if self.rate_limit is not None:
            if not (isinstance(self.rate_limit, tuple) and len(self.rate_limit) == 2):
                raise ConfigError("rate_limit", "must be None or a (requests, seconds) tuple")
            count, window = self.rate_limit
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(
                    "rate_limit", f"the request count must be an int >= 1, got {count!r}"
                )
            if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
                raise ConfigError("rate_limit", f"the window must be seconds > 0, got {window!r}")
        if (
            isinstance(self.fail_first_attempts, bool)
            or not isinstance(self.fail_first_attempts, int)
            or self.fail_first_attempts < 0
        ):
            raise ConfigError(
                "fail_first_attempts", f"must be an int >= 0, got {self.fail_first_attempts!r}"
            )

    def _probabilities(self) -> tuple[tuple[str, float], ...]:
        # The order fixes which band of the unit interval each fault owns; changing it would
        # change which items fault for a given seed.
        return (
            (FAULT_RESET, self.p_reset),
            (FAULT_HANG, self.p_hang),
            (FAULT_TRUNCATE, self.p_truncate),
            (FAULT_503, self.p_503),
            (FAULT_429, self.p_429),
            (FAULT_HTML, self.p_html),
        )

    def fault_for(self, item: str, attempt: int) -> str | None:
        """The fault attempt ``attempt`` (1-based) of ``item`` meets, rate window aside.

        One of ``"fail_first"``, ``"reset"``, ``"hang"``, ``"truncate"``, ``"503"``, ``"429"``,
        ``"html"``, or None for a normal answer. Depends on ``(seed, item, attempt)`` only.
        """
        if attempt <= self.fail_first_attempts:
            return FAULT_FAIL_FIRST
        draw = _uniform(self.seed, item, attempt, "fault")
        edge = 0.0
        for name, probability in self._probabilities():
            edge += probability
            if draw < edge:
                return name
        return None

    def delay_for(self, item: str, attempt: int) -> float:
        """Seconds attempt ``attempt`` of ``item`` waits before its answer (deterministic)."""
        if self.latency_jitter == 0:
            return self.latency
        draw = _uniform(self.seed, item, attempt, "latency")
        extra = min(-math.log1p(-draw), 10.0) * self.latency_jitter
        return self.latency + extra


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """One request as the server saw it arrive."""

    #: Loop time at arrival (``asyncio.get_running_loop().time()``).
    time: float
    #: The request's identity (see :func:`default_item_key`).
    item: str
    #: How many times this item has arrived, this one included (1-based).
    attempt: int
    #: The request's path, without the query string.
    path: str
    #: The fault injected instead of a normal answer, or None.
    fault: str | None


class ItemContext:
    """What a handler knows about the request it answers: its item and attempt."""

    __slots__ = ("_index", "_server", "arrived_at", "attempt", "item")

    def __init__(
        self, server: FaultServer, index: int, *, item: str, attempt: int, arrived_at: float
    ) -> None:
        self._server = server
        self._index = index
        #: The request's identity.
        self.item = item
        #: How many times this item has arrived, this one included (1-based).
        self.attempt = attempt
        #: Loop time at arrival.
        self.arrived_at = arrived_at

    def record_fault(self, fault: str) -> None:
        """Note in the arrivals log that the handler answered this request with ``fault``."""
        self._server._record_fault(self._index, fault)


#: Answers a request that meets no fault.
Handler = Callable[[web.Request, ItemContext], Awaitable[web.StreamResponse]]
#: Names the item a request asks for.
ItemKey = Callable[[web.Request], str]


def default_item_key(request: web.Request) -> str:
    """The path and the sorted query string, without :data:`SECRET_QUERY_PARAMS`.

    Two requests for the same thing are the same item whatever key they carry or in which order
    their parameters come.
    """
    pairs = sorted((k, v) for k, v in request.query.items() if k not in SECRET_QUERY_PARAMS)
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{request.path}?{query}" if query else request.path


def query_param_item_key(name: str) -> ItemKey:
    """An item key that is the value of query parameter ``name`` (the path when it is absent)."""

    def key(request: web.Request) -> str:
        return request.query.get(name, request.path)

    return key


async def _default_handler(request: web.Request, context: ItemContext) -> web.StreamResponse:
    return web.json_response({"ok": True, "item": context.item})


def _reset_connection(request: web.Request) -> None:
    """Close the connection with a TCP RST, as a crashed server or a blocking firewall would."""
    transport = request.transport
    if transport is None:  # The client already hung up.
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger on with a zero timeout: close() then discards unsent data and sends RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class FaultServer:
    """An aiohttp.web server on loopback that injects the faults of a :class:`FaultPlan`.

    Use it as an async context manager::

        async with FaultServer(FaultPlan(p_503=0.1, seed=7)) as server:
            ...  # request server.url + "/anything?id=1"

    ``handler`` answers requests that meet no fault (default: ``{"ok": true, "item": ...}``);
    ``item_key`` names the item a request asks for (default: :func:`default_item_key`). Every
    path is served. Leaving the context wakes hung requests and closes every connection, so
    teardown never waits for a hung handler.
    """

    def __init__(
        self,
        plan: FaultPlan | None = None,
        *,
        handler: Handler | None = None,
        item_key: ItemKey | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.plan = plan if plan is not None else FaultPlan()
        self._handler = handler or _default_handler
        self._item_key = item_key or default_item_key
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._url: str | None = None
        self._attempts: Counter[str] = Counter()
        self._recent: deque[float] = deque()
        self._arrivals: list[Arrival] = []
        # Arrivals forgotten by reset_log(), so that a context's absolute index still finds
        # its own entry (or none) after the log was cleared under an in-flight request.
        self._forgotten = 0

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the server is not running: use it inside `async with`")
        return self._url

    @property
    def arrivals(self) -> list[Arrival]:
        """Every request that arrived since the start (or :meth:`reset_log`), in arrival order."""
        return list(self._arrivals)

    def attempts_by_item(self) -> dict[str, int]:
        """How many requests of each item are in the log."""
        return dict(Counter(arrival.item for arrival in self._arrivals))

    def max_in_window(self, window_seconds: float) -> int:
        """The most logged arrivals within any ``window_seconds`` (times ``t0 <= t < t0 + w``)."""
        times = sorted(arrival.time for arrival in self._arrivals)
        most = 0
        first = 0
        for last, time in enumerate(times):
            while time - times[first] >= window_seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def reset_log(self) -> None:
        """Forget the logged arrivals. Attempt numbers and the rate window carry on."""
        self._forgotten += len(self._arrivals)
        self._arrivals.clear()

    async def start(self) -> None:
        """Start serving (what ``async with`` does on entry)."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Wake hung requests, close every connection and stop serving."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def choose_fault(self, request: web.Request, item: str, attempt: int, now: float) -> str | None:
        """The fault this arrival meets, or None. Subclasses add their own before these."""
        if self._over_rate_limit(now):
            return FAULT_RATE_LIMIT
        return self.plan.fault_for(item, attempt)

    async def fault_response(
        self, request: web.Request, context: ItemContext, fault: str
    ) -> web.StreamResponse:
        """Answer ``request`` with ``fault``. Subclasses answer their own faults first."""
        if fault == FAULT_RATE_LIMIT:
            return self._rate_limited_response()
        if fault in (FAULT_503, FAULT_FAIL_FIRST):
            return web.Response(
                status=503, text=_HTML_503_PAGE, content_type="text/html", charset="utf-8"
            )
        if fault == FAULT_429:
            return self._rate_limited_response()
        if fault == FAULT_HTML:
            return web.Response(
                status=200, text=_HTML_ERROR_PAGE, content_type="text/html", charset="utf-8"
            )
        if fault == FAULT_TRUNCATE:
            return await self._truncated_response(request, context)
        if fault == FAULT_HANG and self._closing is not None:
            await self._closing.wait()
        # A reset, or a hung request woken at shutdown: drop the connection without an answer.
        _reset_connection(request)
        raise web.HTTPServiceUnavailable()

    def _rate_limited_response(self) -> web.Response:
        headers = {}
        if self.plan.retry_after is not None:
            value = self.plan.retry_after
            headers["Retry-After"] = str(int(value)) if value == int(value) else f"{value:g}"
        return web.json_response(
            {"ok": False, "error": "too many requests"}, status=429, headers=headers
        )

    async def _truncated_response(
        self, request: web.Request, context: ItemContext
    ) -> web.StreamResponse:
        full = await self._handler(request, context)
        body = full.body if isinstance(full, web.Response) else None
        payload = body if isinstance(body, bytes) and len(body) >= 2 else b'{"ok": true}' * 8
        response = web.StreamResponse(status=full.status, headers=full.headers)
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
        # close(), not abort(): the half already written is flushed, then the peer sees EOF
        # before the declared length.
        if request.transport is not None:
            request.transport.close()
        return response

    def _over_rate_limit(self, now: float) -> bool:
        if self.plan.rate_limit is None:
            return False
        count, window = self.plan.rate_limit
        recent = self._recent
        while recent and now - recent[0] >= window:
            recent.popleft()
        over = len(recent) >= count
        recent.append(now)
        return over

    def _record_fault(self, index: int, fault: str) -> None:
        position = index - self._forgotten
        if position >= 0:
            self._arrivals[position] = replace(self._arrivals[position], fault=fault)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = asyncio.get_running_loop().time()
        item = self._item_key(request)
        self._attempts[item] += 1
        attempt = self._attempts[item]
        fault = self.choose_fault(request, item, attempt, now)
        index = self._forgotten + len(self._arrivals)
        self._arrivals.append(
            Arrival(time=now, item=item, attempt=attempt, path=request.path, fault=fault)
        )
        context = ItemContext(self, index, item=item, attempt=attempt, arrived_at=now)
        delay = self.plan.delay_for(item, attempt)
        if delay > 0 and fault != FAULT_HANG:
            await asyncio.sleep(delay)
        if fault is None:
            return await self._handler(request, context)
        return await self.fault_response(request, context, fault)
