"""A fault-injecting TCP proxy for tests: put it between a client and a real server on loopback.

:class:`FaultProxy` listens on ``127.0.0.1`` and forwards every connection to an upstream
(moto's S3 server, the OpenDART stand-in), misbehaving as its :attr:`~FaultProxy.mode` says.
The mode can change while connections are open, so a test can let a run start and then stall
its storage mid-run:

- ``"pass"``: forward both ways, untouched.
- ``"stall"``: accept and read, never forward, never answer (a hung endpoint: the client sees
  an open connection that stays silent). Data already under way stops where it is.
- ``"slow"``: forward, but hold each chunk from the server ``delay`` seconds.
- ``"drop"``: close the client's connection as soon as it sends anything (a reset mid-request).
- ``"error500"``: answer every HTTP/1.1 request with ``500 Internal Server Error`` without
  forwarding it, and close the connection.

``stall_after_requests=N`` (or ``stall_after_bytes=N``, counted client to server) switches to
``"stall"`` once N requests (bytes) went through, for "S3 stops answering N calls into the run".
Requests are counted by their request line (``... HTTP/1.1\\r\\n``), close enough for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from types import TracebackType
from typing import Literal, Self

from ..errors import ConfigError

__all__ = ["FaultProxy", "ProxyMode"]

#: How :class:`FaultProxy` treats traffic.
ProxyMode = Literal["pass", "stall", "slow", "drop", "error500"]
_MODES = frozenset({"pass", "stall", "slow", "drop", "error500"})
_REQUEST_LINE = re.compile(rb"[A-Z]+ \S+ HTTP/1\.[01]\r\n")
_CHUNK = 64 * 1024
_500_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>InternalError</Code><Message>injected</Message></Error>\n"
)
_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_500_BODY), _500_BODY)
)


class FaultProxy:
    """Forward ``127.0.0.1:{port}`` to ``upstream_host:upstream_port``, with faults.

    Use as ``async with FaultProxy(host, port) as proxy:``; :attr:`url` is ``http://...``.
    Counters (:attr:`connections`, :attr:`requests`, :attr:`bytes_up`) let tests see traffic.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        mode: ProxyMode = "pass",
        delay: float = 0.0,
        stall_after_requests: int | None = None,
        stall_after_bytes: int | None = None,
    ) -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError("upstream_host", "must be a loopback address: tests stay local")
        self._flowing = asyncio.Event()
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.mode = mode
        #: Seconds each server-to-client chunk is held in ``"slow"`` mode.
        self.delay = delay
        self.stall_after_requests = stall_after_requests
        self.stall_after_bytes = stall_after_bytes
        #: Connections accepted, requests and bytes seen from clients so far.
        self.connections = 0
        self.requests = 0
        self.bytes_up = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port = 0

    @property
    def mode(self) -> ProxyMode:
        """The current fault; assign to change it for open connections too."""
        return self._mode

    @mode.setter
    def mode(self, value: ProxyMode) -> None:
        if value not in _MODES:
            raise ConfigError("mode", f"must be one of {sorted(_MODES)}, not {value!r}")
        self._mode: ProxyMode = value
        if value == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:{port}``."""
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connections ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self._mode == "error500":
                await self._answer_500(reader, writer)
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
            self._writers.add(upstream_writer)
            down = asyncio.ensure_future(self._pump(upstream_reader, writer, upstream=False))
            try:
                await self._pump(reader, upstream_writer, upstream=True)
            finally:
                down.cancel()
                with contextlib.suppress(BaseException):
                    await down
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            for w in (writer, upstream_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    def _count(self, data: bytes) -> None:
        self.requests += len(_REQUEST_LINE.findall(data))
        self.bytes_up += len(data)
        if (
            self.stall_after_requests is not None and self.requests > self.stall_after_requests
        ) or (self.stall_after_bytes is not None and self.bytes_up > self.stall_after_bytes):
            self.mode = "stall"

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            if upstream:
                self._count(data)
            if self._mode == "drop":
                return
            # Stalled: hold the data (and read nothing more); the peer sees silence.
            await self._flowing.wait()
            if self._mode == "slow" and not upstream:
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()

    async def _answer_500(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read the request's head and body (telling a client that waits for it to go on, as a
        # server does), answer 500 and close: the client retries on a fresh connection.
        head = await reader.readuntil(b"\r\n\r\n")
        self._count(head)
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"expect") == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await reader.readexactly(int(headers.get(b"content-length", b"0") or b"0"))
        writer.write(_500)
        await writer.drain()
