"""Company lists as Korean users have them, through the command line against the stand-in.

CP949 files with the old Athena columns, files of stock codes alone, and the list that
``asyncrawl companies`` writes (UTF-8 with a BOM, so Korean Excel shows the names).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from asyncrawl.sources.opendart import parse_companies
from asyncrawl.testing.opendart import DELISTED_COMPANIES, DEMO_COMPANIES, OpenDartStandIn
from support.cli_process import run_cli

KEY = "Lists0Test1Key2For3The4Stand5In6abcdefgh"
assert len(KEY) == 40


async def asyncrawl(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args, key=KEY)


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


# --- stock codes alone --------------------------------------------------------------------------


def stock_codes_file(tmp_path: Path, *codes: str) -> Path:
    path = tmp_path / "stocks.csv"
    path.write_text("stock_code\n" + "".join(f"{code}\n" for code in codes), encoding="utf-8")
    return path


def corp_code_downloads(server: OpenDartStandIn) -> int:
    return sum(arrival.path.endswith("/corpCode.xml") for arrival in server.arrivals)


async def test_a_stock_codes_only_list_is_resolved_through_cached_corp_code_xml(
    tmp_path: Path,
) -> None:
    companies = stock_codes_file(tmp_path, *(c["stock_code"] for c in DEMO_COMPANIES))
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        code, _, stderr = await asyncrawl(*crawl_args(server, companies, out))
        asked = {item.split("/")[0] for item in server.attempts_by_item() if "/" in item}
        downloads_first = corp_code_downloads(server)
        again, _, again_err = await asyncrawl(
            *crawl_args(server, companies, out)[:-1], "--run-id=lists-2"
        )
        downloads_total = corp_code_downloads(server)
    assert code == 0, stderr
    assert again == 0, again_err
    assert asked >= {c["corp_code"] for c in DEMO_COMPANIES}
    done = summary(out, "lists")
    assert done["planned"] == done["ok"] + done["no_data"] == len(DEMO_COMPANIES) * 2
    # Downloaded once, then read from the cache under _meta/, never under data/.
    assert (downloads_first, downloads_total) == (1, 1)
    cached = json.loads((out / "_meta" / "opendart" / "corp_codes.json").read_bytes())
    assert cached["fetched_at"]
    assert not list((out / "data").rglob("*.json"))
    # The rows carry the stock code and the name corpCode.xml gave.
    first = next((out / "data").rglob("00126380.jsonl.gz"))
    row = json.loads(gzip.decompress(first.read_bytes()).splitlines()[0])
    assert (row["stock_code"], row["corp_name"]) == ("005930", "삼성전자")


async def test_stock_codes_that_do_not_resolve_are_bad_input_with_their_lines(
    tmp_path: Path,
) -> None:
    companies = stock_codes_file(tmp_path, "005930", "999999", "000660", "0000Z9")
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        code, _, stderr = await asyncrawl(*crawl_args(server, companies, out))
        statements = [a for a in server.arrivals if a.path.endswith("fnlttSinglAcntAll.json")]
    assert code == 2, stderr
    assert "line 3: corp_code" in stderr
    assert "line 5: corp_code" in stderr
    assert "999999" in stderr
    assert "line 2" not in stderr
    assert statements == []  # refused before any statement was requested


async def test_corp_codes_file_replaces_the_download(tmp_path: Path) -> None:
    table = tmp_path / "listed.csv"
    out = tmp_path / "out"
    async with OpenDartStandIn() as server:
        code, _, stderr = await asyncrawl(
            "companies", f"--output={table}", f"--base-url={server.url}/api/"
        )
        assert code == 0, stderr
        server.reset_log()
        companies = stock_codes_file(tmp_path, "005930", "0126Z0")
        code, _, stderr = await asyncrawl(
            *crawl_args(server, companies, out), f"--corp-codes={table}"
        )
        downloads = corp_code_downloads(server)
    assert code == 0, stderr
    assert downloads == 0
    assert summary(out, "lists")["planned"] == 4
    assert not (out / "_meta" / "opendart" / "corp_codes.json").exists()


async def test_companies_leaves_delisted_out_unless_asked(tmp_path: Path) -> None:
    listed_csv = tmp_path / "listed.csv"
    every_csv = tmp_path / "every.csv"
    async with OpenDartStandIn() as server:
        base = f"--base-url={server.url}/api/"
        out = f"--out={tmp_path / 'out'}"
        code, _, stderr = await asyncrawl("companies", f"--output={listed_csv}", base, out)
        assert code == 0, stderr
        code, _, stderr = await asyncrawl(
            "companies", f"--output={every_csv}", base, out, "--listed-from=all"
        )
        assert code == 0, stderr
    listed = {c.corp_code for c in parse_companies(listed_csv.read_bytes(), name="l.csv")}
    every = {c.corp_code for c in parse_companies(every_csv.read_bytes(), name="e.csv")}
    delisted = {c["corp_code"] for c in DELISTED_COMPANIES}
    assert listed == {c["corp_code"] for c in DEMO_COMPANIES}
    assert every == listed | delisted
    assert (tmp_path / "out" / "_meta" / "opendart" / "corp_cls.json").exists()
