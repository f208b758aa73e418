"""Open the store a URI names: a directory or ``s3://bucket/prefix``."""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager

from ..errors import ConfigError
from .base import BlobStore
from .directory import DirectoryStore

__all__ = ["open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FIX = "write it as s3://BUCKET or s3://BUCKET/PREFIX (or a local directory path)"


def open_store(uri: str, *, max_concurrency: int = 8) -> AbstractAsyncContextManager[BlobStore]:
    """The store ``uri`` names, as an async context manager that closes it on exit.

    ``s3://bucket/prefix`` gives an :class:`S3Store` (``max_concurrency`` bounds its
    requests); anything else is a local directory (:class:`DirectoryStore`). A malformed S3
    URI, or another scheme such as ``gs://``, is a ConfigError naming ``uri`` (the command line
    maps it to ``--out``, the Lambda to ``S3_BUCKET``/``S3_PREFIX``).
    """
    match = _SCHEME.match(uri)
    # One-letter schemes are Windows drive letters ("C:\\out"), i.e. directories.
    if match is None or len(match.group(1)) == 1:
        if not uri:
            raise ConfigError("uri", "is empty; give a directory or s3://BUCKET/PREFIX")
        return DirectoryStore(uri)
    scheme = match.group(1).lower()
    if scheme != "s3":
        raise ConfigError("uri", f"{uri!r}: scheme {scheme!r} is not supported; {_FIX}")
    rest = uri[len("s3:") :]
    if not rest.startswith("//"):
        raise ConfigError("uri", f"{uri!r} is not an S3 URI; {_FIX}")
    bucket, _, prefix = rest[2:].partition("/")
    if not bucket:
        raise ConfigError("uri", f"{uri!r} names no bucket; {_FIX}")
    # Imported here: aioboto3 is slow to import and a directory run never needs it.
    from .s3 import S3Store

    try:
        return S3Store(bucket, prefix, max_concurrency=max_concurrency)
    except ConfigError as exc:
        raise ConfigError("uri", f"{uri!r}: {exc.field} {exc.problem}; {_FIX}") from None
