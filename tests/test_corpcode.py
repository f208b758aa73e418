"""corpCode.xml: the ZIP of every company OpenDART knows, and its error answers."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from dataclasses import dataclass, field

import pytest

from asyncrawl.errors import AsyncrawlError, ConfigError, UpstreamFatalError
from asyncrawl.http import Request, Response
from asyncrawl.sources.opendart import (
    Company,
    OpenDartError,
    fetch_corp_codes,
    parse_corp_code_zip,
)

KEY = "fedcba9876543210fedcba9876543210fedcba98"


def entry(corp_code: str, name: str, stock_code: str) -> str:
    return (
        f"<list><corp_code>{corp_code}</corp_code><corp_name>{name}</corp_name>"
        f"<stock_code>{stock_code}</stock_code><modify_date>20240101</modify_date></list>"
    )


def corp_code_zip(*entries: str, member: str = "CORPCODE.xml") -> bytes:
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n<result>\n' + "\n".join(entries) + "\n</result>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, xml.encode())
    return buffer.getvalue()


def error_xml(status: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<result><status>{status}</status><message>{message}</message></result>"
    ).encode()


SAMPLE = corp_code_zip(
    entry("00126380", "삼성전자", "005930"),
    entry("00434003", "다코", " "),
    entry("01680244", "알파벳주식", "0126z0"),
    entry("00126380", "삼성전자(중복)", "005930"),
)


def test_listed_companies_only_by_default() -> None:
    assert parse_corp_code_zip(SAMPLE) == [
        Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자"),
        Company(corp_code="01680244", stock_code="0126Z0", corp_name="알파벳주식"),
    ]


def test_every_company_when_asked() -> None:
    everyone = parse_corp_code_zip(SAMPLE, listed_only=False)
    assert [c.corp_code for c in everyone] == ["00126380", "00434003", "01680244"]
    assert everyone[1] == Company(corp_code="00434003", corp_name="다코")


def test_a_large_file_streams_through() -> None:
    entries = [entry(f"{n:08d}", f"회사{n}", f"{n:06d}" if n % 3 else " ") for n in range(30_000)]
    companies = parse_corp_code_zip(corp_code_zip(*entries))
    assert len(companies) == 20_000
    assert companies[-1] == Company(
        corp_code="00029999", stock_code="029999", corp_name="회사29999"
    )


def test_reading_does_not_build_the_whole_tree() -> None:
    # 30,000 unlisted companies: 4 MB of XML, about 27 MB as a tree, nothing to keep.
    data = corp_code_zip(*(entry(f"{n:08d}", f"회사{n}", " ") for n in range(30_000)))
    tracemalloc.start()
    try:
        assert parse_corp_code_zip(data) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize(
    ("status", "meaning"),
    [("010", "not registered"), ("011", "suspended"), ("012", "IP"), ("901", "expired")],
)
def test_key_errors_stop_the_run_without_showing_the_key(status: str, meaning: str) -> None:
    with pytest.raises(UpstreamFatalError) as caught:
        parse_corp_code_zip(error_xml(status, f"등록되지 않은 키입니다. {KEY}"))
    assert caught.value.status == status
    assert meaning in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "meaning"),
    [("020", "daily quota used"), ("800", "OpenDART is under maintenance")],
)
def test_quota_and_maintenance_refuse_the_run(status: str, meaning: str) -> None:
    with pytest.raises(UpstreamFatalError) as caught:
        parse_corp_code_zip(error_xml(status, "오류 메시지"))
    assert caught.value.status == status
    assert meaning in str(caught.value)


@pytest.mark.parametrize("status", ["013", "014"])
def test_other_error_answers_carry_status_and_message(status: str) -> None:
    with pytest.raises(OpenDartError) as caught:
        parse_corp_code_zip(error_xml(status, "오류 메시지"))
    assert caught.value.status == status
    assert "오류 메시지" in str(caught.value)
    assert isinstance(caught.value, AsyncrawlError)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Bad gateway</body></html>",
        b"<html><body>unclosed",
        b"",
        b"PK\x03\x04 truncated zip",
        corp_code_zip(member="README.txt"),
        corp_code_zip("<list><corp_code>00126380</corp_code>"),
    ],
)
def test_answers_that_are_not_corp_codes_are_bad_bodies(body: bytes) -> None:
    with pytest.raises(OpenDartError) as caught:
        parse_corp_code_zip(body)
    assert caught.value.status == "bad_body"


def test_entities_are_never_expanded() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<result><status>&b;</status></result>"
    )
    with pytest.raises(OpenDartError) as caught:
        parse_corp_code_zip(laughs)
    assert caught.value.status == "bad_body"
    archived = io.BytesIO()
    with zipfile.ZipFile(archived, "w") as archive:
        archive.writestr("CORPCODE.xml", laughs.replace(b"status", b"list"))
    with pytest.raises(OpenDartError, match="DOCTYPE"):
        parse_corp_code_zip(archived.getvalue())


@dataclass
class StubFetcher:
    """Answers every request with one canned response and remembers what it was asked."""

    answer: Response
    asked: list[tuple[Request, float]] = field(default_factory=list)

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        self.asked.append((request, timeout))
        return self.answer


async def test_fetch_asks_for_corp_code_xml_with_the_key_kept_secret() -> None:
    fetcher = StubFetcher(Response(status=200, headers={}, body=SAMPLE))
    companies = await fetch_corp_codes(
        fetcher, api_key=KEY, base_url="http://127.0.0.1:9/api", timeout=12.5
    )
    assert [c.corp_code for c in companies] == ["00126380", "01680244"]
    [(request, timeout)] = fetcher.asked
    assert request.url == "http://127.0.0.1:9/api/corpCode.xml"
    assert dict(request.params) == {"crtfc_key": KEY}
    assert KEY not in request.display_url
    assert timeout == 12.5


async def test_fetch_reports_a_bad_key_as_fatal() -> None:
    fetcher = StubFetcher(
        Response(status=200, headers={}, body=error_xml("012", "접근할 수 없는 IP"))
    )
    with pytest.raises(UpstreamFatalError, match="IP"):
        await fetch_corp_codes(fetcher, api_key=KEY)


@pytest.mark.parametrize(("http", "error"), [(403, UpstreamFatalError), (500, OpenDartError)])
async def test_fetch_reports_http_errors(http: int, error: type[Exception]) -> None:
    fetcher = StubFetcher(Response(status=http, headers={}, body=b"<html>no</html>"))
    with pytest.raises(error) as caught:
        await fetch_corp_codes(fetcher, api_key=KEY)
    assert getattr(caught.value, "status", None) == f"http_{http}"


async def test_fetch_names_base_url_when_it_answers_404() -> None:
    fetcher = StubFetcher(Response(status=404, headers={}, body=b"<html>Not Found</html>"))
    with pytest.raises(UpstreamFatalError) as caught:
        await fetch_corp_codes(fetcher, api_key=KEY, base_url="http://127.0.0.1:9/")
    assert caught.value.status == "http_404"
    assert "base_url" in str(caught.value)
    assert "/api/" in str(caught.value)


async def test_fetch_refuses_a_malformed_key_before_asking() -> None:
    fetcher = StubFetcher(Response(status=200, headers={}, body=SAMPLE))
    with pytest.raises(ConfigError, match="DART_API_KEY"):
        await fetch_corp_codes(fetcher, api_key="too-short")
    assert fetcher.asked == []
