"""Listed or delisted: ``corpCode.xml`` keeps the stock code of delisted companies.

Two ways to tell them apart:

- :func:`listed_by_profile`: ``company.json``'s ``corp_cls`` (Y KOSPI, K KOSDAQ, N KONEX are
  listed; E "other" is not), one request per company with a stock code (about 3,900 for the
  whole market, counted against the key's daily quota). The answers are cached at
  ``_meta/opendart/corp_cls.json`` with the time each was asked, and asked again after
  ``max_age`` (a week), so a daily run costs only the companies that are new or stale. The
  requests go through the engine: the same rate windows, retries and refusals as a crawl.
- :func:`listed_from_file`: a KRX listing file the user passes (KRX's "상장법인목록" export or
  any list with a ``stock_code``, ``종목코드`` or ``단축코드`` column): no request at all.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ...engine import CrawlConfig, run
from ...errors import ConfigError, InputError
from ...http import Fetcher, Request, Response
from ...outcomes import Ok, Outcome
from ...sinks.base import BlobStore
from .companies import MAX_LIST_BYTES, decode_text
from .items import Company
from .source import DEFAULT_BASE_URL, check_api_key, read_answer, utc_now

__all__ = [
    "CORP_CLS_KEY",
    "LISTED_CLASSES",
    "CompanyProfileSource",
    "listed_by_profile",
    "listed_companies",
    "listed_from_file",
]

_log = logging.getLogger(__name__)

#: Where the ``corp_cls`` answers are cached, relative to the output root.
CORP_CLS_KEY = "_meta/opendart/corp_cls.json"
#: ``corp_cls`` values of companies listed on an exchange (KOSPI, KOSDAQ, KONEX).
LISTED_CLASSES = frozenset({"Y", "K", "N"})
_MAX_AGE = timedelta(days=7)
_KRX_CODE_COLUMNS = ("stock_code", "종목코드", "단축코드")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompanyProfileSource:
    """A :class:`~asyncrawl.source.Source` of :class:`Company`: its ``company.json`` profile.

    ``Ok.payload`` is ``{"corp_cls": ..., "stock_code": ...}``; other statuses mean what they
    mean for statements (020 and 800 stop the run, 013 is no data).
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        check_api_key(self.api_key)
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")

    def key(self, item: Company) -> str:
        """The company's corp_code."""
        return item.corp_code

    def request(self, item: Company) -> Request:
        """The ``company.json`` request (the key masked in displays)."""
        return Request(
            url=self.base_url + "company.json",
            params={"crtfc_key": self.api_key, "corp_code": item.corp_code},
            secret_params=frozenset({"crtfc_key"}),
        )

    def classify(self, item: Company, response: Response) -> Outcome:
        """The profile's ``corp_cls``, or what the answer's status means."""
        body = read_answer(response, self.base_url)
        if not isinstance(body, dict):
            return body
        return Ok(
            status="000",
            payload={
                "corp_cls": str(body.get("corp_cls") or ""),
                "stock_code": str(body.get("stock_code") or "").strip(),
            },
        )


def _load_cache(data: bytes | None) -> dict[str, dict[str, Any]]:
    if data is None:
        return {}
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {k: v for k, v in document.items() if isinstance(v, dict) and "checked_at" in v}


def _fresh(entry: dict[str, Any], now: datetime, max_age: timedelta) -> bool:
    try:
        age = now - datetime.fromisoformat(str(entry["checked_at"]))
    except (KeyError, ValueError):
        return False
    return timedelta(0) <= age < max_age


async def listed_by_profile(
    companies: Sequence[Company],
    store: BlobStore,
    *,
    fetcher: Fetcher,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    config: CrawlConfig | None = None,
    max_age: timedelta = _MAX_AGE,
    clock: Callable[[], datetime] = utc_now,
) -> list[Company]:
    """The companies of ``companies`` that ``company.json`` says are listed (Y, K or N).

    Only companies with a stock code are asked about (the others are not listed); answers
    cached in ``store`` younger than ``max_age`` are reused. A company OpenDART has no profile
    for (013) is left out. A refused run (bad key, quota used, maintenance) raises
    :class:`~asyncrawl.errors.UpstreamFatalError` after caching what was answered.
    """
    candidates = [c for c in companies if c.stock_code is not None]
    cache = _load_cache(await store.get(CORP_CLS_KEY))
    now = clock()
    stale = [c for c in candidates if not _fresh(cache.get(c.corp_code, {}), now, max_age)]
    _log.info(
        "company.json: %d companies with a stock code, %d to ask (%d cached)",
        len(candidates),
        len(stale),
        len(candidates) - len(stale),
    )
    if stale:
        source = CompanyProfileSource(api_key=api_key, base_url=base_url)
        checked_at = now.isoformat()
        try:
            async with run(source, stale, fetcher=fetcher, config=config) as crawl:
                async for result in crawl:
                    outcome = result.outcome
                    corp_cls = outcome.payload["corp_cls"] if isinstance(outcome, Ok) else ""
                    if isinstance(outcome, Ok) or outcome.status == "013":
                        cache[result.key] = {"corp_cls": corp_cls, "checked_at": checked_at}
        finally:
            await store.put(CORP_CLS_KEY, orjson.dumps(cache), content_type="application/json")
    # A company whose profile could not be read stays in: a few 013s cost less than a
    # listed company silently missing from a whole-market crawl.
    unknown = [c for c in candidates if c.corp_code not in cache]
    listed = [
        c
        for c in candidates
        if c.corp_code not in cache or cache[c.corp_code].get("corp_cls") in LISTED_CLASSES
    ]
    _log.info(
        "company.json: %d listed (%d of them unknown, kept), %d delisted or not on an exchange",
        len(listed),
        len(unknown),
        len(candidates) - len(listed),
    )
    return listed


def listed_from_file(
    companies: Iterable[Company], path: str, *, field: str = "--listed-from"
) -> list[Company]:
    """The companies whose stock code a KRX listing file lists (see the module docstring)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(field, f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_LIST_BYTES:
        raise ConfigError(field, f"{path} is larger than {MAX_LIST_BYTES:,} bytes")
    text = decode_text(data, path)
    codes = _krx_codes(text, path)
    return [c for c in companies if c.stock_code is not None and c.stock_code in codes]


def _krx_codes(text: str, name: str) -> set[str]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
        column = next((header.index(c) for c in _KRX_CODE_COLUMNS if c in header), None)
        if column is None:
            raise InputError(
                name,
                1,
                "stock_code",
                f"no stock code column; name it one of {', '.join(_KRX_CODE_COLUMNS)}",
            )
        codes = set()
        for cells in reader:
            if len(cells) > column and cells[column].strip():
                code = cells[column].strip().upper().removeprefix("A")
                codes.add(code.zfill(6) if code.isdigit() else code)
    except csv.Error as error:
        raise InputError(name, reader.line_num, "csv", f"unreadable CSV ({error})") from None
    return codes


async def listed_companies(
    companies: Sequence[Company],
    *,
    listed_from: str,
    out: str,
    fetcher: Fetcher,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
) -> list[Company]:
    """The listed ones of ``companies``, by ``listed_from``.

    ``company.json``: ask OpenDART (:func:`listed_by_profile`, cached in the store ``out``
    names); ``all``: every company with a stock code, delisted ones included; anything else is
    the path of a KRX listing file (:func:`listed_from_file`).
    """
    if listed_from == "all":
        return [c for c in companies if c.stock_code is not None]
    if listed_from != "company.json":
        return await asyncio.to_thread(listed_from_file, companies, listed_from)
    # Imported here: the S3 store pulls in aioboto3, which most runs never need.
    from ...sinks.store import open_store

    async with open_store(out) as store:
        return await listed_by_profile(
            companies, store, fetcher=fetcher, api_key=api_key, base_url=base_url
        )
