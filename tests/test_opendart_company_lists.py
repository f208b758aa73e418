"""Company lists as Korean users have them, through the command line against the stand-in.

CP949 files with the old Athena columns, files of stock codes alone, and the list that
``asyncrawl companies`` writes (UTF-8 with a BOM, so Korean Excel shows the names).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from asyncrawl.sources.opendart import parse_companies
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn

KEY = "Lists0Test1Key2For3The4Stand5In6abcdefgh"
assert len(KEY) == 40


async def asyncrawl(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DART_API_KEY": KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncrawl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def summary(out: Path, run_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (out / "_meta" / "runs" / run_id / "summary.json").read_text(encoding="utf-8")
    )
    return loaded


def crawl_args(server: OpenDartStandIn, companies: Path, out: Path, *extra: str) -> list[str]:
    return [
        "crawl",
        "--kind=annual",
        f"--companies={companies}",
        "--years",
        "2023",
        f"--base-url={server.url}/api/",
        f"--out={out}",
        "--run-id=lists",
        *extra,
    ]


async def test_a_cp949_file_with_the_old_athena_columns_crawls_every_company(
    tmp_path: Path,
) -> None:
    # As Korean Excel saves it: CP949, CRLF; stock_nm is the stock's name.
    lines = ["dart_corp_code,stock_code,stock_nm,dart_corp"]
    lines += [
        f"{int(c['corp_code'])},{c['stock_code']},{c['corp_name']},{c['corp_name']}(주)"
        for c in DEMO_COMPANIES
    ]
    companies = tmp_path / "athena.csv"
    companies.write_bytes("\r\n".join(lines).encode("cp949") + b"\r\n")
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        code, _, stderr = await asyncrawl(*crawl_args(server, companies, out))
        asked = {item.split("/")[0] for item in server.attempts_by_item()}
    assert code == 0, stderr
    assert "read as CP949" in stderr
    assert asked == {c["corp_code"] for c in DEMO_COMPANIES}
    done = summary(out, "lists")
    assert done["planned"] == done["ok"] + done["no_data"] == len(DEMO_COMPANIES) * 2


async def test_companies_writes_utf8_with_a_bom_that_reads_back(tmp_path: Path) -> None:
    output = tmp_path / "listed.csv"
    async with OpenDartStandIn() as server:
        code, stdout, stderr = await asyncrawl(
            "companies", f"--output={output}", f"--base-url={server.url}/api/"
        )
    assert code == 0, stderr
    data = output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Korean Excel needs the BOM to see UTF-8
    assert "삼성전자".encode() in data
    listed = parse_companies(data, name="listed.csv")
    assert {c.corp_code for c in listed} >= {c["corp_code"] for c in DEMO_COMPANIES}
    assert "listed companies" in stdout
