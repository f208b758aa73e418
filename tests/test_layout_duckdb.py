"""The data layout is a table: DuckDB reads data/ with Hive partitioning, as Athena would."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb

from asyncrawl.outcomes import Ok
from asyncrawl.results import ItemResult
from asyncrawl.sinks import (
    DirectoryStore,
    RecordSink,
    RunJournal,
    partitioned_key,
    write_summary,
)

CRAWLED_AT = "2024-05-01T00:00:00Z"
COMPANIES = {"00126380": ("005930", "삼성전자"), "00164779": ("000660", "SK하이닉스")}


def _rows(corp_code: str, year: str, report: str, fs_div: str) -> list[dict[str, str]]:
    stock_code, corp_name = COMPANIES[corp_code]
    common = {
        "rcept_no": f"{year}0314000{report[-1]}",
        "reprt_code": report,
        "bsns_year": year,
        "corp_code": corp_code,
        "stock_code": stock_code,
        "corp_name": corp_name,
        "fs_div": fs_div,
        "sj_div": "BS",
        "currency": "KRW",
        "crawled_at": CRAWLED_AT,
    }
    return [
        {**common, "account_nm": "자산총계", "thstrm_amount": "1,000", "ord": "1"},
        {**common, "account_nm": "부채총계", "thstrm_amount": "400", "ord": "2"},
    ]


def _data_key(result: ItemResult[dict[str, str]]) -> str:
    item = result.item
    partitions = [
        ("year", item["bsns_year"]),
        ("report", item["reprt_code"]),
        ("fs", item["fs_div"]),
    ]
    return partitioned_key(partitions, f"{item['corp_code']}.jsonl.gz")


async def test_duckdb_reads_the_layout_with_partitions_and_row_columns(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    sink = RecordSink(store, data_key=_data_key, journal=RunJournal(store, "run-1"))
    combos = list(
        itertools.product(COMPANIES, ["2023", "2024"], ["11011", "11013"], ["CFS", "OFS"])
    )
    for corp_code, year, report, fs_div in combos:
        item = {"corp_code": corp_code, "bsns_year": year, "reprt_code": report, "fs_div": fs_div}
        result = ItemResult(
            item=item,
            key=f"{corp_code}/{year}/{report}/{fs_div}",
            outcome=Ok(payload=_rows(corp_code, year, report, fs_div)),
            attempts=1,
            finished_at=0.0,
        )
        await sink.write(result)
    await sink.aclose()
    # Run metadata beside data/ must not leak into the table.
    await write_summary(store, "run-1", {"run_id": "run-1", "planned": len(combos)})

    pattern = (tmp_path / "data" / "**" / "*.jsonl.gz").as_posix()
    con = duckdb.connect()
    try:
        cursor = con.execute(
            "SELECT * FROM read_json_auto(?, hive_partitioning = true,"
            " format = 'newline_delimited')",
            [pattern],
        )
        columns: list[str] = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        con.close()
    records: list[dict[str, Any]] = [dict(zip(columns, row, strict=True)) for row in rows]

    # No column name repeats (Athena would reject partition keys that duplicate columns).
    assert len(columns) == len(set(columns))
    for name in ("year", "report", "fs", "bsns_year", "reprt_code", "fs_div", "corp_code"):
        assert name in columns
    for name in ("stock_code", "corp_name", "account_nm", "thstrm_amount", "crawled_at"):
        assert name in columns

    assert len(records) == 2 * len(combos)
    for record in records:
        # Each partition value agrees with the row's own field.
        assert str(record["year"]) == record["bsns_year"]
        assert str(record["report"]) == record["reprt_code"]
        assert record["fs"] == record["fs_div"]
        assert record["stock_code"] == COMPANIES[record["corp_code"]][0]
    # DART's values arrive as the strings DART sent, leading zeros and commas included.
    assert {r["corp_code"] for r in records} == set(COMPANIES)
    assert {r["thstrm_amount"] for r in records} == {"1,000", "400"}
    assert {r["corp_name"] for r in records} == {"삼성전자", "SK하이닉스"}
    assert {(str(r["year"]), str(r["report"]), r["fs"]) for r in records} == {
        (y, rp, fs) for y in ("2023", "2024") for rp in ("11011", "11013") for fs in ("CFS", "OFS")
    }
