"""Every company OpenDART knows, from ``corpCode.xml``.

The answer is a ZIP holding ``CORPCODE.xml`` (about 30 MB, 100,000 companies), one ``<list>``
per company with ``corp_code``, ``corp_name``, ``stock_code`` (a blank for unlisted ones) and
``modify_date``. The XML is read as a stream, one company at a time, so the whole tree never
sits in memory; ElementTree does not fetch external entities. An error answer is a small XML
document (``<result><status>013</status><message>...</message></result>``) instead of a ZIP.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from collections.abc import Iterator
from typing import IO
from xml.etree import ElementTree

from ...errors import AsyncrawlError, UpstreamFatalError
from ...http import Fetcher, Request
from ...outcomes import Fatal, classify_http_status
from ...redact import redact_text, register_secret
from .items import Company
from .source import (
    DEFAULT_BASE_URL,
    FATAL_STATUSES,
    REFUSED_STATUSES,
    check_api_key,
    wrong_base_url,
)

__all__ = [
    "OpenDartError",
    "fetch_corp_codes",
    "parse_corp_code_zip",
]

_log = logging.getLogger(__name__)


class OpenDartError(AsyncrawlError):
    """OpenDART answered with an error (``status`` is its code, or ``bad_body``)."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"OpenDART status {status}: {message}")


def parse_corp_code_zip(data: bytes, *, listed_only: bool = True) -> list[Company]:
    """The companies in a ``corpCode.xml`` answer; only listed ones (with a stock code) by default.

    An error answer raises :class:`~asyncrawl.errors.UpstreamFatalError` for statuses that
    end a run (010, 011, 012, 901: unknown, suspended, IP-refused or expired key; 020 daily
    quota used; 800 maintenance) and
    :class:`OpenDartError` otherwise; an answer that is neither ZIP nor XML raises
    :class:`OpenDartError` with status ``bad_body``.
    """
    if not data.startswith(b"PK"):
        _raise_error_answer(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise OpenDartError("bad_body", "corpCode.xml answer is a damaged ZIP") from None
    with archive:
        members = [n for n in archive.namelist() if n.lower().endswith(".xml")]
        if not members:
            raise OpenDartError("bad_body", "corpCode.xml answer holds no XML file")
        with archive.open(members[0]) as stream:
            return list(_companies(stream, listed_only=listed_only))


#: Bytes read from the archive at a time.
_CHUNK = 1 << 16
# Entities can only be declared in a DOCTYPE, which must come before the root element.
_DOCTYPE = b"<!DOCTYPE"


def _xml_events(stream: IO[bytes]) -> Iterator[tuple[str, ElementTree.Element]]:
    """Stream ``start`` and ``end`` events; a document with a DOCTYPE is refused unparsed.

    Refusing the DOCTYPE means no entity can be declared, so none is ever expanded.
    """
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(
        events=("start", "end")
    )
    in_prolog = True
    tail = b""
    try:
        while chunk := stream.read(_CHUNK):
            if in_prolog and _DOCTYPE in tail + chunk:
                raise OpenDartError("bad_body", "the XML declares a DOCTYPE; refused")
            tail = chunk[-len(_DOCTYPE) :]
            parser.feed(chunk)
            for found in _elements(parser):
                in_prolog = False
                yield found
        parser.close()
        yield from _elements(parser)
    except ElementTree.ParseError as error:
        raise OpenDartError("bad_body", f"the XML is not well-formed ({error})") from None


def _elements(
    parser: ElementTree.XMLPullParser[ElementTree.Element],
) -> Iterator[tuple[str, ElementTree.Element]]:
    for found in parser.read_events():
        if len(found) == 2 and isinstance(found[1], ElementTree.Element):
            yield str(found[0]), found[1]


def _companies(stream: IO[bytes], *, listed_only: bool) -> Iterator[Company]:
    seen: set[str] = set()
    skipped = 0
    root: ElementTree.Element | None = None
    for event, element in _xml_events(stream):
        if event == "start":
            if root is None:
                root = element
            continue
        if element.tag != "list":
            continue
        corp_code = (element.findtext("corp_code") or "").strip()
        stock_code = (element.findtext("stock_code") or "").strip().upper() or None
        corp_name = (element.findtext("corp_name") or "").strip() or None
        # Drop what has been read so memory stays flat over 100,000 companies.
        if root is not None:
            root.clear()
        if listed_only and stock_code is None:
            continue
        try:
            company = Company(corp_code=corp_code, stock_code=stock_code, corp_name=corp_name)
        except ValueError:
            skipped += 1
            continue
        if company.corp_code not in seen:
            seen.add(company.corp_code)
            yield company
    if skipped:
        _log.warning("corpCode.xml: skipped %d malformed company entries", skipped)


def _raise_error_answer(data: bytes) -> None:
    not_dart = "corpCode.xml answer is neither a ZIP nor an OpenDART error"
    root: ElementTree.Element | None = None
    try:
        for event, element in _xml_events(io.BytesIO(data)):
            if event == "end":
                root = element
    except OpenDartError:
        raise OpenDartError("bad_body", not_dart) from None
    status = "" if root is None else (root.findtext("status") or "").strip()
    if not status:
        raise OpenDartError("bad_body", not_dart)
    message = redact_text((root.findtext("message") or "").strip()) if root is not None else ""
    if status in FATAL_STATUSES:
        raise UpstreamFatalError(f"{FATAL_STATUSES[status]} (DART status {status})", status=status)
    if status in REFUSED_STATUSES:
        raise UpstreamFatalError(
            f"{REFUSED_STATUSES[status]} (DART status {status})", status=status
        )
    raise OpenDartError(status, message or "no message")


async def fetch_corp_codes(
    fetcher: Fetcher,
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60,
    listed_only: bool = True,
) -> list[Company]:
    """Download ``corpCode.xml`` through ``fetcher`` and return its companies.

    Listed companies only by default. Errors are as for :func:`parse_corp_code_zip`; an HTTP
    404 (a wrong ``base_url``) and 401/403 raise :class:`~asyncrawl.errors.UpstreamFatalError`
    and other HTTP errors :class:`OpenDartError` (status ``http_<code>``). The key never
    appears in any message.
    """
    check_api_key(api_key)
    register_secret(api_key)
    root = base_url if base_url.endswith("/") else base_url + "/"
    request = Request(
        url=root + "corpCode.xml",
        params={"crtfc_key": api_key},
        secret_params=frozenset({"crtfc_key"}),
    )
    response = await fetcher.fetch(request, timeout=timeout)
    if response.status == 404:
        raise UpstreamFatalError(f"corpCode.xml: {wrong_base_url(root, 404)}", status="http_404")
    by_http = classify_http_status(response.status, response.headers)
    if isinstance(by_http, Fatal):
        raise UpstreamFatalError(f"corpCode.xml: {by_http.reason}", status=by_http.status)
    if by_http is not None:
        raise OpenDartError(by_http.status, f"corpCode.xml: HTTP {response.status}")
    # Unzipping and parsing 30 MB of XML takes a while: keep the event loop free meanwhile.
    return await asyncio.to_thread(parse_corp_code_zip, response.body, listed_only=listed_only)
