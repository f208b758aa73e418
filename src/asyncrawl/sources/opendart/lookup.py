"""Stock code -> corp_code: OpenDART's company table, cached under the output's ``_meta/``.

Most users hold KRX stock codes, not DART's corp_codes. :func:`corp_code_table` downloads
``corpCode.xml`` once with the key and keeps its listed companies (those with a stock code) at
``_meta/opendart/corp_codes.json`` beside the run metadata (never under ``data/``, which a
table points at) with the time it was fetched; a copy older than ``max_age`` (a day) is
fetched again. :func:`read_corp_code_file` reads the same table from a file the user gives
instead (``--corp-codes FILE``): the corpCode.xml ZIP, its ``CORPCODE.xml``, or a company list
with ``corp_code`` and ``stock_code`` columns such as ``asyncrawl companies`` writes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from ...errors import ConfigError
from ...http import AiohttpFetcher, Fetcher
from ...sinks.base import BlobStore
from .companies import MAX_LIST_BYTES, CorpCodeLookup, parse_companies
from .corpcode import fetch_corp_codes, parse_corp_code_zip
from .items import Company
from .source import DEFAULT_BASE_URL, utc_now

__all__ = [
    "CORP_CODES_KEY",
    "by_stock_code",
    "corp_code_lookup",
    "corp_code_table",
    "read_corp_code_file",
]

_log = logging.getLogger(__name__)

#: Where the cached table lives, relative to the output root.
CORP_CODES_KEY = "_meta/opendart/corp_codes.json"
_MAX_AGE = timedelta(days=1)


def by_stock_code(companies: Iterable[Company]) -> dict[str, Company]:
    """Stock code -> company, for the companies that have one (the first of each code wins)."""
    table: dict[str, Company] = {}
    for company in companies:
        if company.stock_code is not None:
            table.setdefault(company.stock_code, company)
    return table


def _encode(companies: Iterable[Company], fetched_at: datetime) -> bytes:
    return orjson.dumps(
        {
            "fetched_at": fetched_at.isoformat(),
            "source": "corpCode.xml",
            "companies": [[c.corp_code, c.stock_code, c.corp_name] for c in companies],
        }
    )


def _decode(data: bytes) -> tuple[datetime, list[Company]] | None:
    """The cached table and when it was fetched; None for anything unreadable."""
    try:
        document = orjson.loads(data)
        fetched_at = datetime.fromisoformat(document["fetched_at"])
        companies = [
            Company(corp_code=corp_code, stock_code=stock_code, corp_name=corp_name)
            for corp_code, stock_code, corp_name in document["companies"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return fetched_at, companies


async def corp_code_table(
    store: BlobStore,
    *,
    fetcher: Fetcher,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    max_age: timedelta = _MAX_AGE,
    clock: Callable[[], datetime] = utc_now,
) -> list[Company]:
    """The listed companies of ``corpCode.xml``: from ``store``'s cache, or downloaded once.

    A cache younger than ``max_age`` is used as it is (no request); an older, missing or
    unreadable one is replaced by a fresh download (one request, counted against the key's
    daily quota). Download errors are those of
    :func:`~asyncrawl.sources.opendart.fetch_corp_codes`.
    """
    cached = await store.get(CORP_CODES_KEY)
    now = clock()
    if cached is not None:
        decoded = _decode(cached)
        if decoded is not None:
            fetched_at, companies = decoded
            age = now - fetched_at
            if timedelta(0) <= age < max_age:
                _log.info(
                    "corpCode.xml: using the copy of %s (%d listed companies) from %s",
                    fetched_at.isoformat(timespec="seconds"),
                    len(companies),
                    CORP_CODES_KEY,
                )
                return companies
            _log.info("corpCode.xml: the cached copy is from %s; fetching it again", fetched_at)
    companies = await fetch_corp_codes(fetcher, api_key=api_key, base_url=base_url)
    await store.put(CORP_CODES_KEY, _encode(companies, now), content_type="application/json")
    _log.info(
        "corpCode.xml: downloaded %d listed companies, cached at %s", len(companies), CORP_CODES_KEY
    )
    return companies


def read_corp_code_file(path: str, *, field: str = "--corp-codes") -> list[Company]:
    """The companies of a corp-code table the user gives (see the module docstring).

    An unreadable file raises :class:`~asyncrawl.errors.ConfigError` naming ``field``.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_LIST_BYTES * 4:
            raise ConfigError(field, f"{path} is {size:,} bytes; corpCode.xml is about 30 MB")
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(field, f"{path}: no such file; give corpCode.xml or a list") from None
    except IsADirectoryError:
        raise ConfigError(field, f"{path} is a directory; give corpCode.xml or a list") from None
    except OSError as error:
        raise ConfigError(field, f"{path}: cannot be read ({error.strerror})") from None
    if data.startswith(b"PK"):
        return parse_corp_code_zip(data)
    if data.lstrip()[:5] in (b"<?xml", b"<resu"):
        return _parse_xml(data)
    return parse_companies(data, name=path)


def _parse_xml(data: bytes) -> list[Company]:
    # Read through the same streaming, DOCTYPE-refusing parser as the ZIP.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("CORPCODE.xml", data)
    return parse_corp_code_zip(buffer.getvalue())


def corp_code_lookup(
    *, out: str, api_key: str, base_url: str = DEFAULT_BASE_URL, file: str | None = None
) -> CorpCodeLookup:
    """The stock-code table for :func:`~asyncrawl.sources.opendart.load_companies`.

    From ``file`` when given (``--corp-codes``), else :func:`corp_code_table` cached in the
    store ``out`` names. Nothing is read or downloaded until a row needs it.
    """

    async def lookup() -> Mapping[str, Company]:
        if file is not None:
            companies = await asyncio.to_thread(read_corp_code_file, file)
        else:
            # Imported here: the S3 store pulls in aioboto3, which most runs never need.
            from ...sinks.store import open_store

            async with open_store(out) as store, AiohttpFetcher() as fetcher:
                companies = await corp_code_table(
                    store, fetcher=fetcher, api_key=api_key, base_url=base_url
                )
        return by_stock_code(companies)

    return lookup
