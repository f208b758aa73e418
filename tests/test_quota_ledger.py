"""The daily quota ledger against moto's DynamoDB server: shared, atomic, never over-granting.

DynamoDB applies the writes to one item one at a time (a conditional ``UpdateItem`` is atomic);
moto's threaded server does not (two requests can read the same ``granted`` and both pass the
condition). The concurrency test therefore talks to a second, single-threaded server over the
same in-process moto backends, which serves one request at a time as DynamoDB serialises one
item's writes. The invocations still interleave every request, so a ledger that read the count
and then wrote it (instead of one conditional update) would over-grant there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aioboto3
import boto3
import pytest

from asyncrawl.aws.ledger import QuotaLedger, QuotaUsed, key_fingerprint, kst_day
from asyncrawl.errors import ConfigError

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]

TABLE = "asyncrawl-quota"
KEY = "0123456789abcdef0123456789abcdef01234567"
# 2026-12-01 14:59:30 UTC: 23:59:30 in Korea, half a minute before the KST day turns.
BEFORE_MIDNIGHT_KST = 1796137170.0


@pytest.fixture
async def dynamodb(moto_s3: MotoS3) -> AsyncIterator[Any]:
    """An open aiobotocore DynamoDB client on moto, with the ledger table created."""
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    async with aioboto3.Session().client("dynamodb") as client:
        yield client


def _item(pk: str) -> dict[str, Any]:
    item: dict[str, Any] = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True
    )["Item"]
    return item


def _ledger(client: Any, **overrides: Any) -> QuotaLedger:
    settings: dict[str, Any] = {
        "client": client,
        "table": TABLE,
        "key_name": "dart-key-1",
        "daily_limit": 100,
        "block": 10,
        "clock": lambda: BEFORE_MIDNIGHT_KST - 3600,
    }
    settings.update(overrides)
    return QuotaLedger(**settings)


async def test_concurrent_invocations_never_get_more_than_the_daily_limit(
    dynamodb: Any, serialized_endpoint: str
) -> None:
    # 12 invocations at once, each admitting requests until the ledger says the day is used;
    # 237 is not a multiple of the block, so the last grants are partial blocks.
    limit = 237

    async def invocation(client: Any) -> int:
        admitted = 0
        async with _ledger(client, daily_limit=limit, block=10) as ledger:
            try:
                while True:
                    await ledger.admit()
                    admitted += 1
            except QuotaUsed:
                pass
        return admitted

    session = aioboto3.Session()
    async with session.client("dynamodb", endpoint_url=serialized_endpoint) as client:
        admitted = await asyncio.gather(*(invocation(client) for _ in range(12)))
    assert sum(admitted) == limit
    day = kst_day(BEFORE_MIDNIGHT_KST - 3600)
    assert _item(f"dart-key-1#{day}")["granted"] == {"N": str(limit)}


async def test_unused_reservations_are_returned_at_the_end(dynamodb: Any) -> None:
    day = kst_day(BEFORE_MIDNIGHT_KST - 3600)
    first = _ledger(dynamodb, block=50)
    for _ in range(3):
        await first.admit()
    assert first.available == 47
    assert _item(f"dart-key-1#{day}")["granted"] == {"N": "50"}
    await first.close()
    assert _item(f"dart-key-1#{day}")["granted"] == {"N": "3"}
    # What was returned can be granted again: 97 more fit under the limit of 100, not 98.
    second = _ledger(dynamodb, block=50)
    for _ in range(97):
        await second.admit()
    with pytest.raises(QuotaUsed, match="daily quota used"):
        await second.admit()
    assert second.used == 97


async def test_a_new_kst_day_draws_from_a_new_quota(dynamodb: Any) -> None:
    now = [BEFORE_MIDNIGHT_KST]
    ledger = _ledger(dynamodb, daily_limit=5, block=5, clock=lambda: now[0])
    for _ in range(5):
        await ledger.admit()
    with pytest.raises(QuotaUsed) as caught:
        await ledger.admit()
    assert caught.value.day == "2026-12-01"
    now[0] += 60  # 00:00:30 KST on 2 December
    await ledger.admit()
    assert _item("dart-key-1#2026-12-02")["granted"] == {"N": "5"}
    assert _item("dart-key-1#2026-12-01")["granted"] == {"N": "5"}


async def test_items_expire_two_days_after_their_kst_day(dynamodb: Any) -> None:
    await _ledger(dynamodb).admit()
    item = _item("dart-key-1#2026-12-01")
    # The KST day 2026-12-01 ends at 2026-12-01 15:00 UTC; two days later:
    assert item["expires_at"] == {"N": str(int(BEFORE_MIDNIGHT_KST) + 30 + 2 * 86400)}
    assert item["limit"] == {"N": "100"}


async def test_the_ledger_never_holds_the_key(dynamodb: Any) -> None:
    name = key_fingerprint(KEY)
    assert KEY not in name
    assert name == key_fingerprint(KEY)
    assert name != key_fingerprint(KEY[:-1] + "8")
    await _ledger(dynamodb, key_name=name).admit()
    scanned = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert KEY not in repr(scanned)
    assert [i["pk"]["S"] for i in scanned] == [f"{name}#2026-12-01"]


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="daily_limit"):
        QuotaLedger(client=None, table=TABLE, key_name="k", daily_limit=0)
    with pytest.raises(ConfigError, match="block"):
        QuotaLedger(client=None, table=TABLE, key_name="k", daily_limit=1, block=0)
    with pytest.raises(ConfigError, match="table"):
        QuotaLedger(client=None, table="", key_name="k", daily_limit=1)
