"""The record path: rows to gzip JSON Lines in C, off the event loop; OpenDART rows as sent."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncrawl.errors import SinkError
from asyncrawl.http import Response
from asyncrawl.outcomes import Ok, Unusable
from asyncrawl.results import ItemResult
from asyncrawl.sinks import DirectoryStore, RecordSink, decode_jsonl_gz, encode_jsonl_gz
from asyncrawl.sinks.records import GZIP_LEVEL, encode_off_loop
from asyncrawl.sources.opendart import Company, OpenDartSource, StatementItem

KEY = "0123456789abcdef0123456789abcdef01234567"


def _per_row(rows: list[dict[str, Any]]) -> bytes:
    """The reference encoding: one orjson.dumps per row."""
    lines = b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)
    return gzip.compress(lines, compresslevel=GZIP_LEVEL, mtime=0)


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": "1"}],
        [{"a": "1"}, {"b": "2"}, {}],
        # A value holding the very separator the fast path splits on, and a newline.
        [{"account_nm": "},{", "x": "}\n{"}, {"y": "},{},{"}],
        [{"nested": [{"a": 1}, {"b": 2}]}, {"c": None}],
        [{"account_nm": "유동자산", "thstrm_amount": "1,000"}] * 50,
    ],
)
def test_whole_list_encoding_is_byte_identical_to_one_dump_per_row(
    rows: list[dict[str, Any]],
) -> None:
    data = encode_jsonl_gz(rows)
    assert data == _per_row(rows)
    assert decode_jsonl_gz(data) == rows


class _Row(Mapping[str, str]):
    """A mapping that is not a dict, and notes which thread reads it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values_ = values
        self.read_on: set[threading.Thread] = set()

    def __getitem__(self, key: str) -> str:
        self.read_on.add(threading.current_thread())
        return self.values_[key]

    def __iter__(self) -> Iterator[str]:
        self.read_on.add(threading.current_thread())
        return iter(self.values_)

    def __len__(self) -> int:
        return len(self.values_)


def test_mappings_that_are_not_dicts_and_generators_still_encode() -> None:
    rows = [{"a": "1"}, {"b": "2"}]
    expected = _per_row(rows)
    assert encode_jsonl_gz([_Row(r) for r in rows]) == expected
    assert encode_jsonl_gz(r for r in rows) == expected
    assert encode_jsonl_gz([]) == gzip.compress(b"", compresslevel=GZIP_LEVEL, mtime=0)


def test_a_value_that_is_not_json_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_jsonl_gz([{"a": object()}])


async def test_encoding_off_the_loop_gives_the_same_bytes_and_errors() -> None:
    rows = [{"a": "1"}, {"b": "2"}]
    assert await encode_off_loop(rows) == encode_jsonl_gz(rows)
    with pytest.raises(TypeError):
        await encode_off_loop([{"a": object()}])


async def test_record_sink_compresses_on_a_daemon_thread_not_the_loop(tmp_path: Path) -> None:
    row = _Row({"account_nm": "자산총계"})
    sink = RecordSink(DirectoryStore(tmp_path), data_key=lambda r: "data/x.jsonl.gz", journal=None)
    await sink.write(
        ItemResult(item="x", key="x", outcome=Ok(payload=[row]), attempts=1, finished_at=0.0)
    )
    assert row.read_on, "the rows were never read"
    # Not the event loop's thread, and a thread that cannot keep an exiting process alive.
    assert threading.current_thread() not in row.read_on
    assert all(thread.daemon for thread in row.read_on)
    assert decode_jsonl_gz((tmp_path / "data/x.jsonl.gz").read_bytes()) == [
        {"account_nm": "자산총계"}
    ]


async def test_record_sink_reports_rows_that_are_not_json_as_a_sink_error(tmp_path: Path) -> None:
    sink = RecordSink(DirectoryStore(tmp_path), data_key=lambda r: "data/x.jsonl.gz", journal=None)
    bad = ItemResult(
        item="x", key="x", outcome=Ok(payload=[{"a": object()}]), attempts=1, finished_at=0.0
    )
    with pytest.raises(SinkError, match="not JSON rows"):
        await sink.write(bad)


# --- OpenDART rows ------------------------------------------------------------------------

FIXED = datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)
SAMSUNG = Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자")


def _classify(rows: list[Any]) -> Ok | Unusable:
    source = OpenDartSource(api_key=KEY, clock=lambda: FIXED)
    item = StatementItem(company=SAMSUNG, bsns_year=2023, reprt_code="11011", fs_div="CFS")
    body = orjson.dumps({"status": "000", "message": "정상", "list": rows})
    outcome = source.classify(item, Response(status=200, headers={}, body=body))
    assert isinstance(outcome, Ok | Unusable)
    return outcome


def test_rows_keep_dart_order_and_values_then_the_documented_fields() -> None:
    rows = [{"rcept_no": "1", "corp_code": "00126380", "thstrm_amount": "-1,5"}, {"ord": "2"}]
    outcome = _classify(rows)
    assert isinstance(outcome, Ok)
    tail = ["stock_code", "corp_name", "fs_div", "crawled_at"]
    assert list(outcome.payload[0]) == ["rcept_no", "corp_code", "thstrm_amount", *tail]
    # A row without corp_code gets the item's, before the other added fields.
    assert list(outcome.payload[1]) == ["ord", "corp_code", *tail]
    assert outcome.payload[1]["corp_code"] == "00126380"
    assert outcome.payload[0]["thstrm_amount"] == "-1,5"
    assert outcome.payload[0]["crawled_at"] == "2024-05-01T09:30:00.123Z"


def test_nulls_and_numbers_become_text_and_other_values_are_a_bad_body() -> None:
    outcome = _classify([{"a": None, "b": 12, "c": 1.5, "d": "x"}])
    assert isinstance(outcome, Ok)
    assert {k: outcome.payload[0][k] for k in "abcd"} == {"a": "", "b": "12", "c": "1.5", "d": "x"}
    for bad in (True, [1], {"x": "1"}):
        refused = _classify([{"ok": "1"}, {"field": bad}])
        assert isinstance(refused, Unusable)
        assert refused.status == "bad_body"
        assert "'field'" in refused.reason
