"""Plan modes: the filing search plans only filed reports; prefer-cfs asks OFS only when needed.

Against the stand-in, whose ``list.json`` lists exactly the reports it has statements for.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asyncrawl import AiohttpFetcher, CrawlConfig, DirectoryStore, Request, Response, RetryPolicy
from asyncrawl.errors import AttemptTimeout
from asyncrawl.sinks import RunJournal
from asyncrawl.sources.opendart import Company, StatementItem, plan_items, plans
from asyncrawl.sources.opendart.plans import (
    RCEPT_NO_KEY,
    FiledReports,
    dump_filed,
    load_filed,
    plan_filed,
    record_filings,
    remember_filed,
    report_of,
)
from asyncrawl.summary import RunSummary
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn
from support.cli_process import run_cli

KEY = "Plans0Test1Key2For3The4Stand5In6abcdefgh"
assert len(KEY) == 40
YEARS = ("2023", "2024")
REPORTS = ("11013", "11012", "11014", "11011")
# Mid-2024: 2023 is filed in full, 2024 only its first quarter.
FILED_UNTIL = "20240601"


@pytest.mark.parametrize(
    ("name", "acc_mt", "expected"),
    [
        ("분기보고서 (2024.03)", 12, (2024, "11013")),
        ("반기보고서 (2024.06)", 12, (2024, "11012")),
        ("분기보고서 (2024.09)", 12, (2024, "11014")),
        ("사업보고서 (2023.12)", 12, (2023, "11011")),
        ("[기재정정]사업보고서 (2023.12)", 12, (2023, "11011")),
        # A March close: business year 2024 runs from April 2023 to March 2024.
        ("분기보고서 (2023.06)", 3, (2024, "11013")),
        ("반기보고서 (2023.09)", 3, (2024, "11012")),
        ("분기보고서 (2023.12)", 3, (2024, "11014")),
        ("사업보고서 (2024.03)", 3, (2024, "11011")),
        ("주요사항보고서(자기주식취득결정)", 12, None),
        ("분기보고서 (2024.06)", 12, None),  # a "quarterly" report ending a half year
    ],
)
def test_a_filing_maps_to_its_business_year_and_report(
    name: str, acc_mt: int, expected: tuple[int, str] | None
) -> None:
    assert report_of(name, acc_mt) == expected


async def asyncrawl(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args, key=KEY, timeout=90)


def companies_file(tmp_path: Path, count: int = len(DEMO_COMPANIES)) -> Path:
    path = tmp_path / "companies.csv"
    rows = [f"{c['corp_code']},{c['stock_code']}" for c in DEMO_COMPANIES[:count]]
    path.write_text("corp_code,stock_code\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def crawl(
    server: OpenDartStandIn,
    companies: Path,
    out: Path,
    run_id: str,
    *extra: str,
    years: tuple[str, ...] = YEARS,
) -> list[str]:
    return [
        "crawl",
        "--kind=quarter",
        f"--companies={companies}",
        "--years",
        *years,
        f"--base-url={server.url}/api/",
        f"--out={out}",
        f"--run-id={run_id}",
        *extra,
    ]


def summary(out: Path, run_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (out / "_meta" / "runs" / run_id / "summary.json").read_text(encoding="utf-8")
    )
    return loaded


def statement_items(server: OpenDartStandIn) -> list[str]:
    return [a.item for a in server.arrivals if a.path.endswith("/fnlttSinglAcntAll.json")]


def filed_reports(server: OpenDartStandIn, count: int = len(DEMO_COMPANIES)) -> set[str]:
    return {
        f"{c['corp_code']}/{year}/{reprt}"
        for c in DEMO_COMPANIES[:count]
        for year in YEARS
        for reprt in REPORTS
        if server.report_filed(c["corp_code"], int(year), reprt)
    }


async def test_the_filing_plan_asks_only_for_filed_reports_and_refetches_corrections(
    tmp_path: Path,
) -> None:
    companies = companies_file(tmp_path)
    out = tmp_path / "out"
    server = OpenDartStandIn(no_data_ratio=0.2, filed_until=FILED_UNTIL)
    async with server:
        code, _, stderr = await asyncrawl(*crawl(server, companies, out, "f1", "--plan=filings"))
        asked = statement_items(server)
        filed = filed_reports(server)
        list_requests = sum(a.path.endswith("/list.json") for a in server.arrivals)
        # A correction of one report, then a later run in the same output.
        corrected = DEMO_COMPANIES[0]["corp_code"]
        server.correct(corrected, 2023, "11011")
        server.reset_log()
        again, _, again_err = await asyncrawl(
            *crawl(server, companies, out, "f2", "--plan=filings")
        )
        asked_again = statement_items(server)
    assert code == 0, stderr
    assert again == 0, again_err
    # Never a report the stand-in has not filed; every filed one, both bases, once each.
    assert {item.rsplit("/", 1)[0] for item in asked} == filed
    assert len(asked) == len(set(asked)) == 2 * len(filed)
    assert list_requests == len(DEMO_COMPANIES)
    first = summary(out, "f1")
    assert first["planned"] == first["ok"] + first["no_data"] == 2 * len(filed)
    # The later run fetches only the corrected report.
    assert sorted(asked_again) == [f"{corrected}/2023/11011/CFS", f"{corrected}/2023/11011/OFS"]
    newest = max((out / "_meta" / "opendart" / "rcept_no").glob("*.json"))
    ledger = json.loads(newest.read_bytes())
    assert ledger[f"{corrected}/2023/11011/CFS"] == server.rcept_no(corrected, 2023, "11011")


async def test_prefer_cfs_asks_for_ofs_only_where_cfs_has_no_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    server = OpenDartStandIn(no_data_ratio=0.3)
    async with server:
        code, _, stderr = await asyncrawl(
            *crawl(server, companies_file(tmp_path, 4), out, "p1", "--basis=prefer-cfs")
        )
        asked = statement_items(server)
    assert code == 0, stderr
    cfs = {item.rsplit("/", 1)[0] for item in asked if item.endswith("/CFS")}
    ofs = {item.rsplit("/", 1)[0] for item in asked if item.endswith("/OFS")}
    assert len(cfs) == 4 * len(YEARS) * len(REPORTS)
    cfs_empty = {report for report in cfs if server._is_no_data(f"{report}/CFS")}
    assert cfs_empty
    assert ofs == cfs_empty
    done = summary(out, "p1")
    assert done["planned"] == len(cfs) + len(ofs)
    assert done["remaining"] == []


@pytest.mark.parametrize("years", [YEARS, ("2024",)])
async def test_requests_per_company_year_blind_vs_planned(
    tmp_path: Path, years: tuple[str, ...]
) -> None:
    """The README's figure: ``pytest tests/test_opendart_plans.py -k per_company_year -s``."""
    companies = companies_file(tmp_path)
    company_years = len(DEMO_COMPANIES) * len(years)
    counts: dict[str, float] = {}
    for mode, extra in (
        ("blind", ()),
        ("filings", ("--plan=filings",)),
        ("filings + prefer-cfs", ("--plan=filings", "--basis=prefer-cfs")),
    ):
        server = OpenDartStandIn(filed_until=FILED_UNTIL)
        async with server:
            code, _, stderr = await asyncrawl(
                *crawl(
                    server, companies, tmp_path / mode.replace(" ", ""), "m", *extra, years=years
                )
            )
            counts[mode] = len(server.arrivals) / company_years
            data = sum(1 for a in server.arrivals if a.path.endswith("fnlttSinglAcntAll.json"))
        assert code == 0, stderr
        assert data > 0
    print(
        f"\nrequests per company-year ({len(DEMO_COMPANIES)} companies, quarter, "
        f"years {' '.join(years)}, filed until {FILED_UNTIL}): "
        + ", ".join(f"{mode} {value:.2f}" for mode, value in counts.items())
    )
    assert counts["blind"] == 8
    assert counts["filings"] < 0.75 * counts["blind"]
    assert counts["filings + prefer-cfs"] < counts["filings"]


# --- prefer-cfs as discovery (the library path) ---------------------------------------------------


async def test_with_discovery_the_ofs_request_is_follow_up_work_of_an_empty_cfs_item() -> None:
    from asyncrawl.engine import CrawlConfig, run
    from asyncrawl.http import AiohttpFetcher
    from asyncrawl.source import ItemCodec
    from asyncrawl.sources.opendart import Company, OpenDartSource, plan_items

    companies = [Company(**c) for c in DEMO_COMPANIES[:4]]
    items = list(plan_items(companies, [2023], "quarter", ["CFS"]))
    server = OpenDartStandIn(no_data_ratio=0.3)
    async with server, AiohttpFetcher() as fetcher:
        source = OpenDartSource(api_key=KEY, base_url=f"{server.url}/api/", ofs_fallback=True)
        async with run(source, items, fetcher=fetcher, config=CrawlConfig()) as crawl:
            results = [result async for result in crawl]
        asked = statement_items(server)
    empty_cfs = {i.key.rsplit("/", 1)[0] for i in items if server._is_no_data(i.key)}
    ofs_asked = {key.rsplit("/", 1)[0] for key in asked if key.endswith("/OFS")}
    assert empty_cfs
    assert ofs_asked == empty_cfs
    assert crawl.summary.planned == len(items) + len(empty_cfs)
    assert len(results) == crawl.summary.planned
    assert isinstance(source, ItemCodec)
    ofs = next(r.item for r in results if r.item.fs_div == "OFS")
    assert source.load_item(json.loads(json.dumps(source.dump_item(ofs)))) == ofs
    assert ofs.company.stock_code is not None  # the company survives, stock code and name


async def test_planning_requests_and_every_pass_share_one_rate_window(tmp_path: Path) -> None:
    # list.json, the CFS pass and the OFS pass are three engine runs: one limiter across
    # them, or each starts with an empty window and the upstream sees two windows' worth.
    out = tmp_path / "out"
    server = OpenDartStandIn(no_data_ratio=0.3, filed_until=FILED_UNTIL)
    async with server:
        code, _, stderr = await asyncrawl(
            *crawl(
                server,
                companies_file(tmp_path),
                out,
                "w1",
                "--plan=filings",
                "--basis=prefer-cfs",
                "--rate=6/1s",
                "--concurrency=16",
            )
        )
        paths = {a.path.rsplit("/", 1)[1] for a in server.arrivals}
        most = server.max_in_window(1.0)
    assert code == 0, stderr
    assert paths == {"list.json", "fnlttSinglAcntAll.json"}
    assert most <= 6


async def test_a_company_whose_list_json_fails_is_planned_blind_not_dropped(
    tmp_path: Path,
) -> None:
    broken = DEMO_COMPANIES[0]["corp_code"]
    companies = [
        Company(corp_code=c["corp_code"], stock_code=c["stock_code"]) for c in DEMO_COMPANIES[:3]
    ]
    server = OpenDartStandIn(filed_until=FILED_UNTIL)
    async with server, AiohttpFetcher() as real:

        class FailingForOne:
            """list.json answers 500 for one company, every time."""

            async def fetch(self, request: Request, *, timeout: float) -> Response:
                if request.params.get("corp_code") == broken:
                    return Response(status=500, headers={}, body=b"")
                return await real.fetch(request, timeout=timeout)

        filed = await plans.filed_reports(
            companies,
            [2023, 2024],
            fetcher=FailingForOne(),
            api_key=KEY,
            base_url=f"{server.url}/api/",
            config=CrawlConfig(retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)),
        )
    assert set(filed) == {c.corp_code for c in companies[1:]}
    items = list(plan_items(companies, [2023, 2024], "quarter", ("CFS",)))
    planned = await plan_filed(items, filed, DirectoryStore(tmp_path))
    blind = [i for i in items if i.company.corp_code == broken]
    assert [i for i in planned if i.company.corp_code == broken] == blind
    # The others: only what the stand-in filed (2024 has only its first quarter by June).
    assert len(planned) < len(items)


def test_filed_reports_round_trip_as_json() -> None:
    filed: FiledReports = {"00126380": {(2023, "11011"): "20240312000736"}, "00164779": {}}
    assert load_filed(dump_filed(filed)) == filed
    with pytest.raises(ValueError, match="YEAR/REPRT_CODE"):
        load_filed(b'{"00126380": {"2023": "x"}}')


async def test_runs_recording_filings_at_once_lose_nothing(tmp_path: Path) -> None:
    # Two shards finishing together: each update is a new generation written only if absent.
    store = DirectoryStore(tmp_path)
    companies = [Company(corp_code=c["corp_code"]) for c in DEMO_COMPANIES[:6]]
    runs: list[tuple[str, FiledReports]] = []
    for index in range(6):
        company = companies[index]
        run_id = f"shard-{index}"
        journal = RunJournal(store, run_id)
        await journal.record(f"{company.corp_code}/2023/11011/CFS", "ok")
        await journal.aclose()
        runs.append((run_id, {company.corp_code: {(2023, "11011"): f"2024031200{index:04d}"}}))
    counts = await asyncio.gather(*(record_filings(store, run_id, filed) for run_id, filed in runs))
    assert counts == [1] * 6
    items = list(plan_items(companies, [2023], "annual", ("CFS",)))
    filed = {code: reports for _, shard in runs for code, reports in shard.items()}
    # Every shard's entry is in the newest generation: nothing is planned again.
    assert await plan_filed(items, filed, store) == []


async def test_the_single_ledger_file_of_earlier_versions_is_still_read(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    company = Company(corp_code=DEMO_COMPANIES[0]["corp_code"])
    key = f"{company.corp_code}/2023/11011/CFS"
    await store.put(RCEPT_NO_KEY, json.dumps({key: "20240312000736"}).encode(), content_type="x")
    items = list(plan_items([company], [2023], "annual", ("CFS",)))
    filed: FiledReports = {company.corp_code: {(2023, "11011"): "20240312000736"}}
    assert await plan_filed(items, filed, store) == []
    corrected: FiledReports = {company.corp_code: {(2023, "11011"): "20240401000111"}}
    assert await plan_filed(items, corrected, store) == items


@dataclass
class _Ran:
    """What run_planned reads of a job's result."""

    fatal: str | None = None
    sink_error: str | None = None
    summary: RunSummary = field(
        default_factory=lambda: RunSummary(
            run_id="r1",
            planned=0,
            ok=0,
            no_data=0,
            failed=(),
            remaining=(),
            requests=0,
            retries=0,
            status_counts={},
            elapsed_s=0.0,
        )
    )


async def test_a_stopped_prefer_cfs_run_records_nothing_and_its_resume_asks_for_ofs(
    tmp_path: Path,
) -> None:
    # Day 1: the CFS item answers 013, then the daily quota (020) stops the run before the OFS
    # follow-up. Recording the CFS item then would keep the resume from planning either.
    store = DirectoryStore(tmp_path)
    company = Company(corp_code=DEMO_COMPANIES[0]["corp_code"])
    items = [
        StatementItem(company=company, bsns_year=2023, reprt_code="11011", fs_div=fs)
        for fs in ("CFS", "OFS")
    ]
    asked: list[list[str]] = []

    async def stopped(batch: list[StatementItem]) -> _Ran:
        asked.append([item.key for item in batch])
        journal = RunJournal(store, "r1")
        for item in batch:
            await journal.record(item.key, "no_data")
        await journal.aclose()
        return _Ran(fatal="020: daily quota used")

    async def finishes(batch: list[StatementItem]) -> _Ran:
        asked.append([item.key for item in batch])
        return _Ran()

    async with OpenDartStandIn() as server:
        for job in (stopped, finishes):
            await plans.run_planned(
                items,
                plan="filings",
                basis="prefer-cfs",
                store=store,
                run_id="r1",
                api_key=KEY,
                base_url=f"{server.url}/api/",
                run_job=job,
            )
    assert asked[0] == [items[0].key]
    assert items[1].key in asked[-1]  # the OFS follow-up was asked in the end


async def test_a_correction_filed_between_two_plannings_of_one_run_is_fetched_by_the_next_run(
    tmp_path: Path,
) -> None:
    store = DirectoryStore(tmp_path)
    company = Company(corp_code=DEMO_COMPANIES[0]["corp_code"])
    items = [StatementItem(company=company, bsns_year=2023, reprt_code="11011", fs_div="CFS")]
    first: FiledReports = {company.corp_code: {(2023, "11011"): "20240314000001"}}
    corrected: FiledReports = {company.corp_code: {(2023, "11011"): "20240414000002"}}
    await remember_filed(store, "r1", first)  # day 1 planned, fetched, then interrupted
    journal = RunJournal(store, "r1")
    await journal.record(items[0].key, "ok")
    await journal.aclose()
    # Day 2, same run id: the journal skips the item, so it was fetched at the first filing.
    to_record = await remember_filed(store, "r1", corrected)
    await record_filings(store, "r1", to_record)
    assert await plan_filed(items, corrected, store) == items  # a new run fetches the correction


class _SlowListJson:
    """list.json in three pages, each answered after 0.3 s (or the attempt's timeout)."""

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        if timeout < 0.3:
            await asyncio.sleep(timeout)
            raise AttemptTimeout("timed out", url=request.display_url, status="timeout")
        await asyncio.sleep(0.3)
        page = int(request.params["page_no"])
        body = {
            "status": "000",
            "message": "ok",
            "total_page": 3,
            "page_no": page,
            "list": [{"report_nm": "사업보고서 (2023.12)", "rcept_no": f"2024031400{page:04d}"}],
        }
        return Response(status=200, headers={}, body=json.dumps(body).encode())


@pytest.mark.looptime
async def test_the_filing_search_keeps_to_one_deadline_over_its_rounds_of_pages() -> None:
    # Page 1, then pages 2-3 in a second engine run: together within the deadline (+ grace),
    # and a company whose pages the deadline cut off is not "known to have filed nothing".
    loop = asyncio.get_running_loop()
    started = loop.time()
    filed = await plans.filed_reports(
        [Company(corp_code=DEMO_COMPANIES[0]["corp_code"])],
        [2023],
        fetcher=_SlowListJson(),
        api_key=KEY,
        base_url="http://127.0.0.1:9/api/",
        config=CrawlConfig(deadline=0.5, grace=0.05, retry=RetryPolicy(max_attempts=1)),
    )
    assert loop.time() - started <= 0.55 + 1e-6
    assert filed == {}
