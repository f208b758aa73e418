"""Plan modes: spend the daily quota only on reports that were filed.

``blind`` (the default) asks for every company x year x report x basis, filed or not. ``filings``
first asks OpenDART's filing search (``list.json``: periodic reports ``A001`` annual, ``A002``
half-year, ``A003`` quarterly, ``last_reprt_at=Y`` for the latest correction only; one request
per company, paged by 100; 013 means nothing filed) and plans only the reports it lists. Each
filing is mapped to its business year and report code from its name, ``사업보고서 (2024.03)``
being the period's end: the company's fiscal year ends in the month of its annual reports (a
December close unless an annual report says otherwise), the business year is named after the
calendar year the fiscal year ends in, and a quarter is counted from the fiscal year's start.

The ``rcept_no`` of every report an item was fetched from is recorded at
``_meta/opendart/rcept_no.json`` (:func:`record_filings`), so a later run in the same output
plans an item again only when a newer filing (a correction) exists.

The ``prefer-cfs`` basis plans consolidated statements only and asks for the separate ones
(OFS) only for items whose CFS request had no data (:func:`follow_up_items`, from the run's
journal, so a resumed run finds them too).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import orjson

from ...engine import CrawlConfig, run
from ...errors import ConfigError, SinkError
from ...http import AiohttpFetcher, Fetcher, Request, Response
from ...limiter import RateLimiter
from ...outcomes import NoData, Ok, Outcome, Unusable
from ...sinks.base import BlobStore
from ...sinks.journal import RunJournal, read_run_state, write_run_state
from ...summary import RunSummary
from .items import Company, StatementItem
from .source import DEFAULT_BASE_URL, check_api_key, read_answer

__all__ = [
    "BASES",
    "FILED_STATE",
    "PLANS",
    "RCEPT_NO_KEY",
    "RCEPT_NO_PREFIX",
    "FiledReports",
    "FilingPage",
    "FilingSearchSource",
    "dump_filed",
    "filed_reports",
    "follow_up_items",
    "load_filed",
    "plan_filed",
    "plan_filings",
    "record_filings",
    "remember_filed",
    "report_of",
    "run_planned",
]

_log = logging.getLogger(__name__)

#: Plan modes: every item, or only the filed reports.
PLANS = ("blind", "filings")
#: Statement bases: both divisions, or CFS with OFS only where CFS has no data.
BASES = ("both", "prefer-cfs")
#: Where the fetched reports' receipt numbers are recorded, relative to the output root: one
#: generation per update, ``{RCEPT_NO_PREFIX}{NNNNNNNN}.json``, the newest holding them all.
RCEPT_NO_PREFIX = "_meta/opendart/rcept_no/"
#: The single ledger file of earlier versions, read when no generation exists yet.
RCEPT_NO_KEY = "_meta/opendart/rcept_no.json"
#: Run state (``_meta/runs/{run_id}/state/``) holding what the filing search answered when the
#: run was planned, for recording once the run is done.
FILED_STATE = "opendart-filed.json"
#: Lost races in a row before record_filings gives up (each loss: another run recorded first).
_LEDGER_RACES = 20
_GENERATION = re.compile(r"(\d{8})\.json")
_PAGE_COUNT = 100
_KINDS = {"사업보고서": "11011", "반기보고서": "11012", "분기보고서": "quarter"}
_REPORT_NAME = re.compile(r"(사업보고서|반기보고서|분기보고서)\s*\((\d{4})\.(\d{1,2})\)")

#: corp_code -> {(bsns_year, reprt_code): rcept_no of the latest filing}.
FiledReports = dict[str, dict[tuple[int, str], str]]


def report_of(report_nm: str, acc_mt: int = 12) -> tuple[int, str] | None:
    """(bsns_year, reprt_code) of a periodic report's name, for a fiscal year ending ``acc_mt``.

    ``"[기재정정]분기보고서 (2024.03)"`` with a December close is ``(2024, "11013")``; with a
    March close a report ending June 2023 is business year 2024's first quarter. Names that
    are not a periodic report give None.
    """
    match = _REPORT_NAME.search(report_nm)
    if match is None:
        return None
    kind, year_text, month_text = match.groups()
    year, month = int(year_text), int(month_text)
    if not 1 <= month <= 12:
        return None
    bsns_year = year if month <= acc_mt else year + 1
    code = _KINDS[kind]
    if code != "quarter":
        return bsns_year, code
    # Quarters counted from the fiscal year's first month: 1 -> Q1, 3 -> Q3.
    quarter = (month - acc_mt - 1) % 12 // 3 + 1
    quarterly = {1: "11013", 3: "11014"}.get(quarter)
    return None if quarterly is None else (bsns_year, quarterly)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilingPage:
    """One page of one company's periodic filings between two dates (YYYYMMDD)."""

    company: Company
    bgn_de: str
    end_de: str
    page_no: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FilingSearchSource:
    """A :class:`~asyncrawl.source.Source` of :class:`FilingPage`: ``list.json``.

    ``Ok.payload`` is ``(total_page, [(report_nm, rcept_no), ...])``; 013 (nothing filed) is
    ``NoData``; other statuses mean what they mean for statements.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        check_api_key(self.api_key)
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")

    def key(self, item: FilingPage) -> str:
        """``list/{corp_code}/{bgn_de}-{end_de}/{page_no}``."""
        return f"list/{item.company.corp_code}/{item.bgn_de}-{item.end_de}/{item.page_no}"

    def request(self, item: FilingPage) -> Request:
        """The ``list.json`` request for periodic reports, latest corrections only."""
        return Request(
            url=self.base_url + "list.json",
            params={
                "crtfc_key": self.api_key,
                "corp_code": item.company.corp_code,
                "bgn_de": item.bgn_de,
                "end_de": item.end_de,
                "pblntf_ty": "A",
                "last_reprt_at": "Y",
                "page_no": str(item.page_no),
                "page_count": str(_PAGE_COUNT),
            },
            secret_params=frozenset({"crtfc_key"}),
        )

    def classify(self, item: FilingPage, response: Response) -> Outcome:
        """The page's filings, or what the answer's status means."""
        body = read_answer(response, self.base_url)
        if not isinstance(body, dict):
            return body
        filings = body.get("list")
        total_page = body.get("total_page", 1)
        if not isinstance(filings, list) or not isinstance(total_page, int):
            return Unusable(status="bad_body", reason="list.json without list or total_page")
        pairs = [
            (str(f.get("report_nm", "")), str(f.get("rcept_no", "")))
            for f in filings
            if isinstance(f, dict)
        ]
        if not pairs:
            return NoData(status="000", reason="no filings")
        return Ok(status="000", payload=(total_page, pairs))


async def filed_reports(
    companies: Sequence[Company],
    years: Iterable[int],
    *,
    fetcher: Fetcher,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    config: CrawlConfig | None = None,
    limiter: RateLimiter | None = None,
) -> FiledReports:
    """Every company's filed periodic reports of ``years``, from ``list.json``.

    Only companies whose every page was answered (filings, or 013: nothing filed) are in the
    result: one whose ``list.json`` failed, or that a deadline or stop left unasked, is left
    out, and :func:`plan_filed` plans its reports blind rather than drop them.

    One request per company (more for a company with over 100 filings in the range), through
    the engine: the same rate windows, retries and refusals as a crawl (pass the crawl's
    ``limiter`` so that both count against one window). The range runs from
    the year before the first to the year after the last, which holds every report of those
    business years whatever the fiscal year end.
    """
    wanted = sorted(set(years))
    if not wanted:
        raise ConfigError("--years", "no years given; give at least one, e.g. --years 2024")
    bgn_de, end_de = f"{wanted[0] - 1}0101", f"{wanted[-1] + 1}1231"
    source = FilingSearchSource(api_key=api_key, base_url=base_url)
    names: dict[str, list[tuple[str, str]]] = {c.corp_code: [] for c in companies}
    # Pages asked and not (yet) answered, per company: a company is known when it has none.
    open_pages: dict[str, int] = {c.corp_code: 1 for c in companies}
    pages = [FilingPage(company=c, bgn_de=bgn_de, end_de=end_de) for c in companies]
    # The config's deadline is for the whole search: each round (first pages, then the rest)
    # gets what is left of it, and none starts when nothing is.
    loop = asyncio.get_running_loop()
    deadline = config.deadline_s if config is not None else None
    ends_at = None if deadline is None else loop.time() + deadline
    while pages:
        more: list[FilingPage] = []
        round_config = config
        if config is not None and ends_at is not None:
            left = ends_at - loop.time()
            if left <= 0:
                break
            round_config = dataclasses.replace(config, deadline=left)
        async with run(
            source, pages, fetcher=fetcher, config=round_config, limiter=limiter
        ) as crawl:
            async for result in crawl:
                page: FilingPage = result.item
                corp_code = page.company.corp_code
                if isinstance(result.outcome, NoData):
                    open_pages[corp_code] -= 1
                if not isinstance(result.outcome, Ok):
                    continue
                open_pages[corp_code] -= 1
                total_page, pairs = result.outcome.payload
                names[corp_code].extend(pairs)
                if page.page_no == 1 and total_page > 1:
                    open_pages[corp_code] += total_page - 1
                    more += [
                        FilingPage(company=page.company, bgn_de=bgn_de, end_de=end_de, page_no=n)
                        for n in range(2, total_page + 1)
                    ]
        if crawl.summary.fatal is not None:
            break  # the upstream refused the run (020, 800): no more pages
        pages = more
    unknown = sorted(code for code, left in open_pages.items() if left)
    if unknown:
        _log.warning(
            "list.json: no full answer for %d of %d companies (e.g. %s); their reports are "
            "planned blind",
            len(unknown),
            len(companies),
            ", ".join(unknown[:5]),
        )
    filed: FiledReports = {}
    for corp_code, pairs in names.items():
        if open_pages[corp_code]:
            continue
        acc_mt = _fiscal_year_end(report_nm for report_nm, _ in pairs)
        reports: dict[tuple[int, str], str] = {}
        for report_nm, rcept_no in pairs:
            report = report_of(report_nm, acc_mt)
            if report is not None and report[0] in wanted:
                reports[report] = max(rcept_no, reports.get(report, ""))
        filed[corp_code] = reports
    _log.info(
        "list.json: %d filed reports for %d companies",
        sum(len(r) for r in filed.values()),
        len(filed),
    )
    return filed


def _fiscal_year_end(report_names: Iterable[str]) -> int:
    """The month annual reports end in (the fiscal year end); December without one."""
    months = [
        int(match.group(3))
        for name in report_names
        if (match := _REPORT_NAME.search(name)) is not None and match.group(1) == "사업보고서"
    ]
    return max(set(months), key=months.count) if months else 12


async def _load_ledger(store: BlobStore) -> tuple[int, dict[str, str]]:
    """The newest generation of the rcept_no ledger and its number (-1: none yet)."""
    generations = []
    async for key in store.list(RCEPT_NO_PREFIX):
        match = _GENERATION.fullmatch(key[len(RCEPT_NO_PREFIX) :])
        if match:
            generations.append((int(match.group(1)), key))
    number, key = max(generations) if generations else (-1, RCEPT_NO_KEY)
    data = await store.get(key)
    if data is None:
        return number, {}
    try:
        ledger = orjson.loads(data)
    except orjson.JSONDecodeError:
        return number, {}
    if not isinstance(ledger, dict):
        return number, {}
    return number, {str(k): str(v) for k, v in ledger.items()}


async def plan_filed(
    items: Iterable[StatementItem], filed: FiledReports, store: BlobStore
) -> list[StatementItem]:
    """The items of ``items`` whose report was filed and not already fetched at its filing.

    An item is left out when its company's filings are known and its report is not among
    them, or when the output's ledger records that it was fetched from the same ``rcept_no``
    (a newer one, a correction, plans it again). A company missing from ``filed`` (its
    ``list.json`` went unanswered) keeps every item: asked blind, never dropped.
    """
    _, ledger = await _load_ledger(store)
    planned = []
    for item in items:
        reports = filed.get(item.company.corp_code)
        if reports is None:
            planned.append(item)
            continue
        rcept_no = reports.get((item.bsns_year, item.reprt_code))
        if rcept_no is not None and ledger.get(item.key) != rcept_no:
            planned.append(item)
    return planned


def dump_filed(filed: FiledReports) -> bytes:
    """``filed`` as JSON: ``{corp_code: {"YEAR/REPRT_CODE": rcept_no}}``."""
    return orjson.dumps(
        {
            corp: {f"{year}/{reprt}": rcept for (year, reprt), rcept in reports.items()}
            for corp, reports in filed.items()
        }
    )


def load_filed(data: bytes) -> FiledReports:
    """What :func:`dump_filed` wrote; ``ValueError`` for anything else."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError("expected an object of companies")
    filed: FiledReports = {}
    for corp, reports in raw.items():
        if not isinstance(reports, dict):
            raise ValueError(f"{corp}: expected an object of reports")
        entries: dict[tuple[int, str], str] = {}
        for report, rcept in reports.items():
            year, _, reprt = str(report).partition("/")
            if not year.isdigit() or not reprt or not isinstance(rcept, str):
                raise ValueError(f"{corp}: {report!r} is not YEAR/REPRT_CODE -> rcept_no")
            entries[(int(year), reprt)] = rcept
        filed[str(corp)] = entries
    return filed


async def remember_filed(store: BlobStore, run_id: str, filed: FiledReports) -> FiledReports:
    """Keep ``filed`` as the run's state, merged with what an earlier planning of the same run
    id kept, and return what to record when the run is done.

    Where both know a report, the older ``rcept_no`` is kept: an item the run's journal lists
    as finished may have been fetched at that filing, before a correction. Recording the older
    one makes the next run fetch it again, where recording the newer would skip it forever.
    """
    earlier = await read_run_state(store, run_id, FILED_STATE)
    merged: FiledReports = {corp: dict(reports) for corp, reports in filed.items()}
    if earlier is not None:
        try:
            before = load_filed(earlier)
        except ValueError as error:
            _log.warning("run %s: earlier filing state unreadable (%s); replaced", run_id, error)
            before = {}
        for corp, reports in before.items():
            mine = merged.setdefault(corp, {})
            for report, rcept_no in reports.items():
                mine[report] = min(rcept_no, mine.get(report, rcept_no))
    await write_run_state(store, run_id, FILED_STATE, dump_filed(merged))
    return merged


async def plan_filings(
    items: Sequence[StatementItem],
    *,
    store: BlobStore,
    run_id: str,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    fetcher: Fetcher | None = None,
    config: CrawlConfig | None = None,
    limiter: RateLimiter | None = None,
) -> tuple[list[StatementItem], FiledReports]:
    """The filing plan of ``items``, and what to record once the run is done.

    ``list.json`` for their companies (:func:`filed_reports`, through ``fetcher`` or one made
    for it), then :func:`plan_filed`; the answer is kept as the run's state
    (:func:`remember_filed`), which gives what :func:`record_filings` is to record.
    """
    companies = list({item.company.corp_code: item.company for item in items}.values())
    async with AsyncExitStack() as stack:
        if fetcher is None:
            fetcher = await stack.enter_async_context(AiohttpFetcher())
        filed = await filed_reports(
            companies,
            {item.bsns_year for item in items},
            fetcher=fetcher,
            api_key=api_key,
            base_url=base_url,
            config=config,
            limiter=limiter,
        )
    planned = await plan_filed(items, filed, store)
    to_record = await remember_filed(store, run_id, filed)
    _log.info("filing plan: %d of %d items are filed and new", len(planned), len(items))
    return planned, to_record


async def record_filings(
    store: BlobStore, run_id: str, filed: FiledReports, *, prefer_cfs: bool = False
) -> int:
    """Record the ``rcept_no`` of every item the run finished; returns how many were recorded.

    With ``prefer_cfs`` (the OFS item is follow-up work of a CFS item without data), a CFS
    item without data is recorded only once its OFS item finished too: recorded alone, it
    would keep the OFS item from ever being planned again.

    The ledger is never rewritten in place: each update is a new generation, written only if
    absent (S3 ``If-None-Match``, ``O_EXCL`` on a directory). Two runs finishing at once (two
    shards) cannot lose each other's entries: the one that loses the race reads the winner's
    generation and merges into the next.
    """
    done = await RunJournal(store, run_id).load()
    fetched: dict[str, str] = {}
    for key, status in done.items():
        corp_code, year, reprt_code, fs_div = key.split("/")
        ofs_key = f"{corp_code}/{year}/{reprt_code}/OFS"
        if prefer_cfs and fs_div == "CFS" and status == "no_data" and ofs_key not in done:
            continue
        rcept_no = filed.get(corp_code, {}).get((int(year), reprt_code))
        if rcept_no is not None:
            fetched[key] = rcept_no
    for _ in range(_LEDGER_RACES):
        number, ledger = await _load_ledger(store)
        for key, rcept_no in fetched.items():
            ledger[key] = max(rcept_no, ledger.get(key, ""))  # a later filing sorts later
        name = f"{RCEPT_NO_PREFIX}{number + 1:08d}.json"
        if await store.put_if_absent(name, orjson.dumps(ledger), content_type="application/json"):
            return len(fetched)
    raise SinkError(
        f"run {run_id}: the rcept_no ledger changed {_LEDGER_RACES} times while recording; "
        "the next run may fetch some reports again"
    )


async def follow_up_items(
    store: BlobStore, run_id: str, items: Sequence[StatementItem]
) -> list[StatementItem]:
    """OFS items for the CFS items of ``items`` the run finished with no data."""
    done: Mapping[str, str] = await RunJournal(store, run_id).load()
    return [
        StatementItem(
            company=item.company,
            bsns_year=item.bsns_year,
            reprt_code=item.reprt_code,
            fs_div="OFS",
        )
        for item in items
        if item.fs_div == "CFS" and done.get(item.key) == "no_data"
    ]


class _JobResult(Protocol):
    """What a job run answers (``asyncrawl.jobs``' JobResult has these)."""

    @property
    def summary(self) -> RunSummary: ...

    @property
    def fatal(self) -> object: ...

    @property
    def sink_error(self) -> object: ...


R = TypeVar("R", bound=_JobResult)


async def run_planned(
    items: Sequence[StatementItem],
    *,
    plan: str,
    basis: str,
    store: BlobStore,
    run_id: str,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    config: CrawlConfig | None = None,
    limiter: RateLimiter | None = None,
    run_job: Callable[[list[StatementItem]], Awaitable[R]],
) -> R:
    """Run ``items`` (a blind plan) through ``run_job`` in the ``plan`` and ``basis`` modes.

    ``filings``: only the filed reports not fetched yet at their filing (:func:`plan_filed`),
    their ``rcept_no`` recorded afterwards. ``prefer-cfs``: the CFS items, then (unless the run
    stopped or has remaining work, which a resume finishes) the OFS items of those that had no
    data, in a second call of ``run_job`` with the same run id (its journal skips the first's).
    ``limiter`` is the one ``run_job`` crawls through: the ``list.json`` requests go through it
    too, so planning and every pass share one set of rate windows.
    """
    if plan not in PLANS:
        raise ConfigError("plan", f"{plan!r} is not a plan mode; use {' or '.join(PLANS)}")
    if basis not in BASES:
        raise ConfigError("basis", f"{basis!r} is not a basis; use {' or '.join(BASES)}")
    planned = list(items)
    if basis == "prefer-cfs":
        if not any(item.fs_div == "CFS" for item in planned):
            raise ConfigError("basis", "prefer-cfs needs CFS among the statement divisions")
        planned = [item for item in planned if item.fs_div == "CFS"]
    to_record: FiledReports | None = None
    if plan == "filings":
        planned, to_record = await plan_filings(
            planned,
            store=store,
            run_id=run_id,
            api_key=api_key,
            base_url=base_url,
            config=config,
            limiter=limiter,
        )
    result = await run_job(planned)
    finished = result.fatal is None and result.sink_error is None and not result.summary.remaining
    if basis == "prefer-cfs" and finished:
        follow = await follow_up_items(store, run_id, planned)
        if follow:
            _log.info("prefer-cfs: %d items had no CFS data; asking for OFS", len(follow))
            result = await run_job(planned + follow)
    done = result.fatal is None and result.sink_error is None and not result.summary.remaining
    if to_record is not None and done:
        # Only a run that is done: a stopped one (020, 800, Ctrl-C) would record CFS items
        # whose OFS follow-ups were never asked, and the resume would plan neither.
        await record_filings(store, run_id, to_record, prefer_cfs=basis == "prefer-cfs")
    return result
