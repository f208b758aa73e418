"""One daily request quota shared by every shard, invocation and OpenDART call: a DynamoDB ledger.

OpenDART counts about 20,000 requests a day per key (status 020 past it, until midnight KST).
Shards running at once, and the invocations of each shard's chain, would each only know their
own count; the ledger is the one count they all draw from.

One item per key and KST day::

    pk         "<key name>#<YYYY-MM-DD KST>"   (a name or a fingerprint, never the key)
    granted    requests handed out so far (blocks reserved minus blocks returned)
    limit      the daily limit the item was created with (for people reading the table)
    expires_at epoch seconds, two days after the KST day ends: DynamoDB's TTL removes it

A reservation is one atomic conditional ``UpdateItem``: ``ADD granted :n`` only if
``granted <= limit - n`` (or the item does not exist yet). DynamoDB applies conditional writes
to one item one at a time, so however many invocations reserve at once, the sum granted never
passes the limit. Requests are reserved in blocks (default 50) so a crawl pays one write per
block, not per request; when less than a block is left the reservation takes what remains.
At the end of an invocation :meth:`QuotaLedger.close` returns the unused part of its block
(``ADD granted -unused``); a block lost to a crash is only lost for that day.

:class:`QuotaLedger` is also the per-request admission: ``await ledger.admit()`` before each
request either returns (one request granted) or raises :class:`QuotaUsed` ("daily quota used").
:class:`LedgerFetcher` puts it in front of any Fetcher: a request the ledger refuses is never
sent, and is answered with OpenDART's own "daily quota used" body (status 020), so the source
classifies it as OpenDART would (the run stops, items remaining, and the next day's run with the
same run id continues), except that OpenDART never had to say it.

In the Lambda, :func:`quota_admission` builds it from the environment: ``QUOTA_LEDGER_TABLE``
(the table; unset: no ledger), ``QUOTA_KEY_NAME`` (default: :func:`key_fingerprint` of the key),
``QUOTA_DAILY_LIMIT`` (default 18000) and ``QUOTA_BLOCK`` (default 50).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..errors import AsyncrawlError, ConfigError

if TYPE_CHECKING:
    from ..http import Fetcher, Request, Response

__all__ = [
    "KST",
    "LedgerFetcher",
    "QuotaLedger",
    "QuotaUsed",
    "key_fingerprint",
    "kst_day",
    "quota_admission",
]

#: Korea Standard Time: UTC+9, no daylight saving time. OpenDART's day ends at midnight KST.
KST = timezone(timedelta(hours=9), "KST")
# How long a day's item outlives its day (TTL deletion itself can lag up to a couple of days).
_KEEP_AFTER_DAY = timedelta(days=2)


class QuotaUsed(AsyncrawlError):
    """The key's daily quota in the ledger is used: stop now, resume after midnight KST."""

    def __init__(self, key_name: str, day: str, limit: int) -> None:
        super().__init__(
            f"daily quota used: {limit} requests for key {key_name!r} on {day} (KST) are all "
            "granted; the run resumes after midnight KST with the same run id"
        )
        self.key_name = key_name
        self.day = day
        self.limit = limit


def key_fingerprint(api_key: str) -> str:
    """A stable name for ``api_key`` that does not reveal it: 16 hex digits of a SHA-256.

    The key is 40 random characters, so its hash cannot be reversed by guessing; the
    domain-separating prefix keeps this hash from matching any other use of the key's digest.
    """
    digest = hashlib.sha256(b"asyncrawl-quota-ledger\0" + api_key.encode()).hexdigest()
    return f"key-{digest[:16]}"


def kst_day(now: float) -> str:
    """The KST calendar day (``YYYY-MM-DD``) at ``now`` (epoch seconds)."""
    return datetime.fromtimestamp(now, KST).strftime("%Y-%m-%d")


def _day_expiry(day: str) -> int:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=KST)
    return int((start + timedelta(days=1) + _KEEP_AFTER_DAY).astimezone(UTC).timestamp())


def _is_condition_failure(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code")
    return bool(code == "ConditionalCheckFailedException")


class QuotaLedger:
    """Per-request admission against a daily quota kept in a DynamoDB table.

    ``table``: the table name (``QUOTA_LEDGER_TABLE``); ``key_name``: the key's name or
    :func:`key_fingerprint` (``QUOTA_KEY_NAME``), never the key; ``daily_limit``: requests a day
    (``QUOTA_DAILY_LIMIT``); ``block``: requests reserved per DynamoDB write. ``client`` is an
    open aiobotocore DynamoDB client (``async with session.client("dynamodb") as client``);
    ``clock`` returns epoch seconds (the KST day is read from it at each reservation, so a run
    that crosses midnight draws from the new day).

    Use as an async context manager, or call :meth:`close` at the end of the invocation to
    return the unused part of the block.
    """

    def __init__(
        self,
        *,
        client: Any,
        table: str,
        key_name: str,
        daily_limit: int,
        block: int = 50,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not table:
            raise ConfigError("table", "the ledger needs a DynamoDB table name")
        if not key_name or len(key_name) > 128:
            raise ConfigError("key_name", "give the key a name of 1 to 128 characters")
        if daily_limit < 1:
            raise ConfigError("daily_limit", f"must be at least 1, not {daily_limit}")
        if block < 1:
            raise ConfigError("block", f"must be at least 1, not {block}")
        self._client = client
        self._table = table
        self._key_name = key_name
        self._limit = daily_limit
        self._block = block
        self._clock = clock if clock is not None else _wall_clock
        self._day: str | None = None
        self._left = 0  # granted to this invocation and not used yet, for self._day
        self._used = 0

    @property
    def available(self) -> int:
        """Requests reserved by this invocation and not used yet."""
        return self._left

    @property
    def used(self) -> int:
        """Requests this invocation was admitted for."""
        return self._used

    async def admit(self) -> None:
        """Admit one request, reserving a block first if none is left; raises :class:`QuotaUsed`."""
        day = kst_day(self._clock())
        if day != self._day:
            # A new KST day: what was left of yesterday's block is worth nothing today.
            self._day, self._left = day, 0
        if self._left == 0:
            self._left = await self._reserve(day, self._block)
        self._left -= 1
        self._used += 1

    async def _reserve(self, day: str, wanted: int) -> int:
        """Reserve up to ``wanted`` requests for ``day``; returns how many (>= 1)."""
        pk = f"{self._key_name}#{day}"
        want = min(wanted, self._limit)
        while True:
            try:
                await self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": pk}},
                    UpdateExpression=(
                        "ADD granted :n SET #limit = :limit, "
                        "expires_at = if_not_exists(expires_at, :expires)"
                    ),
                    ConditionExpression="attribute_not_exists(granted) OR granted <= :most",
                    ExpressionAttributeNames={"#limit": "limit"},
                    ExpressionAttributeValues={
                        ":n": {"N": str(want)},
                        ":most": {"N": str(self._limit - want)},
                        ":limit": {"N": str(self._limit)},
                        ":expires": {"N": str(_day_expiry(day))},
                    },
                )
            except Exception as error:
                if not _is_condition_failure(error):
                    raise
            else:
                return want
            # Less than a block is left (or nothing): read what remains and ask for exactly
            # that; another invocation may take it first, so loop until granted or empty.
            remaining = self._limit - await self._granted(pk)
            if remaining <= 0:
                raise QuotaUsed(self._key_name, day, self._limit)
            want = min(want, remaining)

    async def _granted(self, pk: str) -> int:
        answer = await self._client.get_item(
            TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        item = answer.get("Item") or {}
        return int(item.get("granted", {}).get("N", "0"))

    async def close(self) -> None:
        """Return the unused part of this invocation's block to the day's quota."""
        unused, day = self._left, self._day
        self._left = 0
        if unused == 0 or day is None:
            return
        await self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"{self._key_name}#{day}"}},
            UpdateExpression="ADD granted :back",
            ConditionExpression="granted >= :unused",
            ExpressionAttributeValues={":back": {"N": str(-unused)}, ":unused": {"N": str(unused)}},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _wall_clock() -> float:
    # The KST day is a calendar fact, so this is wall-clock time, not the loop's clock.
    return datetime.now(UTC).timestamp()


def _opendart_quota_used(error: QuotaUsed) -> Response:
    from ..http import Response

    body = json.dumps({"status": "020", "message": str(error)}).encode()
    return Response(status=200, headers={"Content-Type": "application/json"}, body=body)


class LedgerFetcher:
    """A Fetcher that asks the ledger before every request it sends through ``inner``.

    A refused request is not sent; ``refused(error)`` answers it instead (default: OpenDART's
    020 body, "daily quota used").
    """

    def __init__(
        self,
        inner: Fetcher,
        ledger: QuotaLedger,
        *,
        refused: Callable[[QuotaUsed], Response] = _opendart_quota_used,
    ) -> None:
        self._inner = inner
        self._ledger = ledger
        self._refused = refused
        self.refusals = 0

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        """Admit, then send; or answer for the ledger without sending."""
        try:
            await self._ledger.admit()
        except QuotaUsed as error:
            self.refusals += 1
            return self._refused(error)
        return await self._inner.fetch(request, timeout=timeout)


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(name, f"{text!r}: give a whole number of requests, e.g. {default}")
    return int(text)


@asynccontextmanager
async def quota_admission(
    environ: Mapping[str, str], *, api_key: Callable[[], str] | None = None
) -> AsyncIterator[Fetcher | None]:
    """The run's fetcher behind the ledger the environment names, or None without one.

    Opens an aiohttp fetcher and an aioboto3 DynamoDB client for the invocation, and returns
    the unused reservation when it ends. ``api_key`` gives the key for the default
    ``QUOTA_KEY_NAME`` (its fingerprint, never the key itself).
    """
    table = environ.get("QUOTA_LEDGER_TABLE", "").strip()
    if not table:
        yield None
        return
    name = environ.get("QUOTA_KEY_NAME", "").strip()
    if not name:
        if api_key is None:
            raise ConfigError("QUOTA_KEY_NAME", "name the key in the ledger (e.g. dart-key-1)")
        name = key_fingerprint(api_key())
    limit = _positive(environ, "QUOTA_DAILY_LIMIT", 18000)
    block = _positive(environ, "QUOTA_BLOCK", 50)
    import aioboto3  # only with a ledger

    from ..http import AiohttpFetcher

    async with (
        aioboto3.Session().client("dynamodb") as client,
        AiohttpFetcher() as inner,
    ):
        ledger = QuotaLedger(
            client=client, table=table, key_name=name, daily_limit=limit, block=block
        )
        async with ledger:
            yield LedgerFetcher(inner, ledger)
