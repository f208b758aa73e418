"""The public API: ``__all__`` is sorted, complete and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import asyncrawl


def _isort_style(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetically.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert asyncrawl.__all__ == sorted(asyncrawl.__all__, key=_isort_style)
    for name in asyncrawl.__all__:
        assert getattr(asyncrawl, name) is not None, name


def test_importing_the_package_does_not_import_aiohttp() -> None:
    # The safe caller runs in MWAA with boto3 alone: the package root must stay lazy.
    code = "import sys, asyncrawl, asyncrawl.errors; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_source_authors_find_the_outcome_vocabulary_at_the_root() -> None:
    for name in ("Ok", "NoData", "Transient", "SlowDown", "Fatal", "Failed", "Unusable"):
        assert name in asyncrawl.__all__, name


def test_source_and_sink_authors_find_their_helpers_at_the_root() -> None:
    # What a second crawler needs without reading asyncrawl's source (issue: library reuse).
    for name in (
        "classify_http_status",
        "parse_retry_after",
        "BodyTooLarge",
        "DirectoryStore",
        "S3Store",
        "RecordSink",
        "open_store",
        "ItemCodec",
    ):
        assert name in asyncrawl.__all__, name
    assert asyncrawl.classify_http_status(503, {"Retry-After": "3"}) == asyncrawl.SlowDown(
        reason="HTTP 503", status="http_503", retry_after=3.0
    )
