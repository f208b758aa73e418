"""The OpenDART stand-in answers like OpenDART: shapes, status codes, limits and faults."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from asyncrawl.errors import ConfigError
from asyncrawl.testing import DEMO_COMPANIES, FaultPlan, OpenDartStandIn, realistic_plan
from asyncrawl.testing.opendart import DELISTED_COMPANIES
from asyncrawl.testing.process import run_server_process

KEY = "0123456789abcdef0123456789abcdef01234567"
OTHER_KEY = "fedcba9876543210fedcba9876543210fedcba98"
SAMSUNG = "00126380"

COMMON_FIELDS = {
    "rcept_no",
    "reprt_code",
    "bsns_year",
    "corp_code",
    "sj_div",
    "sj_nm",
    "account_id",
    "account_nm",
    "account_detail",
    "thstrm_nm",
    "thstrm_amount",
    "frmtrm_nm",
    "frmtrm_amount",
    "bfefrmtrm_nm",
    "bfefrmtrm_amount",
    "ord",
    "currency",
}
# The amount columns of a quarterly row, per statement (see tests/fixtures/opendart/).
QUARTER_AMOUNTS = {
    "BS": {"thstrm_nm", "thstrm_amount", "frmtrm_nm", "frmtrm_amount"},
    "IS": {
        "thstrm_nm",
        "thstrm_amount",
        "thstrm_add_amount",
        "frmtrm_q_nm",
        "frmtrm_q_amount",
        "frmtrm_add_amount",
    },
    "CF": {"thstrm_nm", "thstrm_amount", "frmtrm_q_nm", "frmtrm_q_amount"},
}
QUARTER_AMOUNTS["CIS"] = QUARTER_AMOUNTS["IS"]
QUARTER_AMOUNTS["SCE"] = QUARTER_AMOUNTS["CF"]
ROW_IDENTITY = COMMON_FIELDS - {
    "thstrm_nm",
    "thstrm_amount",
    "frmtrm_nm",
    "frmtrm_amount",
    "bfefrmtrm_nm",
    "bfefrmtrm_amount",
}


def statement_params(**overrides: str) -> dict[str, str]:
    params = {
        "crtfc_key": KEY,
        "corp_code": SAMSUNG,
        "bsns_year": "2023",
        "reprt_code": "11011",
        "fs_div": "CFS",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value != "<absent>"}


async def call(
    session: aiohttp.ClientSession, server: OpenDartStandIn, endpoint: str, params: dict[str, str]
) -> tuple[int, Any]:
    url = f"{server.url}/api/{endpoint}"
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.json(content_type=None)


async def statements(
    session: aiohttp.ClientSession, server: OpenDartStandIn, **overrides: str
) -> dict[str, Any]:
    status, body = await call(
        session, server, "fnlttSinglAcntAll.json", statement_params(**overrides)
    )
    assert status == 200  # OpenDART answers every status as HTTP 200
    assert isinstance(body, dict)
    return body


async def corp_code_xml(
    session: aiohttp.ClientSession, server: OpenDartStandIn, key: str
) -> tuple[str, bytes]:
    url = f"{server.url}/api/corpCode.xml"
    params = {"crtfc_key": key}
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.read()


def parse_xml(data: bytes) -> ElementTree.Element:
    # The document comes from the stand-in this test started, not from an untrusted party.
    return ElementTree.fromstring(data)  # noqa: S314


# --- rows ------------------------------------------------------------------------------------


async def test_annual_rows_carry_dart_fields_without_fs_div_or_quarter_fields() -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        body = await statements(session, server)
    assert body["status"] == "000"
    assert body["message"] == "정상"
    rows = body["list"]
    assert 20 <= len(rows) <= 60
    for row in rows:
        # Annual IS/CIS rows also carry an empty cumulative amount; no row carries fs_div.
        extra = {"thstrm_add_amount"} if row["sj_div"] in {"IS", "CIS"} else set()
        assert set(row) == COMMON_FIELDS | extra
        assert row.get("thstrm_add_amount", "") == ""
        assert all(isinstance(value, str) for value in row.values())
        assert (row["corp_code"], row["bsns_year"], row["reprt_code"]) == (SAMSUNG, "2023", "11011")
        assert row["sj_div"] in {"BS", "IS", "CIS", "CF", "SCE"}
        assert re.fullmatch(r"-?\d+", row["thstrm_amount"])
        assert re.fullmatch(r"\d{14}", row["rcept_no"])
    names = {row["account_nm"] for row in rows}
    assert {"자산총계", "부채총계", "자본총계", "수익(매출액)"} <= names


@pytest.mark.parametrize("reprt_code", ["11013", "11012", "11014"])
async def test_quarterly_rows_carry_the_quarter_fields_of_their_statement(reprt_code: str) -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        body = await statements(session, server, reprt_code=reprt_code, fs_div="OFS")
    assert body["status"] == "000"
    for row in body["list"]:
        assert set(row) == ROW_IDENTITY | QUARTER_AMOUNTS[row["sj_div"]]
        assert "fs_div" not in row
        assert all(isinstance(value, str) for value in row.values())


async def test_the_same_item_answers_the_same_rows_whatever_the_attempt_or_seed() -> None:
    async with aiohttp.ClientSession() as session:
        async with OpenDartStandIn(plan=FaultPlan(seed=1), no_data_ratio=0.0) as server:
            first = await statements(session, server)
            again = await statements(session, server, crtfc_key=OTHER_KEY)
        async with OpenDartStandIn(plan=FaultPlan(seed=2), no_data_ratio=0.0) as other:
            elsewhere = await statements(session, other)
            separate = await statements(session, other, fs_div="OFS")
    assert first == again == elsewhere
    assert separate["list"] != first["list"]


async def test_items_are_keyed_by_the_question_never_by_the_key() -> None:
    async with OpenDartStandIn() as server, aiohttp.ClientSession() as session:
        await statements(session, server)
        await statements(session, server, crtfc_key=OTHER_KEY)
    assert server.attempts_by_item() == {f"{SAMSUNG}/2023/11011/CFS": 2}
    assert KEY not in repr(server.arrivals)


async def test_no_data_answers_are_deterministic_per_item() -> None:
    years = [str(year) for year in range(2015, 2025)]
    questions = [
        {"corp_code": company["corp_code"], "bsns_year": year, "reprt_code": reprt}
        for company in DEMO_COMPANIES
        for year in years
        for reprt in ("11011", "11013")
    ]
    seen = []
    for seed in (0, 9):
        empty = set()
        server = OpenDartStandIn(plan=FaultPlan(seed=seed), no_data_ratio=0.3)
        async with server, aiohttp.ClientSession() as session:
            for question in questions:
                body = await statements(session, server, **question)
                if body["status"] == "013":
                    assert body == {"status": "013", "message": "조회된 데이타가 없습니다."}
                    empty.add(tuple(question.values()))
                else:
                    assert body["status"] == "000"
        seen.append(empty)
    assert seen[0] == seen[1]
    assert len(seen[0]) / len(questions) == pytest.approx(0.3, abs=0.08)


@pytest.mark.parametrize("ratio", [0.0, 1.0])
async def test_no_data_ratio_bounds(ratio: float) -> None:
    async with OpenDartStandIn(no_data_ratio=ratio) as server, aiohttp.ClientSession() as session:
        statuses = {
            (await statements(session, server, bsns_year=str(year)))["status"]
            for year in range(2015, 2025)
        }
    assert statuses == ({"013"} if ratio else {"000"})


# --- status codes ---------------------------------------------------------------------------


async def test_an_unregistered_key_answers_010() -> None:
    async with OpenDartStandIn(api_key=KEY) as server, aiohttp.ClientSession() as session:
        assert (await statements(session, server, crtfc_key=OTHER_KEY)) == {
            "status": "010",
            "message": "등록되지 않은 키입니다.",
        }
        assert (await statements(session, server))["status"] in {"000", "013"}


@pytest.mark.parametrize(
    "key", ["short", "", "<absent>", "0123456789abcdef0123456789abcdef0123456!"]
)
async def test_any_well_formed_key_is_accepted_and_others_answer_010(key: str) -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        assert (await statements(session, server, crtfc_key=OTHER_KEY))["status"] == "000"
        assert (await statements(session, server, crtfc_key=key))["status"] == "010"


@pytest.mark.parametrize(
    "overrides",
    [
        {"corp_code": "0012638"},
        {"corp_code": "0012638X"},
        {"corp_code": "<absent>"},
        {"bsns_year": "2014"},
        {"bsns_year": "20x3"},
        {"bsns_year": "<absent>"},
        {"reprt_code": "11010"},
        {"fs_div": "XYZ"},
        {"fs_div": "<absent>"},
    ],
)
async def test_invalid_fields_answer_100(overrides: dict[str, str]) -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        body = await statements(session, server, **overrides)
    assert body["status"] == "100"
    assert "list" not in body


async def test_past_the_rate_window_the_ip_is_blocked_not_answered_020() -> None:
    # OpenDART blocks an IP past ~1,000 requests a minute: reset connections, never a 020.
    plan = FaultPlan(rate_limit=(3, 60.0))
    async with OpenDartStandIn(plan=plan) as server, aiohttp.ClientSession() as session:
        bodies = [await statements(session, server, bsns_year=str(y)) for y in range(2019, 2022)]
        for year in (2022, 2023):
            with pytest.raises(aiohttp.ClientConnectionError):
                await statements(session, server, bsns_year=str(year))
        server.unblock()
        server.plan = FaultPlan()
        after = await statements(session, server)
    assert all(body["status"] in {"000", "013"} for body in bodies)
    # The arrival that breached the window, then the block.
    assert [a.fault for a in server.arrivals][3:5] == ["rate_limit", "blocked"]
    assert after["status"] in {"000", "013"}


async def test_the_quota_is_daily_and_a_new_day_restores_it() -> None:
    async with OpenDartStandIn(quota=1) as server, aiohttp.ClientSession() as session:
        first = await statements(session, server)
        spent = await statements(session, server)
        server.new_day()
        next_day = await statements(session, server)
    assert first["status"] in {"000", "013"}
    assert spent["status"] == "020"
    assert next_day["status"] in {"000", "013"}


async def test_a_maintenance_window_opens_after_the_given_requests() -> None:
    server = OpenDartStandIn(no_data_ratio=0.0, maintenance_after=2)
    async with server, aiohttp.ClientSession() as session:
        statuses = [(await statements(session, server))["status"] for _ in range(4)]
        server.maintenance = False
        statuses.append((await statements(session, server))["status"])
    assert statuses == ["000", "000", "800", "800", "000"]


async def test_past_the_quota_every_answer_is_020() -> None:
    async with OpenDartStandIn(quota=2) as server, aiohttp.ClientSession() as session:
        first = [(await statements(session, server))["status"] for _ in range(2)]
        later = [(await statements(session, server))["status"] for _ in range(3)]
        content_type, body = await corp_code_xml(session, server, KEY)
    assert "020" not in first
    assert later == ["020", "020", "020"]
    assert content_type.startswith("application/xml")
    assert parse_xml(body).findtext("status") == "020"
    assert server.requests == 6


async def test_maintenance_answers_800_while_switched_on() -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        server.maintenance = True
        during = await statements(session, server)
        server.maintenance = False
        after = await statements(session, server)
    assert during["status"] == "800"
    assert after["status"] == "000"
    assert [a.fault for a in server.arrivals] == ["maintenance", None]


async def test_a_blocked_ip_sees_reset_connections() -> None:
    async with OpenDartStandIn(blocked=True) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await statements(session, server)
        server.blocked = False
        assert (await statements(session, server))["status"] in {"000", "013"}
    assert server.arrivals[0].fault == "blocked"


async def test_plan_faults_apply_before_the_api_answers() -> None:
    plan = FaultPlan(fail_first_attempts=1)
    server = OpenDartStandIn(plan=plan, no_data_ratio=0.0)
    async with server, aiohttp.ClientSession() as session:
        url = f"{server.url}/api/fnlttSinglAcntAll.json"
        async with session.get(url, params=statement_params()) as response:
            assert response.status == 503
        assert (await statements(session, server))["status"] == "000"


async def test_truncated_statements_are_a_payload_error() -> None:
    plan = FaultPlan(p_truncate=1.0)
    server = OpenDartStandIn(plan=plan, no_data_ratio=0.0)
    async with server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            await statements(session, server)


async def test_unknown_endpoints_are_404() -> None:
    async with (
        OpenDartStandIn() as server,
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/api/nothing.json") as response,
    ):
        assert response.status == 404


async def test_company_profile_is_a_flat_object() -> None:
    async with OpenDartStandIn() as server, aiohttp.ClientSession() as session:
        _, body = await call(
            session, server, "company.json", {"crtfc_key": KEY, "corp_code": SAMSUNG}
        )
        _, unknown = await call(
            session, server, "company.json", {"crtfc_key": KEY, "corp_code": "99999999"}
        )
    assert body["status"] == "000"
    assert (body["corp_name"], body["stock_code"]) == ("삼성전자", "005930")
    assert "list" not in body
    assert unknown["status"] == "013"


# --- corpCode.xml ---------------------------------------------------------------------------


async def test_corp_code_xml_is_a_zip_of_every_known_company() -> None:
    async with OpenDartStandIn() as server, aiohttp.ClientSession() as session:
        _, body = await corp_code_xml(session, server, KEY)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["CORPCODE.xml"]
        root = parse_xml(archive.read("CORPCODE.xml"))
    entries = [{child.tag: child.text or "" for child in entry} for entry in root.findall("list")]
    assert all(
        list(e) == ["corp_code", "corp_name", "corp_eng_name", "stock_code", "modify_date"]
        for e in entries
    )
    listed = {e["corp_code"]: e["stock_code"] for e in entries if e["stock_code"].strip()}
    # Delisted companies keep their stock code in corpCode.xml, as OpenDART's do.
    assert listed == {c["corp_code"]: c["stock_code"] for c in DEMO_COMPANIES + DELISTED_COMPANIES}
    unlisted = [e for e in entries if not e["stock_code"].strip()]
    assert unlisted
    assert all(e["stock_code"] == " " for e in unlisted)  # a single space, as OpenDART sends
    assert all(re.fullmatch(r"\d{8}", e["modify_date"]) for e in entries)


async def test_corp_code_xml_lists_the_companies_given() -> None:
    companies = [{"corp_code": "00000001", "corp_name": "A&B", "stock_code": "123456"}]
    server = OpenDartStandIn(corp_codes=companies)
    async with server, aiohttp.ClientSession() as session:
        _, body = await corp_code_xml(session, server, KEY)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        root = parse_xml(archive.read("CORPCODE.xml"))
    assert [e.findtext("corp_name") for e in root.findall("list")] == ["A&B"]


async def test_corp_code_xml_with_a_bad_key_is_an_xml_error_not_a_zip() -> None:
    async with OpenDartStandIn(api_key=KEY) as server, aiohttp.ClientSession() as session:
        content_type, body = await corp_code_xml(session, server, OTHER_KEY)
    assert not zipfile.is_zipfile(io.BytesIO(body))
    assert content_type.startswith("application/xml")
    root = parse_xml(body)
    assert (root.findtext("status"), root.findtext("message")) == ("010", "등록되지 않은 키입니다.")


# --- presets and configuration --------------------------------------------------------------


def test_demo_companies_are_ten_well_formed_listed_companies() -> None:
    assert len(DEMO_COMPANIES) == 10
    assert len({c["corp_code"] for c in DEMO_COMPANIES}) == 10
    for company in DEMO_COMPANIES:
        assert set(company) == {"corp_code", "stock_code", "corp_name"}
        assert re.fullmatch(r"\d{8}", company["corp_code"])
        assert re.fullmatch(r"[0-9A-Z]{6}", company["stock_code"])
    assert any(not c["stock_code"].isdigit() for c in DEMO_COMPANIES)
    assert {
        "corp_code": "00126380",
        "stock_code": "005930",
        "corp_name": "삼성전자",
    } in DEMO_COMPANIES


def test_realistic_plan_has_latency_some_503s_and_a_minute_window() -> None:
    plan = realistic_plan(seed=4)
    assert plan.seed == 4
    assert plan.rate_limit == (1000, 60.0)  # past it, the IP is blocked
    delays = [plan.delay_for(f"i{n}", 1) for n in range(2000)]
    assert sum(delays) / len(delays) == pytest.approx(0.15, abs=0.01)
    faults = [plan.fault_for(f"i{n}", 1) for n in range(2000)]
    assert faults.count("503") / len(faults) == pytest.approx(0.02, abs=0.01)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api_key": "too-short"}, "api_key"),
        ({"no_data_ratio": 1.5}, "no_data_ratio"),
        ({"quota": -1}, "quota"),
        ({"corp_codes": [{"corp_code": "123", "corp_name": "x"}]}, "corp_codes"),
    ],
)
def test_bad_stand_in_settings_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        OpenDartStandIn(**kwargs)
    assert raised.value.field == field


async def test_the_stand_in_runs_in_another_process() -> None:
    with run_server_process("opendart", FaultPlan(), api_key=KEY, no_data_ratio=0.0) as url:
        async with aiohttp.ClientSession() as session:
            good = f"{url}/api/fnlttSinglAcntAll.json"
            async with session.get(good, params=statement_params()) as response:
                ok = await response.json()
            bad = statement_params(crtfc_key=OTHER_KEY)
            async with session.get(good, params=bad) as response:
                refused = await response.json()
    assert ok["status"] == "000"
    assert refused["status"] == "010"


# --- company.json and list.json ---------------------------------------------------------------


async def test_delisted_companies_say_corp_cls_e_in_company_json() -> None:
    delisted = DELISTED_COMPANIES[0]
    async with OpenDartStandIn() as server, aiohttp.ClientSession() as session:
        params = {"crtfc_key": KEY, "corp_code": delisted["corp_code"]}
        _, body = await call(session, server, "company.json", params)
        _, listed = await call(session, server, "company.json", {**params, "corp_code": SAMSUNG})
    assert (body["corp_cls"], body["stock_code"]) == ("E", delisted["stock_code"])
    assert listed["corp_cls"] == "Y"


async def filings(
    session: aiohttp.ClientSession, server: OpenDartStandIn, **params: str
) -> dict[str, Any]:
    query = {"crtfc_key": KEY, "corp_code": SAMSUNG, "page_count": "100", **params}
    _, body = await call(session, server, "list.json", query)
    assert isinstance(body, dict)
    return body


async def test_list_json_lists_exactly_the_reports_with_statements() -> None:
    server = OpenDartStandIn(no_data_ratio=0.3, filed_until="20240601")
    async with server, aiohttp.ClientSession() as session:
        body = await filings(session, server, bgn_de="20220101", end_de="20241231")
        listed = {(f["rcept_no"], f["report_nm"]) for f in body["list"]}
        served = set()
        for year in (2021, 2022, 2023, 2024):
            for reprt in ("11013", "11012", "11014", "11011"):
                answers = [
                    await statements(
                        session, server, bsns_year=str(year), reprt_code=reprt, fs_div=div
                    )
                    for div in ("CFS", "OFS")
                ]
                rows = [a["list"] for a in answers if a["status"] == "000"]
                if rows:
                    served.add(rows[0][0]["rcept_no"])
    assert body["status"] == "000"
    assert {rcept_no for rcept_no, _ in listed} == {r for r in served if r[:8] >= "20220101"}
    assert all(rcept_no[:8] <= "20240601" for rcept_no in served)
    assert all(re.fullmatch(r"(사업|반기|분기)보고서 \(\d{4}\.\d{2}\)", name) for _, name in listed)


async def test_list_json_filters_pages_and_answers_013_for_nothing() -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        annual = await filings(session, server, pblntf_detail_ty="A001", bgn_de="20200101")
        paged = await filings(session, server, page_count="3", page_no="2")
        nothing = await filings(session, server, bgn_de="20000101", end_de="20001231")
    assert {f["report_nm"][:5] for f in annual["list"]} == {"사업보고서"}
    assert len(paged["list"]) == 3
    assert paged["total_page"] == -(-paged["total_count"] // 3)
    assert nothing["status"] == "013"


async def test_a_correction_has_a_newer_rcept_no_in_both_endpoints() -> None:
    async with OpenDartStandIn(no_data_ratio=0.0) as server, aiohttp.ClientSession() as session:
        before = await statements(session, server, bsns_year="2023", reprt_code="11011")
        new = server.correct(SAMSUNG, 2023, "11011")
        after = await statements(session, server, bsns_year="2023", reprt_code="11011")
        latest = await filings(
            session, server, bgn_de="20240101", end_de="20241231", last_reprt_at="Y"
        )
        every = await filings(
            session, server, bgn_de="20240101", end_de="20241231", last_reprt_at="N"
        )
    old = before["list"][0]["rcept_no"]
    assert after["list"][0]["rcept_no"] == new > old
    latest_annual = [f for f in latest["list"] if "사업보고서" in f["report_nm"]]
    assert [(f["rcept_no"], f["report_nm"]) for f in latest_annual] == [
        (new, "[기재정정]사업보고서 (2023.12)")
    ]
    assert {old, new} <= {f["rcept_no"] for f in every["list"]}


async def test_a_march_closer_files_by_its_own_fiscal_year() -> None:
    companies = [
        {"corp_code": "00000003", "corp_name": "삼월", "stock_code": "000003", "acc_mt": "03"}
    ]
    server = OpenDartStandIn(no_data_ratio=0.0, corp_codes=companies)
    async with server, aiohttp.ClientSession() as session:
        body = await filings(
            session, server, corp_code="00000003", bgn_de="20230101", end_de="20231231"
        )
    names = sorted(f["report_nm"] for f in body["list"])
    # Business year 2023 ends in March 2023 (its Q3 ended December 2022, filed February
    # 2023; the annual report filed in June 2023); 2024's first half ends in September 2023.
    assert names == [
        "반기보고서 (2023.09)",
        "분기보고서 (2022.12)",
        "분기보고서 (2023.06)",
        "사업보고서 (2023.03)",
    ]
