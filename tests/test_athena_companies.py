"""The company list from Athena, against moto's server (its query results set through its API).

moto runs no SQL: the rows come from ``/moto-api/static/athena/query-results``, the query's
state from its state manager (held QUEUED to test the deadline and a cancellation). moto
never reports FAILED and returns every row in one page, so those two paths run through
:class:`Paged`, a thin proxy over moto's client that applies Athena's documented behaviour
(``State: FAILED`` with a ``StateChangeReason``; ``MaxResults``/``NextToken`` pages).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aioboto3
import boto3
import pytest

from asyncrawl.errors import ConfigError
from asyncrawl.jobs.opendart import default_years
from asyncrawl.sources.opendart.athena import (
    OLD_CRAWLER_QUERY,
    AthenaCompanyQuery,
    AthenaQueryError,
    load_athena_companies,
)
from asyncrawl.sources.opendart.companies import CompanyListError
from asyncrawl.sources.opendart.items import Company

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]

HEADER = ["dart_corp", "dart_corp_code", "stock_nm", "stock_code"]
TEN = [
    ("삼성전자", "00126380", "삼성전자", "005930"),
    ("SK하이닉스", "164779", "SK하이닉스", "660"),  # lost zeros: padded like the CSV reader
    ("LG에너지솔루션", "01515323", "LG에너지솔루션", "373220"),
    ("삼성바이오로직스", "00877059", "삼성바이오로직스", "207940"),
    ("현대차", "00164742", "현대차", "5380"),
    ("기아", "00106641", "기아", "000270"),
    ("셀트리온", "00421045", "셀트리온", "068270"),
    ("KB금융", "00688996", "KB금융", "105560"),
    ("NAVER", "00266961", "NAVER", "035420"),
    ("신한지주", "00382199", "신한지주", "055550"),
]


def _post(endpoint: str, path: str, document: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - this session's loopback moto server
        f"{endpoint}{path}",
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def _row(values: Sequence[str | None]) -> dict[str, Any]:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


def set_results(moto: MotoS3, rows: Sequence[Sequence[str | None]]) -> None:
    """The next query's result: a header row then ``rows``, as Athena returns a SELECT."""
    result = {
        "rows": [_row(HEADER), *(_row(r) for r in rows)],
        "column_info": [{"Name": name, "Type": "varchar"} for name in HEADER],
    }
    _post(moto.endpoint, "/moto-api/static/athena/query-results", {"results": [result]})


@pytest.fixture
def held_queued(moto_s3: MotoS3) -> Iterator[None]:
    """Queries stay QUEUED (moto's state manager), so a test can cancel or outwait them."""
    _post(
        moto_s3.endpoint,
        "/moto-api/state-manager/set-transition",
        {
            "model_name": "athena::execution",
            "transition": {"progression": "manual", "times": 10**6},
        },
    )
    yield None
    _post(
        moto_s3.endpoint,
        "/moto-api/state-manager/unset-transition",
        {"model_name": "athena::execution"},
    )


TABLE = AthenaCompanyQuery(
    database="lake", table="companies", workgroup="primary", output="s3://asyncrawl-test/athena/"
)


async def test_ten_companies_from_the_old_query_on_a_table(moto_s3: MotoS3) -> None:
    set_results(moto_s3, TEN)
    companies = await load_athena_companies(TABLE)
    assert len(companies) == 10
    assert companies[0] == Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자")
    assert companies[1] == Company(
        corp_code="00164779", stock_code="000660", corp_name="SK하이닉스"
    )
    assert companies[4].stock_code == "005380"
    athena = boto3.client("athena")
    (query_id,) = athena.list_query_executions()["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["Query"] == OLD_CRAWLER_QUERY.format(database="lake", table="companies")
    assert 'FROM "lake"."companies"' in execution["Query"]
    assert execution["QueryExecutionContext"]["Database"] == "lake"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(
        "s3://asyncrawl-test/athena/"
    )


async def test_bad_rows_are_reported_like_the_csv_reader_does(moto_s3: MotoS3) -> None:
    set_results(moto_s3, [TEN[0], ("bad", "12X45", "bad", "005930"), ("none", None, None, None)])
    with pytest.raises(CompanyListError) as caught:
        await load_athena_companies(TABLE)
    problems = caught.value.problems
    assert [(p.line, p.field) for p in problems] == [(2, "corp_code"), (3, "corp_code")]
    assert "athena://lake/companies" in str(caught.value)


async def test_an_empty_result_says_there_are_no_companies(moto_s3: MotoS3) -> None:
    set_results(moto_s3, [])
    with pytest.raises(ConfigError, match="no companies"):
        await load_athena_companies(TABLE)


async def test_a_query_cancelled_meanwhile_is_an_error(moto_s3: MotoS3, held_queued: None) -> None:
    athena = boto3.client("athena")

    async def cancel_when_started() -> None:
        for _ in range(200):  # a bound on the polling, not a timing claim
            started = await asyncio.to_thread(athena.list_query_executions)
            if started["QueryExecutionIds"]:
                query_id = started["QueryExecutionIds"][0]
                await asyncio.to_thread(athena.stop_query_execution, QueryExecutionId=query_id)
                return
            await asyncio.sleep(0.05)

    canceller = asyncio.create_task(cancel_when_started())
    with pytest.raises(AthenaQueryError, match=r"athena://lake/companies: .* cancelled"):
        await load_athena_companies(TABLE)
    await canceller


async def test_a_query_past_the_deadline_is_stopped(moto_s3: MotoS3, held_queued: None) -> None:
    deadline = asyncio.get_running_loop().time() + 0.5
    with pytest.raises(AthenaQueryError, match="did not finish within the invocation's budget"):
        await load_athena_companies(TABLE, deadline=deadline)
    athena = boto3.client("athena")
    (query_id,) = athena.list_query_executions()["QueryExecutionIds"]
    state = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
    assert state["State"] == "CANCELLED"


class Paged:
    """moto's Athena client with Athena's FAILED state and result pages (see the docstring)."""

    def __init__(self, client: Any, *, fail: str | None = None) -> None:
        self._client = client
        self._fail = fail
        self.pages = 0

    async def start_query_execution(self, **request: Any) -> Any:
        return await self._client.start_query_execution(**request)

    async def stop_query_execution(self, **request: Any) -> Any:
        return await self._client.stop_query_execution(**request)

    async def get_query_execution(self, **request: Any) -> Any:
        answer = await self._client.get_query_execution(**request)
        if self._fail is not None:
            answer["QueryExecution"]["Status"] = {
                "State": "FAILED",
                "StateChangeReason": self._fail,
            }
        return answer

    async def get_query_results(self, **request: Any) -> Any:
        start = int(request.pop("NextToken", "0"))
        size = request.pop("MaxResults")
        answer = await self._client.get_query_results(**request)
        rows = answer["ResultSet"]["Rows"]
        answer["ResultSet"]["Rows"] = rows[start : start + size]
        if start + size < len(rows):
            answer["NextToken"] = str(start + size)
        if start:
            answer["ResultSet"].pop("ResultSetMetadata", None)
        self.pages += 1
        return answer


async def test_a_failed_query_names_athenas_reason(moto_s3: MotoS3) -> None:
    set_results(moto_s3, TEN)
    reason = "TABLE_NOT_FOUND: line 5:6: Table 'awsdatacatalog.lake.companies' does not exist"
    async with aioboto3.Session().client("athena") as client:
        with pytest.raises(AthenaQueryError, match=r"query \S+ failed: TABLE_NOT_FOUND"):
            await load_athena_companies(TABLE, client=Paged(client, fail=reason))


async def test_results_are_read_page_by_page(moto_s3: MotoS3) -> None:
    many = [(f"c{n}", f"{n:08d}", f"c{n}", None) for n in range(1, 2501)]
    set_results(moto_s3, many)
    async with aioboto3.Session().client("athena") as client:
        paged = Paged(client)
        companies = await load_athena_companies(TABLE, client=paged)
    assert paged.pages == 3  # 2,501 rows with the header, 1,000 a page
    assert [c.corp_code for c in companies] == [f"{n:08d}" for n in range(1, 2501)]


def test_settings_come_from_the_environment_or_an_athena_uri() -> None:
    assert AthenaCompanyQuery.from_env({}) is None
    env = {
        "ATHENA_DATABASE": "lake",
        "ATHENA_TABLE": "companies",
        "ATHENA_WORKGROUP": "crawl",
        "ATHENA_OUTPUT": "s3://results/athena/",
    }
    assert AthenaCompanyQuery.from_env(env) == AthenaCompanyQuery(
        database="lake", table="companies", workgroup="crawl", output="s3://results/athena/"
    )
    whole = AthenaCompanyQuery.from_env({"ATHENA_QUERY": "SELECT corp_code FROM t"})
    assert whole is not None
    assert whole.sql() == "SELECT corp_code FROM t"
    assert whole.workgroup == "primary"
    from_uri = AthenaCompanyQuery.from_uri("athena://lake/companies", env)
    assert from_uri.sql() == OLD_CRAWLER_QUERY.format(database="lake", table="companies")
    assert from_uri.output == "s3://results/athena/"
    with pytest.raises(ConfigError, match="ATHENA_TABLE"):
        AthenaCompanyQuery.from_env(
            {"ATHENA_TABLE": 'x"; DROP TABLE y; --', "ATHENA_DATABASE": "d"}
        )
    with pytest.raises(ConfigError, match="ATHENA_TABLE"):
        AthenaCompanyQuery.from_env({"ATHENA_TABLE": "companies"})
    with pytest.raises(ConfigError, match="ATHENA_OUTPUT"):
        AthenaCompanyQuery.from_env({**env, "ATHENA_OUTPUT": "results/athena"})
    with pytest.raises(ConfigError, match="--companies"):
        AthenaCompanyQuery.from_uri("athena://lake", env)


# 2026-12-31 15:30 UTC is 2027-01-01 00:30 in Korea: the KST year has turned.
NEW_YEAR_KST = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)


def test_default_years_follow_the_kst_calendar() -> None:
    assert default_years("quarter", NEW_YEAR_KST) == (2026, 2027)
    assert default_years("annual", NEW_YEAR_KST) == (2026,)
    assert default_years("quarter", NEW_YEAR_KST - timedelta(hours=1)) == (2025, 2026)
