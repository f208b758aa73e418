"""A BlobStore on a local directory: atomic writes by write-then-rename."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Self

from ..errors import ConfigError, SinkError
from ._threads import run_in_daemon_thread
from .layout import validate_key, validate_prefix

__all__ = ["DirectoryStore"]

# Temporary files are hidden siblings of their target, so the final rename stays inside one
# directory (and one file system, which is what makes os.replace atomic).
_TMP_SUFFIX = ".asyncrawl-tmp"
_TMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}" + re.escape(_TMP_SUFFIX) + "$")


class DirectoryStore:
    """Objects as files under ``root``; a key ``a/b/c`` is the file ``root/a/b/c``.

    ``put`` writes to a temporary name beside the target, fsyncs it, then renames it over the
    target: a reader sees the old file or the new one, never a part, and a failed write leaves
    no partial file at the key. All file I/O runs in daemon threads
    (:func:`~asyncrawl.sinks._threads.run_in_daemon_thread`, not the loop's default executor),
    so a slow disk does not stall the event loop and a hung one cannot keep the process alive
    once the caller gave up on the write. ``list`` yields keys in sorted order.

    It is its own async context manager (``async with DirectoryStore(path) as store``) so that
    callers treat it and :class:`~asyncrawl.sinks.s3.S3Store` alike; it holds no resources.
    """

    def __init__(self, root: Path | str) -> None:
        #: The directory holding every key (created on the first write).
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    async def __aenter__(self) -> Self:
        # Refuse a root that cannot hold files before a crawl spends requests on results it
        # could not keep.
        problem = await run_in_daemon_thread(lambda: writable_directory_problem(self.root))
        if problem is not None:
            raise ConfigError("root", problem)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def path_of(self, key: str) -> Path:
        """The file that holds ``key`` (after validating the key)."""
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` at ``key`` atomically, creating parent directories.

        ``content_type`` is accepted for the BlobStore protocol; files do not keep it.
        Raises SinkError (naming the file) when the write fails.
        """
        path = self.path_of(key)
        try:
            await run_in_daemon_thread(lambda: _write_atomic(path, data))
        except OSError as exc:
            raise SinkError(f"could not write {path}: {exc.strerror or exc}") from exc

    async def put_if_absent(self, key: str, data: bytes, *, content_type: str) -> bool:
        """Store ``data`` at ``key`` only if nothing is there yet; ``True`` if this call did.

        The file is written whole under a temporary name and then hard-linked to the key
        (``link`` fails when the target exists, atomically): of two writers exactly one wins,
        and a reader never sees a part. Where hard links are refused, an ``O_EXCL`` create
        does the same, except that the file is visible while it is being written.
        """
        path = self.path_of(key)
        try:
            return await run_in_daemon_thread(lambda: _write_exclusive(path, data))
        except OSError as exc:
            raise SinkError(f"could not write {path}: {exc.strerror or exc}") from exc

    async def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, or ``None`` when there is no such file."""
        path = self.path_of(key)
        try:
            return await run_in_daemon_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise SinkError(f"could not read {path}: {exc.strerror or exc}") from exc

    async def list(self, prefix: str) -> AsyncIterator[str]:
        """Every key that starts with ``prefix`` (a plain string prefix, as on S3), sorted."""
        validate_prefix(prefix)
        try:
            keys = await run_in_daemon_thread(lambda: _list_keys(self.root, prefix))
        except OSError as exc:
            raise SinkError(f"could not list {self.root / prefix}: {exc.strerror or exc}") from exc
        for key in keys:
            yield key

    async def aclose(self) -> None:
        """Nothing to release; present for the BlobStore protocol."""


def writable_directory_problem(root: Path) -> str | None:
    """Why ``root`` cannot hold the output (a file, under a file, not writable), or ``None``.

    Checked before a crawl spends requests on results it could not keep: the directory is
    created (it would be on the first write anyway) and a probe file is written and removed
    in it, which also catches read-only mounts and permissions that ``os.access`` misjudges.
    """
    fix = "give a directory you can write to, or s3://bucket/prefix"
    if root.exists() and not root.is_dir():
        return f"{root} is a file; {fix}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {root}: {exc.strerror or exc}; {fix}"
    probe = root / f".asyncrawl-probe.{secrets.token_hex(6)}{_TMP_SUFFIX}"
    try:
        with open(probe, "xb"):
            pass
    except OSError as exc:
        return f"cannot write in {root}: {exc.strerror or exc}; {fix}"
    probe.unlink(missing_ok=True)
    return None


def _write_exclusive(path: Path, data: bytes) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temporary(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        return _create_exclusive(path, data)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _create_exclusive(path: Path, data: bytes) -> bool:
    try:
        handle = open(path, "xb")  # noqa: SIM115 - closed below, after the fsync
    except FileExistsError:
        return False
    with handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(path.parent)
    return True


def _write_temporary(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
    try:
        # "xb": never follow or clobber something already at the temporary name; the mode is
        # the usual 0o666 minus umask (mkstemp's 0o600 would surprise readers of the output).
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            # Without fsync a crash after the rename can leave an empty file at the key.
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Some file systems refuse fsync on a directory: the data
    # is already safe then, so that refusal is not a failed write.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _list_keys(root: Path, prefix: str) -> list[str]:
    # Walk only the deepest directory the prefix names in full, then filter by string prefix.
    head = prefix.rpartition("/")[0]
    base = root.joinpath(*head.split("/")) if head else root
    if not base.is_dir():
        return []
    keys: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(base):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            if _TMP_NAME.match(name):
                continue
            key = name if rel_dir == "." else f"{rel_dir}/{name}"
            if key.startswith(prefix):
                keys.append(key)
    keys.sort()
    return keys
