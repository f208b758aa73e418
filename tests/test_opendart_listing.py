"""Delisted companies keep a stock code in corpCode.xml; company.json or a KRX file tells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from asyncrawl.http import AiohttpFetcher
from asyncrawl.sinks import DirectoryStore
from asyncrawl.sources.opendart import Company
from asyncrawl.sources.opendart.listing import CORP_CLS_KEY, listed_by_profile, listed_from_file
from asyncrawl.testing.opendart import DELISTED_COMPANIES, DEMO_COMPANIES, OpenDartStandIn

KEY = "0123456789abcdef0123456789abcdef01234567"
ALL = [Company(**c) for c in DEMO_COMPANIES] + [
    Company(corp_code=c["corp_code"], stock_code=c["stock_code"], corp_name=c["corp_name"])
    for c in DELISTED_COMPANIES
]
LISTED = {c["corp_code"] for c in DEMO_COMPANIES}


def profile_requests(server: OpenDartStandIn) -> int:
    return sum(a.path.endswith("/company.json") for a in server.arrivals)


async def test_company_json_leaves_delisted_out_and_caches_its_answers(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    now = datetime(2026, 5, 1, tzinfo=UTC)
    async with OpenDartStandIn() as server, AiohttpFetcher() as fetcher:
        base = f"{server.url}/api/"

        async def listed(at: datetime) -> list[Company]:
            return await listed_by_profile(
                ALL, store, fetcher=fetcher, api_key=KEY, base_url=base, clock=lambda: at
            )

        first = await listed(now)
        asked_first = profile_requests(server)
        second = await listed(now + timedelta(days=1))
        asked_second = profile_requests(server)
        third = await listed(now + timedelta(days=8))
        asked_third = profile_requests(server)
    assert {c.corp_code for c in first} == LISTED
    assert first == second == third
    # One request per company with a stock code, then none while the cache is fresh.
    assert (asked_first, asked_second, asked_third) == (len(ALL), len(ALL), 2 * len(ALL))
    cached = orjson.loads((tmp_path / CORP_CLS_KEY).read_bytes())
    assert cached[DELISTED_COMPANIES[0]["corp_code"]]["corp_cls"] == "E"
    assert CORP_CLS_KEY.startswith("_meta/")


def test_a_krx_listing_file_in_cp949_decides_without_requests(tmp_path: Path) -> None:
    krx = tmp_path / "krx.csv"
    rows = ["회사명,종목코드,업종"] + [
        f"{c['corp_name']},{c['stock_code']},x" for c in DEMO_COMPANIES
    ]
    krx.write_bytes("\n".join(rows).encode("cp949"))
    assert {c.corp_code for c in listed_from_file(ALL, str(krx))} == LISTED
