"""The stock-code table: corpCode.xml cached under _meta/ with its date, refreshed daily."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asyncrawl.errors import ConfigError
from asyncrawl.http import AiohttpFetcher
from asyncrawl.sinks import DirectoryStore
from asyncrawl.sources.opendart import Company
from asyncrawl.sources.opendart.lookup import (
    CORP_CODES_KEY,
    by_stock_code,
    corp_code_table,
    read_corp_code_file,
)
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn

KEY = "0123456789abcdef0123456789abcdef01234567"
FIXTURES = Path(__file__).parent / "fixtures" / "opendart"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_downloaded_once_used_for_a_day_then_fetched_again(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    clock = Clock()
    async with OpenDartStandIn() as server, AiohttpFetcher() as fetcher:
        base = f"{server.url}/api/"

        async def table() -> list[Company]:
            return await corp_code_table(
                store, fetcher=fetcher, api_key=KEY, base_url=base, clock=clock
            )

        first = await table()
        clock.now += timedelta(hours=23)
        second = await table()
        clock.now += timedelta(hours=2)
        third = await table()
        downloads = sum(a.path.endswith("corpCode.xml") for a in server.arrivals)
    assert first == second == third
    assert downloads == 2
    assert (tmp_path / CORP_CODES_KEY).exists()
    assert CORP_CODES_KEY.startswith("_meta/")
    listed = by_stock_code(first)
    assert listed["005930"].corp_code == "00126380"
    assert {c["stock_code"] for c in DEMO_COMPANIES} <= set(listed)


async def test_an_unreadable_cache_is_replaced(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    await store.put(CORP_CODES_KEY, b"{not json", content_type="application/json")
    async with OpenDartStandIn() as server, AiohttpFetcher() as fetcher:
        companies = await corp_code_table(
            store, fetcher=fetcher, api_key=KEY, base_url=f"{server.url}/api/"
        )
    assert by_stock_code(companies)["005930"].corp_code == "00126380"


def test_a_corp_codes_file_may_be_the_zip_the_xml_or_a_list(tmp_path: Path) -> None:
    xml = (FIXTURES / "CORPCODE.xml").read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("CORPCODE.xml", xml)
    (tmp_path / "corpCode.zip").write_bytes(archive.getvalue())
    (tmp_path / "CORPCODE.xml").write_bytes(xml)
    (tmp_path / "list.csv").write_text("corp_code,stock_code\n00126380,005930\n")
    for name in ("corpCode.zip", "CORPCODE.xml", "list.csv"):
        table = by_stock_code(read_corp_code_file(str(tmp_path / name)))
        assert table["005930"].corp_code == "00126380", name


def test_a_missing_corp_codes_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--corp-codes"):
        read_corp_code_file(str(tmp_path / "nope.zip"))
