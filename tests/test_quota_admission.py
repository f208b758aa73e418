"""The ledger in front of every request the Lambda sends: shards together stay within a day.

Two shards run through the real handler at once (two threads, as two concurrent invocations),
against the OpenDART stand-in, drawing from one ledger in moto's DynamoDB with a daily limit
far below what they plan. Together they never send more than the limit, the ledger grants no
more, and both stop with items remaining instead of answering 200. DynamoDB is served by the
single-threaded moto server of test_quota_ledger.py (moto's threaded server does not apply one
item's conditional writes one at a time, as DynamoDB does).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from asyncrawl.aws.handler import handler
from asyncrawl.testing.opendart import DEMO_COMPANIES
from test_lambda_handler import (  # the same fixtures and helpers
    BUCKET,
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

TABLE = "asyncrawl-quota"
LIMIT = 13


def test_shards_together_never_send_more_than_the_ledgers_daily_limit(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    serialized_endpoint: str,
) -> None:
    moto_s3.create_bucket(BUCKET)
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    server = standin()
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        QUOTA_LEDGER_TABLE=TABLE,
        QUOTA_KEY_NAME="dart-key-1",
        QUOTA_DAILY_LIMIT=str(LIMIT),
        QUOTA_BLOCK="4",
        MAX_SYNC_SECONDS="8",
        AWS_ENDPOINT_URL_DYNAMODB=serialized_endpoint,
    )
    shards = [
        {"companies": [dict(c) for c in DEMO_COMPANIES[:3]], "run_id": "shard-a"},
        {"companies": [dict(c) for c in DEMO_COMPANIES[3:6]], "run_id": "shard-b"},
    ]

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return handler(event, FakeContext())

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(invoke, shards))

    sent = [a for a in server.arrivals() if a.fault is None]
    assert 0 < len(sent) <= LIMIT
    (item,) = dynamodb.scan(TableName=TABLE)["Items"]
    assert item["pk"]["S"].startswith("dart-key-1#")
    assert int(item["granted"]["N"]) <= LIMIT
    # Each shard planned 3 x 4 x 2 = 24 items; neither could finish.
    for answer in answers:
        assert answer["statusCode"] != 200
        body = body_of(answer)
        result = body["crawl_result"]
        assert result["planned"] == 24
        assert result["ok"] + result["no_data"] < 24
