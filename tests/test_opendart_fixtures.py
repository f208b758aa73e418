"""The stand-in's answers have the shapes of real OpenDART answers (tests/fixtures/opendart/).

Each sample's source is cited in ``tests/fixtures/opendart/SOURCES.md``. The comparisons are of
keys and their order, per statement (``sj_div``) and report kind, not of amounts.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from asyncrawl.testing import OpenDartStandIn

FIXTURES = Path(__file__).parent / "fixtures" / "opendart"
KEY = "0123456789abcdef0123456789abcdef01234567"
SAMSUNG = "00126380"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def shapes(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """sj_div -> the keys of its rows, in order; every row of a statement has the same keys."""
    found: dict[str, list[str]] = {}
    for row in rows:
        keys = list(row)
        assert found.setdefault(row["sj_div"], keys) == keys, row
    return found


async def get(server: OpenDartStandIn, endpoint: str, **params: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.url}/api/{endpoint}",
            params={"crtfc_key": KEY, **params},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as response,
    ):
        assert response.status == 200
        return await response.read()


async def stand_in_rows(reprt_code: str, fs_div: str) -> list[dict[str, str]]:
    async with OpenDartStandIn(no_data_ratio=0.0) as server:
        body = json.loads(
            await get(
                server,
                "fnlttSinglAcntAll.json",
                corp_code=SAMSUNG,
                bsns_year="2024",
                reprt_code=reprt_code,
                fs_div=fs_div,
            )
        )
    assert body["status"] == "000"
    rows: list[dict[str, str]] = body["list"]
    return rows


def test_the_samples_show_the_documented_rules() -> None:
    quarter = shapes(sample("fnlttSinglAcntAll_quarter_11013_OFS.json")["list"])
    annual = shapes(sample("fnlttSinglAcntAll_annual_11011_CFS.json")["list"])
    assert {"frmtrm_q_nm", "frmtrm_q_amount", "frmtrm_add_amount"} <= set(quarter["IS"])
    assert not {"frmtrm_nm", "bfefrmtrm_nm", "bfefrmtrm_amount"} & set(quarter["IS"])
    assert not {k for k in quarter["BS"] if "_add_" in k or k.startswith("frmtrm_q")}
    assert "thstrm_add_amount" in annual["IS"]
    assert all(
        row.get("thstrm_add_amount", "") == ""
        for row in sample("fnlttSinglAcntAll_annual_11011_CFS.json")["list"]
    )


@pytest.mark.parametrize(
    ("reprt_code", "fixture"),
    [
        ("11013", "fnlttSinglAcntAll_quarter_11013_OFS.json"),
        ("11012", "fnlttSinglAcntAll_quarter_11013_OFS.json"),
        ("11014", "fnlttSinglAcntAll_quarter_11013_OFS.json"),
        ("11011", "fnlttSinglAcntAll_annual_11011_CFS.json"),
    ],
)
@pytest.mark.parametrize("fs_div", ["CFS", "OFS"])
async def test_stand_in_rows_have_the_real_keys_per_statement(
    reprt_code: str, fixture: str, fs_div: str
) -> None:
    real = shapes(sample(fixture)["list"])
    served = shapes(await stand_in_rows(reprt_code, fs_div))
    assert {"BS", "IS", "CIS", "CF"} <= set(served) <= {"BS", "IS", "CIS", "CF", "SCE"}
    for sj_div, keys in real.items():
        if sj_div in served:
            assert served[sj_div] == keys, sj_div
    # The guide gives CIS the columns of IS (no quarterly CIS in the samples).
    assert served["CIS"] == served["IS"]
    if "SCE" in served:
        # No annual SCE sample: it has the columns of CF (as the quarterly samples show).
        assert served["SCE"] == real["CF"]


async def test_quarterly_amounts_are_the_quarter_and_the_year_to_date() -> None:
    q1 = {
        (r["sj_div"], r["account_id"], r["account_nm"]): r
        for r in await stand_in_rows("11013", "CFS")
    }
    h1 = {
        (r["sj_div"], r["account_id"], r["account_nm"]): r
        for r in await stand_in_rows("11012", "CFS")
    }
    revenue = ("IS", "ifrs-full_Revenue", "수익(매출액)")
    assert q1[revenue]["thstrm_amount"] == q1[revenue]["thstrm_add_amount"]
    # Half year: three months in thstrm_amount, Q1 + Q2 in thstrm_add_amount.
    assert int(h1[revenue]["thstrm_add_amount"]) == pytest.approx(
        int(q1[revenue]["thstrm_amount"]) + int(h1[revenue]["thstrm_amount"]), abs=2
    )
    cash = ("CF", "ifrs-full_CashFlowsFromUsedInOperatingActivities", "영업활동 현금흐름")
    assert abs(int(h1[cash]["thstrm_amount"])) > abs(int(q1[cash]["thstrm_amount"]))


async def test_company_json_has_the_real_fields_and_corp_cls() -> None:
    real = sample("company.json")
    async with OpenDartStandIn() as server:
        served = json.loads(await get(server, "company.json", corp_code=SAMSUNG))
    assert set(served) <= set(real)
    assert {"status", "corp_code", "corp_name", "corp_name_eng", "stock_code", "corp_cls"} <= set(
        served
    )
    assert served["corp_cls"] == real["corp_cls"] == "Y"


async def test_list_json_pages_like_the_real_one() -> None:
    real = sample("list.json")
    async with OpenDartStandIn(no_data_ratio=0.0) as server:
        served = json.loads(await get(server, "list.json", corp_code=SAMSUNG, page_count="5"))
    assert list(served) == list(real)
    assert list(served["list"][0]) == list(real["list"][0])


async def test_corp_code_xml_entries_have_the_real_tags() -> None:
    real = ElementTree.fromstring((FIXTURES / "CORPCODE.xml").read_bytes())  # noqa: S314
    real_tags = [child.tag for child in real.findall("list")[0]]
    async with OpenDartStandIn() as server:
        body = await get(server, "corpCode.xml")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        served = ElementTree.fromstring(archive.read("CORPCODE.xml"))  # noqa: S314
    for entry in served.findall("list"):
        assert [child.tag for child in entry] == real_tags
    unlisted = real.findall("list")[0].findtext("stock_code")
    assert unlisted == " "
