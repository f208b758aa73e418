"""Where results go: directories and S3, in one layout.

- :mod:`~asyncrawl.sinks.base`: the ``Sink`` and ``BlobStore`` protocols.
- :mod:`~asyncrawl.sinks.layout`: every key asyncrawl writes, and run ids.
- :mod:`~asyncrawl.sinks.directory` and :mod:`~asyncrawl.sinks.s3`: the two stores;
  :func:`open_store` picks one from a URI.
- :mod:`~asyncrawl.sinks.bounded`: every store call ends within a time limit.
- :mod:`~asyncrawl.sinks.lease`: one holder of a run at a time.
- :mod:`~asyncrawl.sinks.records`: rows to deterministic gzip-compressed JSON Lines.
- :mod:`~asyncrawl.sinks.journal`: finished items, summary and state of a run.
- :mod:`~asyncrawl.sinks.record_sink`: the sink a crawl writes through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BlobStore, Sink
from .bounded import BoundedStore, bounded, describe_store
from .directory import DirectoryStore
from .journal import (
    JournalStatus,
    RunJournal,
    read_run_state,
    read_summary,
    write_run_state,
    write_summary,
)
from .layout import (
    DATA_PREFIX,
    META_PREFIX,
    journal_prefix,
    new_run_id,
    partitioned_key,
    run_prefix,
    state_key,
    summary_key,
    validate_key,
    validate_run_id,
)
from .lease import RunLease, lease_prefix
from .record_sink import DATA_CONTENT_TYPE, RecordSink
from .records import decode_jsonl_gz, encode_jsonl_gz
from .store import open_store

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = [
    "DATA_CONTENT_TYPE",
    "DATA_PREFIX",
    "META_PREFIX",
    "BlobStore",
    "BoundedStore",
    "DirectoryStore",
    "JournalStatus",
    "RecordSink",
    "RunJournal",
    "RunLease",
    "S3Store",
    "Sink",
    "bounded",
    "decode_jsonl_gz",
    "describe_store",
    "encode_jsonl_gz",
    "journal_prefix",
    "lease_prefix",
    "new_run_id",
    "open_store",
    "partitioned_key",
    "read_run_state",
    "read_summary",
    "run_prefix",
    "state_key",
    "summary_key",
    "validate_key",
    "validate_run_id",
    "write_run_state",
    "write_summary",
]


def __getattr__(name: str) -> Any:
    # S3Store pulls in aioboto3 and botocore (about 0.3 s): only a run that writes to S3 pays.
    if name == "S3Store":
        from .s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
