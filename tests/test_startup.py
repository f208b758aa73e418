"""Start-up cost: a directory crawl without a terminal imports neither aioboto3 nor rich."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import io, sys
import asyncrawl.cli
from asyncrawl.jobs.opendart import run_statements_job
from asyncrawl.progress import CrawlProgress
from asyncrawl.sinks import open_store
store = open_store("out-dir-never-created")
with CrawlProgress(total=1, stream=io.StringIO()):
    pass
heavy = ("aioboto3", "aiobotocore", "boto3", "botocore", "rich")
print(sorted(m for m in heavy if m in sys.modules))
"""


def _imported(probe: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return ran.stdout.strip()


def test_a_directory_run_without_a_terminal_imports_no_aws_sdk_and_no_rich() -> None:
    assert _imported(_PROBE) == "[]"


def test_s3_store_is_still_importable_from_sinks_and_opened_for_s3_uris() -> None:
    probe = (
        "from asyncrawl.sinks import S3Store, open_store\n"
        "print(type(open_store('s3://bucket/prefix')) is S3Store)"
    )
    assert _imported(probe) == "True"
