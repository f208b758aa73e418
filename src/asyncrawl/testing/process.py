"""Run a test server in its own process, so that it does not share the measured event loop.

Benchmarks measure a client's overhead against a server that costs the client's process
nothing: :func:`run_server_process` starts a :class:`~asyncrawl.testing.FaultServer` or an
:class:`~asyncrawl.testing.OpenDartStandIn` in a spawned process and yields its URL once it
accepts connections. Spawning re-imports the caller's ``__main__``: scripts must guard their
entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Final, Literal

from ..errors import ConfigError
from .faults import FaultPlan, FaultServer
from .opendart import OpenDartStandIn

__all__ = ["ServerKind", "run_server_process"]

#: Which server :func:`run_server_process` runs.
ServerKind = Literal["fault", "opendart"]

_STOP_GRACE: Final = 5.0


@contextmanager
def run_server_process(
    kind: ServerKind = "fault",
    plan: FaultPlan | None = None,
    *,
    api_key: str | None = None,
    no_data_ratio: float = 0.1,
    quota: int | None = None,
    startup_timeout: float = 20.0,
) -> Iterator[str]:
    """Serve ``kind`` with ``plan`` in a child process; yield its base URL; stop it at exit.

    ``api_key``, ``no_data_ratio`` and ``quota`` configure the OpenDART stand-in (see
    :class:`~asyncrawl.testing.OpenDartStandIn`). The server stops when the context exits or,
    should this process die first, when the pipe to it closes.
    """
    if kind not in ("fault", "opendart"):
        raise ConfigError("kind", f'must be "fault" or "opendart", got {kind!r}')
    if kind == "fault" and (api_key is not None or quota is not None):
        raise ConfigError("kind", 'api_key and quota need kind="opendart"')
    plan = plan if plan is not None else FaultPlan()
    if kind == "opendart":
        # Validate here, so that a bad setting raises in the caller, not in the child.
        OpenDartStandIn(plan=plan, api_key=api_key, no_data_ratio=no_data_ratio, quota=quota)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_serve,
        args=(kind, plan, api_key, no_data_ratio, quota, theirs),
        name=f"asyncrawl-{kind}-server",
        daemon=True,
    )
    process.start()
    theirs.close()
    try:
        if not ours.poll(startup_timeout):
            raise RuntimeError(f"the {kind} server did not start within {startup_timeout} s")
        status, detail = ours.recv()
        if status != "ok":
            raise RuntimeError(f"the {kind} server failed to start: {detail}")
        yield str(detail)
    finally:
        _stop(process, ours)


def _stop(process: multiprocessing.process.BaseProcess, pipe: Connection) -> None:
    with suppress(OSError):  # The child is gone already.
        pipe.send("stop")
    pipe.close()
    process.join(_STOP_GRACE)
    if process.is_alive():
        process.terminate()
        process.join(_STOP_GRACE)
    if process.is_alive():
        process.kill()
        process.join()


def _serve(
    kind: ServerKind,
    plan: FaultPlan,
    api_key: str | None,
    no_data_ratio: float,
    quota: int | None,
    pipe: Connection,
) -> None:
    """The child process: serve until the parent says stop or goes away."""
    asyncio.run(_serve_until_told(kind, plan, api_key, no_data_ratio, quota, pipe))


async def _serve_until_told(
    kind: ServerKind,
    plan: FaultPlan,
    api_key: str | None,
    no_data_ratio: float,
    quota: int | None,
    pipe: Connection,
) -> None:
    server: FaultServer
    if kind == "opendart":
        server = OpenDartStandIn(
            plan=plan, api_key=api_key, no_data_ratio=no_data_ratio, quota=quota
        )
    else:
        server = FaultServer(plan)
    try:
        await server.start()
    except Exception as error:  # Reported to the parent, which raises it there.
        pipe.send(("error", f"{type(error).__name__}: {error}"))
        return
    try:
        pipe.send(("ok", server.url))
        # A message or end-of-file (the parent died) both make the pipe readable.
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(pipe.fileno(), readable.set)
        await readable.wait()
        loop.remove_reader(pipe.fileno())
    finally:
        await server.close()
        pipe.close()
