"""Keys that sign continuation tokens: never the upstream's API key.

Two sources, in this order:

- **A deployment secret** (``CONTINUATION_SECRET`` in the Lambda's environment, or whatever
  the caller passes to :class:`SecretKeys`): each run's key is
  ``HMAC-SHA256(secret, "asyncrawl run key\\0" + run_id)``, so a token of one run cannot be
  replayed as another's and nothing is stored. Rotating the secret invalidates tokens in
  flight (their runs resume from the journal with a fresh plan instead).
- **A random key per run** (:class:`StoredRunKeys`, the default): 32 random bytes written once
  to ``_meta/runs/{run_id}/token.key`` with a conditional put (``put_if_absent``: S3
  ``If-None-Match: *``), so two racing invocations end with one key. Tokens verify only
  while that object exists; rotating the DART key changes nothing. Anyone who can read the
  run's ``_meta/`` can mint tokens for it, so grant that prefix to the function only, or set a
  secret.

A run whose key is missing (a forged token naming an unknown run, a cleaned prefix) is a
:class:`~asyncrawl.errors.ContinuationError`: answer 400.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from typing import Any, Protocol

from ..errors import ConfigError, ContinuationError
from ..sinks.base import BlobStore

__all__ = ["KEY_BYTES", "RunKeys", "SecretKeys", "StoredRunKeys", "run_key_path"]

#: Bytes of a run's random key.
KEY_BYTES = 32
_DERIVE_CONTEXT = b"asyncrawl run key\x00"


def run_key_path(run_id: str) -> str:
    """Where a run's random signing key is kept, relative to the output root."""
    return f"_meta/runs/{run_id}/token.key"


class RunKeys(Protocol):
    """Gives the signing key of a run: ``create`` for signing, ``lookup`` for verifying."""

    async def create(self, run_id: str) -> bytes: ...

    async def lookup(self, run_id: str) -> bytes: ...


class SecretKeys:
    """Per-run keys derived from one deployment secret (at least 32 bytes of text)."""

    def __init__(self, secret: str | bytes, *, field: str = "CONTINUATION_SECRET") -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < 32:
            raise ConfigError(
                field, "is shorter than 32 characters; use e.g. `openssl rand -hex 32`"
            )
        self._secret = raw

    def _derive(self, run_id: str) -> bytes:
        return hmac.new(self._secret, _DERIVE_CONTEXT + run_id.encode(), hashlib.sha256).digest()

    async def create(self, run_id: str) -> bytes:
        """The run's key (derived; nothing stored)."""
        return self._derive(run_id)

    async def lookup(self, run_id: str) -> bytes:
        """The run's key (derived; nothing stored)."""
        return self._derive(run_id)

    def __repr__(self) -> str:  # never the secret
        return "SecretKeys(<secret>)"


class StoredRunKeys:
    """A random key per run, kept in the run's own ``_meta/`` folder of ``store``."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._cache: dict[str, bytes] = {}

    async def create(self, run_id: str) -> bytes:
        """The run's key, made and stored (first writer wins) if the run has none yet."""
        key = await self._read(run_id)
        if key is not None:
            return key
        fresh = _secrets.token_bytes(KEY_BYTES)
        put_if_absent: Any = getattr(self._store, "put_if_absent", None)
        path = run_key_path(run_id)
        if callable(put_if_absent):
            await put_if_absent(path, fresh, content_type="application/octet-stream")
        else:  # a store without conditional puts: last writer wins, then everyone re-reads
            await self._store.put(path, fresh, content_type="application/octet-stream")
        stored = await self._read(run_id)
        if stored is None:
            raise ContinuationError(f"continuation: the run's key {path} could not be stored")
        return stored

    async def lookup(self, run_id: str) -> bytes:
        """The run's stored key; ContinuationError when the run has none."""
        key = await self._read(run_id)
        if key is None:
            raise ContinuationError(
                f"continuation: run {run_id} has no signing key in this output location; "
                "the token was forged, altered, or made for another bucket or prefix"
            )
        return key

    async def _read(self, run_id: str) -> bytes | None:
        cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        data = await self._store.get(run_key_path(run_id))
        if data is None:
            return None
        if len(data) != KEY_BYTES:
            raise ContinuationError(
                f"continuation: {run_key_path(run_id)} is not a {KEY_BYTES}-byte key"
            )
        self._cache[run_id] = data
        return data
