"""A local S3 (and SSM, Secrets Manager, Lambda, ...) for tests: moto's server on loopback.

Use it from any test module by registering this module as a plugin::

    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        from support.moto_s3 import MotoS3

    pytest_plugins = ["support.moto_s3"]

    async def test_something(moto_s3: MotoS3) -> None:
        ...  # aioboto3 / boto3 clients created now talk to moto; moto_s3.bucket exists

``tests/`` is on ``sys.path`` under pytest (it holds the root ``conftest.py`` and no
``__init__.py``), so the module is ``support.moto_s3``; ``tests.support`` is not importable
with a plain ``pytest`` run. Registering it as a plugin, rather than importing the fixture
function, avoids ruff's F811 on the test's parameter; importing ``MotoS3`` only for type
checking lets pytest be the first to import the module (no assertion-rewrite warning).
Adding ``pytest_plugins = ["support.moto_s3"]`` to ``tests/conftest.py`` makes the fixture
available everywhere without the per-module line.

One ``ThreadedMotoServer`` is started on ``127.0.0.1`` and a free port the first time a test
asks for it, and stopped when the test session ends (it takes half a second to stop, so one per
test would be slow). Each test gets a clean server: the fixture resets moto's state first.
The fixture points boto3's own settings at the server through ``monkeypatch``:
``AWS_ENDPOINT_URL_S3`` and ``AWS_ENDPOINT_URL`` (every other service), fake credentials and
``us-east-1``, and it hides any real AWS configuration of the machine. Code under test needs
no special hooks: it uses boto3's settings like it would in AWS.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from asyncrawl.sinks import BlobStore, DirectoryStore, S3Store

__all__ = ["MotoS3", "moto_s3", "moto_server_endpoint"]

REGION = "us-east-1"
BUCKET = "asyncrawl-test"

_lock = threading.Lock()
_server: ThreadedMotoServer | None = None
_endpoint: str | None = None


def moto_server_endpoint(config: pytest.Config) -> str:
    """The endpoint of this session's moto server, starting it on first use."""
    global _server, _endpoint
    with _lock:
        if _endpoint is None:
            # werkzeug logs every request at INFO; failures are what a test report needs.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _endpoint = server, f"http://{host}:{port}"
            config.add_cleanup(_stop)
        return _endpoint


def _stop() -> None:
    global _server, _endpoint
    with _lock:
        server, _server, _endpoint = _server, None, None
    if server is not None:
        server.stop()


@dataclass(frozen=True, slots=True)
class MotoS3:
    """The running local AWS: its endpoint, region and a bucket created for this test."""

    endpoint: str
    region: str
    bucket: str

    def client(self, service: str = "s3") -> Any:
        """A plain (synchronous) boto3 client for ``service``, for setting up and asserting.

        It talks to moto directly, even when a test points boto3's environment at a proxy.
        """
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint)

    def create_bucket(self, name: str, *, versioned: bool = False) -> str:
        """Create another bucket (optionally versioned); returns its name."""
        self.client().create_bucket(Bucket=name)
        if versioned:
            self.enable_versioning(name)
        return name

    def enable_versioning(self, bucket: str | None = None) -> None:
        """Turn on versioning for ``bucket`` (this test's bucket by default)."""
        self.client().put_bucket_versioning(
            Bucket=bucket or self.bucket, VersioningConfiguration={"Status": "Enabled"}
        )

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        """Every object key under ``prefix`` in ``bucket`` (this test's bucket by default)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            entry["Key"]
            for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix)
            for entry in page.get("Contents", ())
        ]

    def versions(self, key: str, bucket: str | None = None) -> list[dict[str, Any]]:
        """Every stored version of ``key`` (needs versioning), newest first."""
        response = self.client().list_object_versions(Bucket=bucket or self.bucket, Prefix=key)
        return [v for v in response.get("Versions", ()) if v["Key"] == key]


def _reset(endpoint: str) -> None:
    # The URL is this session's loopback moto server (plain http), never anything remote.
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


@pytest.fixture
def moto_s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """A clean moto server with one bucket, and boto3's environment pointing at it."""
    endpoint = moto_server_endpoint(request.config)
    _reset(endpoint)
    # A developer's own profile, config file or session token must not leak into tests.
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/asyncrawl-test/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/asyncrawl-test/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    local = MotoS3(endpoint=endpoint, region=REGION, bucket=BUCKET)
    local.create_bucket(BUCKET)
    return local


@pytest.fixture(params=["directory", "s3"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, moto_s3: MotoS3
) -> AsyncIterator[BlobStore]:
    """An open store of each kind, so a behaviour is checked on a directory and on S3 alike."""
    if request.param == "directory":
        async with DirectoryStore(tmp_path) as directory:
            yield directory
    else:
        async with S3Store(moto_s3.bucket, "out/prefix") as s3:
            yield s3
