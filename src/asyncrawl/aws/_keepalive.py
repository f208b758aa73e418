"""TCP keep-alive probes for one botocore client's connections, and nobody else's.

A NAT gateway forgets a TCP flow that carries no packet for 350 s and tells a reading client
nothing, so a synchronous Lambda invoke that runs longer never gets its answer. Keep-alive
probes count as traffic, but only if they start early: ``Config(tcp_keepalive=True)`` sets
``SO_KEEPALIVE`` alone and Linux then waits ``tcp_keepalive_time`` (7200 s) for the first probe.
The socket also needs ``TCP_KEEPIDLE`` (``TCP_KEEPALIVE`` on macOS), ``TCP_KEEPINTVL`` and
``TCP_KEEPCNT``.

botocore has no public hook for extra socket options, so this module sets them on the one
client it is given: its endpoint's ``URLLib3Session`` keeps the options it was built with
(``_socket_options``, read again whenever a proxy pool manager is created) and hands them to its
urllib3 ``PoolManager`` (``connection_pool_kw["socket_options"]``, read whenever a connection
pool is created). Both are replaced before the client makes its first connection. Nothing is
patched process-wide: other clients keep botocore's defaults. If a botocore release moves these
internals, :func:`install_socket_options` raises instead of silently leaving the probes off.
Tested with botocore 1.31.17 and 1.34.162 (urllib3 1.26) and 1.40.61 (urllib3 2).
"""

from __future__ import annotations

import socket
from typing import Any

from botocore.httpsession import URLLib3Session

__all__ = ["SocketOption", "install_socket_options", "keepalive_socket_options"]

#: ``(level, option, value)`` as ``socket.setsockopt`` takes it.
SocketOption = tuple[int, int, int]


def _tcp_option(*names: str) -> int:
    for name in names:
        value = getattr(socket, name, None)
        if isinstance(value, int):
            return value
    raise RuntimeError(
        f"this platform's socket module has no {' or '.join(names)}: keep-alive probes cannot "
        "be timed, so a long synchronous Lambda call could hang behind a NAT gateway"
    )


def keepalive_socket_options(*, idle: int, interval: int, count: int) -> list[SocketOption]:
    """The socket options that send the first probe after ``idle`` seconds of silence.

    Then one probe every ``interval`` seconds; the connection is declared dead after ``count``
    unanswered probes.
    """
    return [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        # macOS calls the idle time TCP_KEEPALIVE; Linux and Windows call it TCP_KEEPIDLE.
        (socket.IPPROTO_TCP, _tcp_option("TCP_KEEPIDLE", "TCP_KEEPALIVE"), idle),
        (socket.IPPROTO_TCP, _tcp_option("TCP_KEEPINTVL"), interval),
        (socket.IPPROTO_TCP, _tcp_option("TCP_KEEPCNT"), count),
    ]


def install_socket_options(client: Any, options: list[SocketOption]) -> None:
    """Make every connection ``client`` opens from now on carry ``options``.

    Options botocore already set (``TCP_NODELAY``) are kept unless ``options`` sets the same
    ``(level, option)``. Call it on a fresh client, before its first request.
    """
    endpoint = getattr(client, "_endpoint", None)
    http_session = getattr(endpoint, "http_session", None)
    manager = getattr(http_session, "_manager", None)
    pool_kw = getattr(manager, "connection_pool_kw", None)
    current = getattr(http_session, "_socket_options", None)
    if (
        not isinstance(http_session, URLLib3Session)
        or not isinstance(pool_kw, dict)
        or not isinstance(current, list)
        or not isinstance(getattr(http_session, "_proxy_managers", None), dict)
    ):
        raise RuntimeError(
            "this botocore version keeps its HTTP session differently than asyncrawl expects "
            "(client._endpoint.http_session: URLLib3Session with _socket_options and _manager); "
            "TCP keep-alive timing cannot be set per client. Pin botocore to a tested release "
            "(1.31 to 1.40) or report the version."
        )
    replaced = {(level, name) for level, name, _ in options}
    merged = [opt for opt in current if (opt[0], opt[1]) not in replaced] + list(options)
    # The session reads this list when it builds a pool manager for a proxy (lazily, per
    # proxy URL); the direct pool manager was built in __init__ and keeps its own copy.
    http_session._socket_options = merged
    pool_kw["socket_options"] = merged
    for proxy_manager in http_session._proxy_managers.values():
        proxy_manager.connection_pool_kw["socket_options"] = merged
