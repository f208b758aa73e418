"""Run the ``asyncrawl`` command line in a child process, as a user would, with a test key."""

from __future__ import annotations

import asyncio
import os
import sys

__all__ = ["run_cli"]


async def run_cli(*args: str, key: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """``python -m asyncrawl ARGS`` with ``DART_API_KEY=key``: (exit code, stdout, stderr)."""
    env = {**os.environ, "DART_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncrawl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
