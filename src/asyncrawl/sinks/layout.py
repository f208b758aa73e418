"""The output layout: every key asyncrawl writes, the same under a directory or an S3 prefix.

```
data/{k1}={v1}/{k2}={v2}/.../{name}        (OpenDART: year=/report=/fs=/{corp_code}.jsonl.gz)
_meta/runs/{run_id}/summary.json
_meta/runs/{run_id}/journal/part-{NNNNNN}-{random}.jsonl
_meta/runs/{run_id}/journal/checkpoint-{NNNNNN}-{random}.jsonl   (the union of the parts it names)
_meta/runs/{run_id}/state/{name}
```

``data/`` holds nothing but Hive-style partitions (:func:`partitioned_key`), so a Glue crawler
or an Athena, DuckDB or Spark table can point at it. Which partitions a job uses is the job's
business (the OpenDART layout lives in :mod:`asyncrawl.sources.opendart.layout`).

Keys are ``/``-separated and relative to the store's root; :func:`validate_key` is what both
stores apply, so a key that works on a directory works on S3 and the other way round.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from ..errors import ConfigError

__all__ = [
    "DATA_PREFIX",
    "META_PREFIX",
    "journal_prefix",
    "new_run_id",
    "partitioned_key",
    "run_prefix",
    "state_key",
    "summary_key",
    "validate_key",
    "validate_prefix",
    "validate_run_id",
]

#: Where the data files live; what a table's location points at.
DATA_PREFIX = "data/"
#: Where run metadata lives, outside ``data/`` so table scans never see it.
META_PREFIX = "_meta/"

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A partition value or file stem: no separators, nothing a shell or a Hive path would mangle.
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Characters that a directory store cannot hold faithfully, or that make keys ambiguous.
_FORBIDDEN = re.compile(r"[\x00-\x1f\\]")


def validate_key(key: str, *, field: str = "key") -> str:
    """``key`` unchanged if it is a safe relative ``/``-separated key, else ConfigError.

    Refused: empty keys, absolute keys, empty parts (``a//b``, a trailing ``/``), ``.`` and
    ``..`` parts, backslashes and control characters. The same rule holds on every store, so
    a key cannot escape a directory root and means the same object everywhere.
    """
    if not key:
        raise ConfigError(field, "is empty; give a relative key such as 'data/x.jsonl.gz'")
    if key.startswith("/"):
        raise ConfigError(field, f"{key!r} is absolute; keys are relative to the store's root")
    if _FORBIDDEN.search(key):
        raise ConfigError(field, f"{key!r} holds a backslash or a control character; remove it")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(
                field, f"{key!r} has an empty, '.' or '..' part; write each part as a plain name"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """``prefix`` unchanged if it could start a valid key (empty, or ending in ``/``, is fine)."""
    if not prefix:
        return prefix
    # Every complete part must be valid; the last part may be a partial name or empty.
    head, _, tail = prefix.rpartition("/")
    if head:
        validate_key(head, field="prefix")
    elif prefix.startswith("/"):
        raise ConfigError("prefix", f"{prefix!r} is absolute; prefixes are relative to the root")
    if tail and _FORBIDDEN.search(tail):
        raise ConfigError("prefix", f"{prefix!r} holds a backslash or a control character")
    return prefix


def _segment(field: str, value: str) -> str:
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ConfigError(
            field, f"{value!r} cannot be a path segment; use letters, digits, '.', '_' or '-'"
        )
    return value


def partitioned_key(partitions: Sequence[tuple[str, str]], name: str) -> str:
    """A data file's key under Hive-style partitions: ``data/k1=v1/k2=v2/{name}``.

    Every name and value becomes one path segment, so each is checked: a value that would
    change the path (``..``, a slash, an empty string) raises ConfigError naming it. The
    caller picks partition names that do not repeat a field of the rows (Athena rejects a
    table whose partition keys duplicate a column).
    """
    parts = [f"{_segment(key, key)}={_segment(key, value)}" for key, value in partitions]
    return DATA_PREFIX + "/".join([*parts, _segment("name", name)])


def validate_run_id(run_id: str) -> str:
    """``run_id`` unchanged if it matches ``[A-Za-z0-9._-]{1,64}``, else ConfigError."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise ConfigError(
            "--run-id",
            f"{run_id!r} is not a run id; use 1 to 64 of letters, digits, '.', '_' or '-' "
            "(or leave it out for a fresh one)",
        )
    return run_id


def new_run_id() -> str:
    """A fresh run id that sorts by start time: ``20240131T235959Z-1a2b3c``.

    The wall clock is right here: the id names the run for people and listings; nothing
    measures durations with it. The random suffix keeps two runs started in the same second
    apart.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_prefix(run_id: str) -> str:
    """Where one run's metadata lives: ``_meta/runs/{run_id}/``."""
    return f"{META_PREFIX}runs/{validate_run_id(run_id)}/"


def summary_key(run_id: str) -> str:
    """The run summary: ``_meta/runs/{run_id}/summary.json``."""
    return f"{run_prefix(run_id)}summary.json"


def journal_prefix(run_id: str) -> str:
    """Where the run's journal parts live: ``_meta/runs/{run_id}/journal/``."""
    return f"{run_prefix(run_id)}journal/"


def state_key(run_id: str, name: str) -> str:
    """Continuation state too large for a token: ``_meta/runs/{run_id}/state/{name}``."""
    return f"{run_prefix(run_id)}state/{_segment('name', name)}"
