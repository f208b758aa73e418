"""The shared helper that must not change, against the real handler and the Athena company list.

The replaced crawler was called through ``run_lambda_task(..., payload=None, blocking=True)``:
a ``RequestResponse`` invoke with no payload, reading ``statusCode`` and ``body``. Here boto3
invokes exactly so, against the fake Lambda endpoint serving the real handler; the function's
environment names an Athena table (moto's server answers the query with ten companies) and no
years, so the default years apply. One invocation, 200, every planned item stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from asyncrawl.aws.handler import handler
from asyncrawl.jobs.opendart import default_years
from asyncrawl.testing.opendart import DEMO_COMPANIES
from support.fake_lambda import FakeLambda, Reply
from test_athena_companies import set_results
from test_lambda_handler import (  # the same fixtures and helpers
    BUCKET,
    PREFIX,
    FakeContext,
    StandInThread,
    body_of,
    cold_start,
    set_env,
    standin,
)

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]
__all__ = ["cold_start", "standin"]  # fixtures used by name


def test_payload_none_with_ten_companies_from_athena_is_one_invocation_and_200(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    set_results(
        moto_s3,
        [(c["corp_name"], c["corp_code"], c["corp_name"], c["stock_code"]) for c in DEMO_COMPANIES],
    )
    server = standin()
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        CRAWL_YEARS=None,  # the default years apply
        ATHENA_DATABASE="lake",
        ATHENA_TABLE="companies",
        ATHENA_OUTPUT=f"s3://{moto_s3.bucket}/athena/",
    )

    def serve(event: Any) -> Reply:
        return Reply(body=json.dumps(handler(event, FakeContext())).encode())

    with FakeLambda(handler=serve) as fake:
        client = boto3.client("lambda", endpoint_url=fake.url)
        # What the unchanged helper does with payload=None.
        response = client.invoke(FunctionName="opendart-crawler", InvocationType="RequestResponse")
        answer = json.loads(response["Payload"].read())
        assert len(fake.requests) == 1
        assert fake.requests[0].payload is None

    assert answer["statusCode"] == 200
    body = body_of(answer)
    assert body["success"] is True
    assert body["crawler_type"] == "quarter"
    result = body["crawl_result"]
    assert result["success"] is True
    assert result["total_companies"] == 10
    years = default_years("quarter", datetime.now(UTC))
    planned = 10 * len(years) * 4 * 2
    assert result["planned"] == planned
    assert result["ok"] + result["no_data"] == planned
    assert result["remaining_count"] == 0
    stored = moto_s3.keys(f"{PREFIX}/data/", bucket=BUCKET)
    assert len(stored) == result["ok"] > 0
    assert {key.split("year=")[1][:4] for key in stored} == {str(y) for y in years}
    # Every planned item was asked of OpenDART once it was answered: nothing left out.
    answered = {a.item for a in server.arrivals() if a.fault is None}
    assert len(answered) == planned
