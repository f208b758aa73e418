"""The benchmark's server: asyncrawl's OpenDART stand-in in its own process, with a ledger.

Every contender meets the same server: :class:`~asyncrawl.testing.opendart.OpenDartStandIn`
with a :class:`~asyncrawl.testing.faults.FaultPlan` whose faults are a pure function of (item
key, attempt number), never of arrival order. It runs in a spawned process (as
:mod:`asyncrawl.testing.process` does) so it costs the measured client nothing but the CPU
it shares, and one fresh process serves one contender's run: attempt numbers, the rate window
and hung requests never carry over from one contender to the next.

The ledger is what the server saw: every arrival (time, item, attempt, fault) and when its
answer ended, so the report counts requests, resends, limit breaches (arrivals answered 020
because the window was full) and requests in flight over time, the same way for every
contender, whatever the contender itself reports.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

from asyncrawl.testing.faults import FaultPlan
from asyncrawl.testing.opendart import OpenDartStandIn

__all__ = ["Ledger", "StaticServer", "serve"]


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the server saw during one run."""

    #: ``(arrived, ended, item, attempt, fault)`` per request, in arrival order (loop seconds).
    requests: list[tuple[float, float, str, int, str | None]]

    @property
    def total(self) -> int:
        """Requests that arrived."""
        return len(self.requests)

    @property
    def first_attempts(self) -> int:
        """Distinct items asked for."""
        return len({r[2] for r in self.requests})

    @property
    def breaches(self) -> int:
        """Requests that arrived while the rate window was full (answered 020)."""
        return sum(1 for r in self.requests if r[4] == "rate_limit")

    def in_flight(self, step: float = 0.05) -> tuple[list[float], list[int]]:
        """Requests open at the server every ``step`` seconds from the first arrival."""
        if not self.requests:
            return [], []
        start = self.requests[0][0]
        end = max(r[1] for r in self.requests)
        times: list[float] = []
        counts: list[int] = []
        events = sorted([(r[0], 1) for r in self.requests] + [(r[1], -1) for r in self.requests])
        open_now = 0
        index = 0
        moment = start
        while moment <= end + step:
            while index < len(events) and events[index][0] <= moment:
                open_now += events[index][1]
                index += 1
            times.append(round(moment - start, 3))
            counts.append(open_now)
            moment += step
        return times, counts


class _LedgerStandIn(OpenDartStandIn):
    """The stand-in, noting when each answer ends (a hung one ends when the server closes)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ended: dict[int, float] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        index = len(self._arrivals) + self._forgotten
        try:
            return await super()._handle(request)
        finally:
            self.ended[index] = asyncio.get_running_loop().time()

    def ledger(self) -> Ledger:
        now = asyncio.get_running_loop().time()
        return Ledger(
            [
                (a.time, self.ended.get(i, now), a.item, a.attempt, a.fault)
                for i, a in enumerate(self._arrivals)
            ]
        )


class StaticServer:
    """One fixed OpenDART answer for every request: the throughput benchmark's upstream.

    Like the nginx serving a static file in the issue's measurement: the server does as little
    as a server can, so that the clients' costs show.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.count = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Serve on a free port of 127.0.0.1."""

        async def answer(request: web.Request) -> web.Response:
            self.count += 1
            return web.Response(body=self.body, content_type="application/json", charset="utf-8")

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def ledger(self) -> Ledger:
        """Only the count is kept (the throughput run needs no per-request record)."""
        return Ledger([])


@contextmanager
def serve(
    plan: FaultPlan | None, *, no_data_ratio: float = 0.1, static_body: bytes | None = None
) -> Iterator[tuple[str, Connection]]:
    """Serve in a child process; yield ``(base_url, pipe)``; :func:`ledger_of` reads the ledger."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_child,
        args=(plan, no_data_ratio, static_body, theirs),
        name="asyncrawl-bench-server",
        daemon=True,
    )
    process.start()
    theirs.close()
    try:
        if not ours.poll(30):
            raise RuntimeError("the benchmark server did not start within 30 s")
        status, detail = ours.recv()
        if status != "ok":
            raise RuntimeError(f"the benchmark server failed to start: {detail}")
        yield str(detail), ours
    finally:
        with suppress(OSError):
            ours.send("stop")
        ours.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def ledger_of(pipe: Connection) -> Ledger:
    """Ask the server for its ledger (call it once the contender is done)."""
    pipe.send("ledger")
    if not pipe.poll(60):
        raise RuntimeError("the benchmark server did not send its ledger")
    requests = pipe.recv()
    return Ledger(requests)


def _child(
    plan: FaultPlan | None, no_data_ratio: float, static_body: bytes | None, pipe: Connection
) -> None:
    asyncio.run(_run_child(plan, no_data_ratio, static_body, pipe))


async def _run_child(
    plan: FaultPlan | None, no_data_ratio: float, static_body: bytes | None, pipe: Connection
) -> None:
    server: _LedgerStandIn | StaticServer
    if static_body is not None:
        server = StaticServer(static_body)
    else:
        server = _LedgerStandIn(plan=plan, no_data_ratio=no_data_ratio)
    try:
        await server.start()
    except Exception as error:  # reported to the parent, which raises it there
        pipe.send(("error", f"{type(error).__name__}: {error}"))
        return
    url = server.url + ("/api/" if static_body is None else "/")
    pipe.send(("ok", url))
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(pipe.fileno(), readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                message = pipe.recv()
            except EOFError:
                return
            if message == "ledger":
                pipe.send(server.ledger().requests)
            else:
                return
    finally:
        loop.remove_reader(pipe.fileno())
        await server.close()
        pipe.close()
