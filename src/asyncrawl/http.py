"""HTTP as the engine sees it: a Request, a Response, and the Fetcher that turns one into the other.

:class:`AiohttpFetcher` is the real one: one ``aiohttp.ClientSession`` per run (pooling,
keep-alive), created and closed inside the running loop, with a per-attempt timeout, and errors
whose text never carries a secret query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .redact import redact_url

__all__ = [
    "Fetcher",
    "Request",
    "Response",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One HTTP request an item needs.

    ``secret_params`` names query parameters whose values must never be shown (they are
    masked in every URL asyncrawl prints). ``weight`` is what one attempt costs in the rate
    limiter. ``idempotent`` requests may be hedged.
    """

    url: str
    method: str = "GET"
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    secret_params: frozenset[str] = frozenset()
    weight: int = 1
    idempotent: bool = True

    @property
    def display_url(self) -> str:
        """The URL with its query, secrets masked: safe to log."""
        if not self.params:
            return redact_url(self.url, self.secret_params)
        from urllib.parse import urlencode

        return redact_url(f"{self.url}?{urlencode(dict(self.params))}", self.secret_params)

    @property
    def host(self) -> str:
        """The host this request goes to (the key of the per-host concurrency limit)."""
        from urllib.parse import urlsplit

        return urlsplit(self.url).netloc


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
