"""``asyncrawl demo --quick``: no key, nothing but loopback, both timings, real output files."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

# Runs the real command line with an audit hook that refuses (and reports) every connection or
# name lookup that is not loopback, and counts the loopback connections, so the test can tell
# "no outside network" from "no network at all".
_LOOPBACK_ONLY = """
import atexit, socket, sys
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
connects = 0
def hook(event, args):
    global connects
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple):
            if address[0] not in LOOPBACK:
                sys.stderr.write(f"NON-LOOPBACK connect {address[0]}\\n")
                raise PermissionError(f"test forbids {address[0]}")
            connects += 1
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host is not None and host not in LOOPBACK:
            sys.stderr.write(f"NON-LOOPBACK lookup {host}\\n")
            raise PermissionError(f"test forbids {host}")
sys.addaudithook(hook)
atexit.register(lambda: sys.stderr.write(f"LOOPBACK-CONNECTS {connects}\\n"))
from asyncrawl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_quick_demo_crawls_the_stand_in_on_loopback_and_reports_the_speed_up(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo-out"
    env = {k: v for k, v in os.environ.items() if k != "DART_API_KEY"}  # the demo needs no key
    done = subprocess.run(
        [sys.executable, "-c", _LOOPBACK_ONLY, "demo", "--quick", f"--out={out}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "NON-LOOPBACK" not in done.stderr
    connects = re.search(r"LOOPBACK-CONNECTS (\d+)", done.stderr)
    assert connects is not None
    assert int(connects.group(1)) > 0

    old = re.search(r"old way:\s+([\d.]+) s", done.stdout)
    new = re.search(r"asyncrawl:\s+([\d.]+) s\s+\(([\d.]+)x faster\)", done.stdout)
    assert old is not None, done.stdout
    assert new is not None, done.stdout
    assert float(old.group(1)) > 0
    assert float(new.group(2)) > 0
    assert "make benchmark" in done.stdout  # the demo points at the full suite

    summaries = list((out / "_meta" / "runs").glob("*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text(encoding="utf-8"))
    assert summary["planned"] == 48  # 3 companies x 2 years x 4 reports x CFS/OFS
    assert summary["failed"] == []
    assert summary["remaining"] == []
    assert summary["ok"] + summary["no_data"] == 48
    assert str(summaries[0]) in done.stdout

    files = sorted((out / "data").glob("year=*/report=*/fs=*/*.jsonl.gz"))
    assert len(files) == summary["ok"]
    rows = [orjson.loads(line) for line in gzip.decompress(files[0].read_bytes()).splitlines()]
    assert rows
    assert all(isinstance(value, str) for row in rows for value in row.values())
