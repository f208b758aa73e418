"""AiohttpFetcher's session options, body cap and redirects, against servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from asyncrawl import AiohttpFetcher, CrawlConfig, Ok, Request, Response, run
from asyncrawl.errors import BodyTooLarge, ConfigError, TransportError
from asyncrawl.outcomes import Outcome
from asyncrawl.testing import FaultServer, ItemContext


async def _echo(request: web.Request, context: ItemContext) -> web.StreamResponse:
    """Answers what the client sent: its headers, cookies and request line."""
    return web.json_response(
        {
            "headers": dict(request.headers),
            "cookies": dict(request.cookies),
            "url": str(request.url),
            "path": request.path,
        }
    )


async def _get(fetcher: AiohttpFetcher, url: str) -> Response:
    return await fetcher.fetch(Request(url=url), timeout=5.0)


async def test_default_headers_user_agent_cookies_and_auth_are_sent() -> None:
    async with (
        FaultServer(handler=_echo) as server,
        AiohttpFetcher(
            user_agent="ua-test/1",
            headers={"X-Team": "web", "Accept": "application/json"},
            cookies={"session": "abc"},
            auth=("user", "pw"),
        ) as fetcher,
    ):
        response = await fetcher.fetch(
            Request(url=f"{server.url}/echo", headers={"X-Per-Request": "1"}), timeout=5.0
        )
    seen = _json(response)
    headers = seen["headers"]
    assert headers["User-Agent"] == "ua-test/1"
    assert headers["X-Team"] == "web"
    assert headers["X-Per-Request"] == "1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()
    assert seen["cookies"] == {"session": "abc"}


async def test_a_user_agent_in_headers_wins() -> None:
    async with (
        FaultServer(handler=_echo) as server,
        AiohttpFetcher(user_agent="plain", headers={"User-Agent": "mine"}) as fetcher,
    ):
        assert _json(await _get(fetcher, f"{server.url}/"))["headers"]["User-Agent"] == "mine"


async def test_requests_go_through_the_proxy_with_its_credentials() -> None:
    # The "proxy" is a loopback server: a request for a host that does not exist arrives there
    # in absolute form, which proves the fetcher sent it through the proxy.
    async with (
        FaultServer(handler=_echo) as proxy,
        AiohttpFetcher(proxy=proxy.url, proxy_auth=("pu", "pp")) as fetcher,
    ):
        response = await _get(fetcher, "http://target.invalid/page?q=1")
    seen = _json(response)
    assert seen["headers"]["Host"] == "target.invalid"
    assert seen["path"] == "/page"
    assert seen["headers"]["Proxy-Authorization"] == "Basic " + base64.b64encode(b"pu:pp").decode()


async def test_per_host_pool_limits_open_connections() -> None:
    active = 0
    most = 0

    async def slow(request: web.Request, context: ItemContext) -> web.StreamResponse:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.json_response({})

    async with FaultServer(handler=slow) as server, AiohttpFetcher(per_host_pool=2) as fetcher:
        await asyncio.gather(*(_get(fetcher, f"{server.url}/{n}") for n in range(8)))
    assert 1 <= most <= 2  # 8 requests at once, 2 sockets


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("pool_size", {"pool_size": -1}),
        ("per_host_pool", {"per_host_pool": 1.5}),
        ("max_body_bytes", {"max_body_bytes": 0}),
        ("keepalive_timeout", {"keepalive_timeout": 0}),
        ("proxy", {"proxy": "socks5://user:secret@proxy:1080"}),
        ("auth", {"auth": ("only-user",)}),
        ("proxy_auth", {"proxy_auth": "user:secret"}),
        ("ssl", {"ssl": "no"}),
    ],
)
def test_bad_options_name_the_parameter_and_hide_credentials(
    name: str, options: dict[str, object]
) -> None:
    with pytest.raises(ConfigError) as caught:
        AiohttpFetcher(**options)  # type: ignore[arg-type]
    assert caught.value.field == name
    assert "secret" not in str(caught.value)


def test_repr_shows_no_credentials() -> None:
    fetcher = AiohttpFetcher(
        headers={"Authorization": "Bearer secret"}, auth=("u", "secret"), proxy="http://p:1"
    )
    assert "secret" not in repr(fetcher)


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (EC: quick to make)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def https_url(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    host, port = runner.addresses[0][:2]
    yield f"https://{host}:{port}/"
    await runner.cleanup()


async def test_tls_is_verified_by_default(https_url: str) -> None:
    async with AiohttpFetcher() as fetcher:
        with pytest.raises(TransportError) as caught:
            await _get(fetcher, https_url)
    assert caught.value.status == "tls_error"


async def test_tls_with_a_context_that_trusts_the_certificate(
    https_url: str, certificate: tuple[Path, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    async with AiohttpFetcher(ssl=context) as fetcher:
        assert (await _get(fetcher, https_url)).body == b"hello"


async def test_tls_verification_can_be_turned_off(https_url: str) -> None:
    async with AiohttpFetcher(ssl=False) as fetcher:
        assert (await _get(fetcher, https_url)).body == b"hello"


# --- body cap --------------------------------------------------------------------------------


async def _sized(request: web.Request, context: ItemContext) -> web.StreamResponse:
    """``/fixed/N``: N bytes with a Content-Length; ``/chunked/N``: N bytes, no length."""
    kind, size = request.path.strip("/").split("/")
    body = b"x" * int(size)
    if kind == "fixed":
        return web.Response(body=body)
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(body), 1000):
        await response.write(body[start : start + 1000])
    await response.write_eof()
    return response


@pytest.mark.parametrize("kind", ["fixed", "chunked"])
async def test_a_body_at_the_cap_is_read(kind: str) -> None:
    async with FaultServer(handler=_sized) as server, AiohttpFetcher(max_body_bytes=5000) as f:
        assert len((await _get(f, f"{server.url}/{kind}/5000")).body) == 5000


@pytest.mark.parametrize("kind", ["fixed", "chunked"])
async def test_a_body_past_the_cap_fails_the_attempt(kind: str) -> None:
    async with FaultServer(handler=_sized) as server, AiohttpFetcher(max_body_bytes=5000) as f:
        with pytest.raises(BodyTooLarge) as caught:
            await _get(f, f"{server.url}/{kind}/5001")
        # The connection is not left in a broken state: the next request works.
        assert len((await _get(f, f"{server.url}/fixed/10")).body) == 10
    assert caught.value.status == "body_too_large"
    assert "max_body_bytes=5000" in str(caught.value)
    assert not caught.value.retryable


async def test_a_gzip_bomb_is_capped_by_its_decoded_size() -> None:
    import gzip

    packed = gzip.compress(b"\0" * 200_000)

    async def bomb(request: web.Request, context: ItemContext) -> web.StreamResponse:
        return web.Response(body=packed, headers={"Content-Encoding": "gzip"})

    assert len(packed) < 5000
    async with FaultServer(handler=bomb) as server, AiohttpFetcher(max_body_bytes=5000) as f:
        with pytest.raises(BodyTooLarge):
            await _get(f, f"{server.url}/bomb")


async def test_body_too_large_is_not_retried_by_the_engine() -> None:
    async with FaultServer(handler=_sized) as server, AiohttpFetcher(max_body_bytes=100) as f:
        async with run(
            _PathSource(server.url), ["fixed/101"], fetcher=f, config=CrawlConfig()
        ) as crawl:
            results = [result async for result in crawl]
        assert server.attempts_by_item() == {"/fixed/101": 1}
    assert not [r for r in results if isinstance(r.outcome, Ok)]
    assert crawl.summary.status_counts == {"body_too_large": 1}


class _PathSource:
    def __init__(self, base: str) -> None:
        self._base = base

    def key(self, item: str) -> str:
        return item

    def request(self, item: str) -> Request:
        return Request(url=f"{self._base}/{item}")

    def classify(self, item: str, response: Response) -> Outcome:
        return Ok(payload=response.body)


# --- redirects -------------------------------------------------------------------------------


async def test_redirects_come_back_as_answers_not_followed() -> None:
    async def hop(request: web.Request, context: ItemContext) -> web.StreamResponse:
        if request.path == "/old":
            raise web.HTTPMovedPermanently("/new")
        return web.Response(text="new")

    async with FaultServer(handler=hop) as server, AiohttpFetcher() as fetcher:
        response = await _get(fetcher, f"{server.url}/old")
        assert server.attempts_by_item() == {"/old": 1}
    assert response.status == 301
    assert response.headers["Location"] == "/new"


def _json(response: Response) -> dict[str, Any]:
    import json

    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


async def test_body_too_large_fails_the_item() -> None:
    async with FaultServer(handler=_sized) as server, AiohttpFetcher(max_body_bytes=100) as f:
        crawl = run(_PathSource(server.url), ["fixed/101"], fetcher=f, config=CrawlConfig())
        async with crawl:
            async for _ in crawl:
                pass
    assert [failed.status for failed in crawl.summary.failed] == ["body_too_large"]
    assert crawl.summary.requests == 1  # not retried: the same URL answers the same size again
