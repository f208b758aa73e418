"""The keep-alive timing is on the real sockets of the caller's client, and only there."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3.util.connection
from botocore.config import Config

from asyncrawl.aws._keepalive import install_socket_options, keepalive_socket_options
from asyncrawl.aws.caller import invoke_until_done, lambda_client
from support.fake_lambda import AWS_TEST_ENV, AWS_UNSET_ENV, FakeLambda, answer

FUNCTION = "opendart-crawler"
# Unusual values, so no system default can pass for them.
IDLE, INTERVAL, COUNT = 45, 7, 3


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLambda]:
    for name in AWS_UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    done = {
        "success": True,
        "run_id": "run-1",
        "crawl_result": {
            "run_id": "run-1",
            "planned": 1,
            "ok": 1,
            "no_data": 0,
            "failed": [],
            "remaining": [],
            "requests": 1,
            "retries": 0,
            "status_counts": {"000": 1},
            "elapsed_s": 0.5,
            "requests_per_s": 2.0,
        },
        "continuation": None,
    }
    with FakeLambda(handler=lambda payload: answer(200, done)) as server:
        yield server


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[socket.socket]:
    """Every socket urllib3 connects from now on, in order (test-only instrumentation)."""
    sockets: list[socket.socket] = []
    real = urllib3.util.connection.create_connection

    def recording(*args: Any, **kwargs: Any) -> socket.socket:
        sock = real(*args, **kwargs)
        sockets.append(sock)
        return sock

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return sockets


def keepalive_of(sock: socket.socket) -> tuple[int, int, int, int]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) as the kernel reports them."""
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    )


def system_default_keepidle() -> int:
    with socket.socket() as fresh:
        return fresh.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)


def safe_client(url: str, **kwargs: Any) -> Any:
    return lambda_client(
        endpoint_url=url,
        keepalive_idle=IDLE,
        keepalive_interval=INTERVAL,
        keepalive_count=COUNT,
        **kwargs,
    )


def test_the_callers_connection_sends_probes_early(
    fake: FakeLambda, opened: list[socket.socket]
) -> None:
    client = safe_client(fake.url)

    invoke_until_done(FUNCTION, client=client)

    [sock] = opened
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert keepalive_of(sock)[1:] == (IDLE, INTERVAL, COUNT)
    # botocore's own default (Nagle off) is kept.
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert fake.runs == 1
    client.close()


def test_other_clients_in_the_process_keep_botocores_defaults(
    fake: FakeLambda, opened: list[socket.socket]
) -> None:
    ours = safe_client(fake.url)
    plain = boto3.client("lambda", endpoint_url=fake.url)
    flagged = boto3.client("lambda", endpoint_url=fake.url, config=Config(tcp_keepalive=True))

    for client in (ours, plain, flagged):
        # Reading the answer to its end hands the open connection back to the client's pool.
        client.invoke(FunctionName=FUNCTION, Payload=b"{}")["Payload"].read()

    ours_sock, plain_sock, flagged_sock = opened
    default_idle = system_default_keepidle()
    assert keepalive_of(ours_sock)[1:] == (IDLE, INTERVAL, COUNT)
    assert plain_sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    assert keepalive_of(plain_sock)[1] == default_idle
    # botocore's tcp_keepalive=True alone: probes on, but only after the system's idle time
    # (7200 s on stock Linux), far past a NAT gateway's 350 s.
    assert flagged_sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert keepalive_of(flagged_sock)[1] == default_idle != IDLE
    for client in (ours, plain, flagged):
        client.close()


def test_a_connection_through_a_proxy_sends_probes_early(
    fake: FakeLambda, opened: list[socket.socket]
) -> None:
    # The fake doubles as an HTTP proxy: the request names the absolute URI of a host that
    # need not exist, and the only connection made is to the proxy.
    client = safe_client("http://lambda.example.invalid", proxies={"http": fake.url})

    invoke_until_done(FUNCTION, client=client)

    [sock] = opened
    assert sock.getpeername()[1] == int(fake.url.rsplit(":", 1)[1])
    assert keepalive_of(sock)[1:] == (IDLE, INTERVAL, COUNT)
    assert fake.runs == 1
    client.close()


def test_an_unexpected_botocore_layout_raises_instead_of_skipping_the_probes() -> None:
    class Endpoint:
        http_session = object()

    class Client:
        _endpoint = Endpoint()

    with pytest.raises(RuntimeError, match="keep-alive timing cannot be set"):
        install_socket_options(
            Client(), keepalive_socket_options(idle=IDLE, interval=INTERVAL, count=COUNT)
        )
