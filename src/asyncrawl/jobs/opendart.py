"""The OpenDART statements job: registered with the run layer as ``opendart``.

Everything OpenDART-specific about a run lives here, nowhere in ``asyncrawl.aws`` or
``asyncrawl.runs``: its settings (``CRAWLER_TYPE``, ``DART_BASE_URL``, ``COMPANIES_URI``,
``CRAWL_YEARS``, ``FS_DIV``, the key), its event fields (``companies``, ``years``,
``crawler_type``; a Step Functions batch's ``Items`` are company rows), its plan and how a
continuation rebuilds it (the token's params hold the crawler type, years, divisions and the
companies still to crawl), where an item's rows go, and the answer's old fields
(``total_companies``, the Korean and English message).

``PLAN_MODE=filings`` asks OpenDART's filing search (``list.json``) before the first part
crawls and plans only the reports that were filed and not fetched yet at their filing
(:meth:`OpenDartJob.refine`); once the last part is done, the fetched reports' ``rcept_no``
are recorded for the next run (:meth:`OpenDartJob.finish`), as the command line's
``--plan filings`` does.

Planning hooks (:data:`COMPANY_LIST_HOOKS`, :func:`default_years`): with no company list in
the event and no ``COMPANIES_URI``, a payload-less plan asks each hook in turn for the
companies (the deployment adds one reading the Athena table); with no years anywhere it uses
:func:`default_years`.

:func:`run_statements_job` is the command line's entry: the same run layer, one call.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from ..engine import CrawlConfig
from ..errors import ConfigError, ContinuationError, InputError, SinkError, UpstreamFatalError
from ..http import Fetcher
from ..limiter import RateLimiter
from ..results import ItemResult
from ..runs.job import Plan, register_job
from ..runs.run import run_resumable
from ..sinks.base import BlobStore
from ..sinks.journal import read_run_state
from ..sources.opendart import (
    Company,
    OpenDartSource,
    StatementItem,
    item_from_key,
    load_companies,
    plan_items,
)
from ..sources.opendart.athena import athena_company_hook
from ..sources.opendart.companies import CompanyListError, parse_companies
from ..sources.opendart.items import FIRST_YEAR, FS_DIVS, REPORT_CODES
from ..sources.opendart.layout import data_key
from ..sources.opendart.plans import (
    BASES,
    FILED_STATE,
    PLANS,
    load_filed,
    plan_filings,
    record_filings,
)
from ..sources.opendart.source import DEFAULT_BASE_URL
from ..summary import RunSummary

__all__ = [
    "COMPANY_LIST_HOOKS",
    "JOB",
    "JobResult",
    "OpenDartJob",
    "OpenDartSettings",
    "default_years",
    "run_statements_job",
]

#: The crawler types (``CRAWLER_TYPE``).
CRAWLER_TYPES = tuple(REPORT_CODES)
KST = timezone(timedelta(hours=9), "KST")

#: ``await hook(environ, store)``: a company list, or None when this source is not set up.
CompanyHook = Callable[[Mapping[str, str], BlobStore], Awaitable[list[Company] | None]]
#: Company-list sources a payload-less plan tries after ``COMPANIES_URI``: the Athena table
#: or query of ``ATHENA_TABLE``/``ATHENA_QUERY`` (asyncrawl.sources.opendart.athena), when set.
COMPANY_LIST_HOOKS: list[CompanyHook] = [athena_company_hook]


def default_years(crawler_type: str, now: datetime | None = None) -> tuple[int, ...]:
    """Years a payload-less plan crawls without ``CRAWL_YEARS``, by the KST calendar.

    ``quarter``: the previous and the current business year (this year's quarterly reports
    appear as the year goes on); ``annual``: the previous year (an annual report is filed in
    the following spring).
    """
    year = (now or datetime.now(UTC)).astimezone(KST).year
    return (year - 1, year) if crawler_type == "quarter" else (year - 1,)


def _event_error(field: str, problem: str) -> ConfigError:
    from ..aws.event import EventError  # the event's own error class: a 400

    return EventError(field, problem)


def _year(value: object, field: str, event: bool) -> int:
    error = _event_error if event else ConfigError
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error(field, f"{value!r} is not a year; use a number such as 2024")
    text = str(value).strip() if isinstance(value, str) else None
    if text is not None and (not text.isascii() or not text.isdigit() or len(text) > 4):
        raise error(field, f"{value!r} is not a year; use a number such as 2024")
    year = int(text) if text is not None else value
    assert isinstance(year, int)
    last = datetime.now(UTC).year + 1
    if not FIRST_YEAR <= year <= last:
        shown = year if abs(year) < 10**6 else "that number"
        raise error(
            field,
            f"{shown} is outside {FIRST_YEAR}..{last}; OpenDART serves full statements "
            f"from {FIRST_YEAR} on",
        )
    return year


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDartSettings:
    """The job's settings from the function's environment (each names its variable)."""

    crawler_type: str
    base_url: str | None = None
    companies_uri: str | None = None
    years: tuple[int, ...] = ()
    fs_divs: tuple[str, ...] = FS_DIVS
    #: ``both`` (every division in ``fs_divs``) or ``prefer-cfs`` (CFS; OFS only as follow-up
    #: work of a CFS item that had no data).
    basis: str = "both"
    #: ``blind`` (every report) or ``filings`` (only the filed ones, from ``list.json``).
    plan_mode: str = "blind"
    #: The environment, for the key (read on first use) and the company-list hooks.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _env_list(environ: Mapping[str, str], name: str) -> list[str]:
    text = _env(environ, name)
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _companies_from_rows(value: object, field: str) -> tuple[Company, ...]:
    if not isinstance(value, list):
        raise _event_error(field, "must be a list of objects with corp_code")
    if not value:
        raise _event_error(field, "is empty; list at least one company, or leave it out")
    lines = []
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise _event_error(f"{field}[{index}]", "must be an object with corp_code")
        lines.append(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS))
    # JSON Lines puts rows[i] on line i + 1, so a row problem maps back to its index.
    try:
        return tuple(parse_companies(b"\n".join(lines), name="event.companies.jsonl"))
    except CompanyListError as error:
        first, *others = error.problems
        also = ", ".join(f"{field}[{p.line - 1}].{p.field}" for p in others[:5])
        more = f" (also wrong: {also}{', ...' if len(others) > 5 else ''})" if others else ""
        raise _event_error(
            f"{field}[{first.line - 1}].{first.field}", first.problem + more
        ) from None
    except InputError as error:
        raise _event_error(f"{field}[{error.line - 1}].{error.field}", error.problem) from None


def _crawler_type(value: object) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in CRAWLER_TYPES:
        raise _event_error(
            "crawler_type", f"{value!r} is not a crawler type; use annual or quarter"
        )
    return text


class OpenDartJob:
    """OpenDART's full financial statements, per company x year x report x division."""

    name: str = "opendart"
    event_keys: tuple[str, ...] = ("companies", "years", "crawler_type", "Items")

    def configure(self, environ: Mapping[str, str]) -> OpenDartSettings:
        """The job's settings; ConfigError naming the variable and the fix."""
        crawler_type = (_env(environ, "CRAWLER_TYPE") or "").lower()
        if crawler_type not in CRAWLER_TYPES:
            shown = _env(environ, "CRAWLER_TYPE")
            raise ConfigError(
                "CRAWLER_TYPE",
                "is not set; set it to annual or quarter"
                if shown is None
                else f"{shown!r} is not a crawler type; use annual or quarter",
            )
        if _env(environ, "DART_API_KEY_PARAM") is None and _env(environ, "DART_API_KEY") is None:
            raise ConfigError(
                "DART_API_KEY_PARAM",
                "neither DART_API_KEY_PARAM nor DART_API_KEY is set; set DART_API_KEY_PARAM to "
                "the SSM SecureString parameter name or Secrets Manager ARN holding the key "
                "(or DART_API_KEY to the key itself, for local runs only)",
            )
        base_url = _env(environ, "DART_BASE_URL")
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError("DART_BASE_URL", f"{base_url!r} is not an http(s) URL")
        companies_uri = _env(environ, "COMPANIES_URI")
        if companies_uri is not None:
            bucket, _, key = companies_uri.removeprefix("s3://").partition("/")
            if not companies_uri.startswith("s3://") or not bucket or not key:
                raise ConfigError(
                    "COMPANIES_URI",
                    f"{companies_uri!r} is not an S3 object; use s3://bucket/companies.csv",
                )
        years = tuple(
            dict.fromkeys(_year(y, "CRAWL_YEARS", False) for y in _env_list(environ, "CRAWL_YEARS"))
        )
        fs_divs = tuple(dict.fromkeys(fs.upper() for fs in _env_list(environ, "FS_DIV"))) or FS_DIVS
        if any(fs not in FS_DIVS for fs in fs_divs):
            raise ConfigError("FS_DIV", f"{','.join(fs_divs)!r}: use CFS, OFS or CFS,OFS")
        basis = (_env(environ, "STATEMENT_BASIS") or "both").lower()
        if basis not in BASES:
            raise ConfigError(
                "STATEMENT_BASIS",
                f"{basis!r} is not a statement basis; use {' or '.join(BASES)}",
            )
        if basis == "prefer-cfs" and "CFS" not in fs_divs:
            raise ConfigError("STATEMENT_BASIS", "prefer-cfs needs CFS in FS_DIV (or FS_DIV unset)")
        plan_mode = (_env(environ, "PLAN_MODE") or "blind").lower()
        if plan_mode not in PLANS:
            raise ConfigError(
                "PLAN_MODE", f"{plan_mode!r} is not a plan mode; use {' or '.join(PLANS)}"
            )
        return OpenDartSettings(
            crawler_type=crawler_type,
            basis=basis,
            plan_mode=plan_mode,
            base_url=base_url,
            companies_uri=companies_uri,
            years=years,
            fs_divs=fs_divs,
            environ=dict(environ),
        )

    def label(self, config: OpenDartSettings) -> str:
        """The crawler type: the answer's ``crawler_type`` and the metrics' dimension."""
        return config.crawler_type

    async def plan(
        self, event: Mapping[str, Any], config: OpenDartSettings, store: BlobStore
    ) -> Plan[StatementItem]:
        """A fresh plan from the event's fields, completed from the settings and the hooks."""
        crawler_type = (
            _crawler_type(event["crawler_type"]) if "crawler_type" in event else config.crawler_type
        )
        years: tuple[int, ...] = ()
        if "years" in event:
            value = event["years"]
            if not isinstance(value, list) or not value:
                raise _event_error(
                    "years", f"must be a non-empty list of years such as [2024], not {value!r}"
                )
            years = tuple(dict.fromkeys(_year(y, f"years[{i}]", True) for i, y in enumerate(value)))
        years = years or config.years or default_years(crawler_type)
        companies: Sequence[Company] | None = None
        for name in ("companies", "Items"):
            if name in event:
                companies = _companies_from_rows(event[name], name)
                break
        if companies is None and config.companies_uri is not None:
            companies = await load_companies(config.companies_uri, field="COMPANIES_URI")
        if companies is None:
            for hook in COMPANY_LIST_HOOKS:
                companies = await hook(config.environ, store)
                if companies is not None:
                    break
        if companies is None:
            raise _event_error(
                "companies",
                "no company list: pass companies in the event, set COMPANIES_URI, or pass "
                "the continuation an earlier answer returned",
            )
        # prefer-cfs plans the CFS items only; the source discovers an OFS item for each CFS
        # item without data (follow-up work, carried over in continuations like any item).
        fs_divs = ("CFS",) if config.basis == "prefer-cfs" else config.fs_divs
        items = list(plan_items(companies, years, crawler_type, fs_divs))
        by_code = {c.corp_code: c for c in companies}
        return Plan(
            items=items,
            params=_params(crawler_type, years, fs_divs, by_code.values()),
            label=crawler_type,
            facts={"total_companies": len(by_code)},
        )

    async def refine(
        self,
        plan: Plan[StatementItem],
        config: OpenDartSettings,
        store: BlobStore,
        *,
        run_id: str,
        fetcher: Fetcher | None,
        limiter: RateLimiter,
        crawl_config: CrawlConfig | None = None,
        **_: Any,
    ) -> Plan[StatementItem]:
        """With ``PLAN_MODE=filings``: only the reports ``list.json`` says were filed and this
        output has not fetched at that filing (companies it could not ask stay blind). The
        answer is kept as run state for :meth:`finish`. Other plan modes: ``plan`` as is."""
        if config.plan_mode != "filings":
            return plan
        # The answer is kept for finish(), merged with an earlier planning of the same run id
        # (a retried DAG run): the older filing wins, so a correction is fetched by the next run.
        items, _ = await plan_filings(
            plan.items,
            store=store,
            run_id=run_id,
            api_key=self.open_source(config).api_key,  # loaded once per cold start
            base_url=config.base_url or DEFAULT_BASE_URL,
            fetcher=fetcher,  # None: one is made for the search
            config=crawl_config,
            limiter=limiter,
        )
        return Plan(items=items, params=plan.params, label=plan.label, facts=plan.facts)

    async def finish(
        self, plan: Plan[StatementItem], config: OpenDartSettings, store: BlobStore, *, run_id: str
    ) -> None:
        """With ``PLAN_MODE=filings``, once the run is done: record each fetched report's
        ``rcept_no``, so that a later run fetches it again only after a correction."""
        del plan  # the filings come from the run state: the last part's plan is a resume's
        if config.plan_mode != "filings":
            return
        data = await read_run_state(store, run_id, FILED_STATE)
        if data is None:
            return  # the run was planned before PLAN_MODE=filings was set
        try:
            filed = load_filed(data)
        except ValueError as error:
            raise SinkError(
                f"run state {FILED_STATE} of run {run_id} is damaged: {error}"
            ) from None
        await record_filings(store, run_id, filed, prefer_cfs=config.basis == "prefer-cfs")

    def resume(
        self, params: Mapping[str, Any], keys: Sequence[str], config: OpenDartSettings
    ) -> Plan[StatementItem]:
        """The plan a continuation's params and remaining keys describe."""
        try:
            crawler_type = _crawler_type(params.get("type"))
            fs_divs = params.get("fs")
            years = params.get("years")
            rows = params.get("co")
            if (
                not isinstance(rows, dict)
                or not isinstance(years, list)
                or not isinstance(fs_divs, list)
            ):
                raise ConfigError("params", "malformed")
            companies = {
                code: Company(corp_code=code, stock_code=info[0] or None, corp_name=info[1] or None)
                for code, info in rows.items()
                if isinstance(info, list)
                and len(info) == 2
                and all(isinstance(v, str) for v in info)
            }
            items = [item_from_key(key, companies) for key in keys]
        except ConfigError as error:  # signed by us, yet not ours to read: say so, 400
            raise ContinuationError(
                f"continuation: its OpenDART plan is malformed ({error})"
            ) from None
        if any(i.reprt_code not in REPORT_CODES[crawler_type] for i in items):
            raise ContinuationError("continuation: its items do not match its crawler type")
        return Plan(
            items=items,
            params=dict(params),
            label=crawler_type,
            facts={"total_companies": len({i.company.corp_code for i in items})},
        )

    def check_continuing(self, fields: Mapping[str, Any], plan: Plan[StatementItem]) -> None:
        """Event fields sent beside a continuation may repeat its plan, never change it."""
        for name in ("companies", "Items"):
            if name in fields:
                raise _event_error(
                    name, "leave it out when continuing: the continuation has the rest"
                )
        if "crawler_type" in fields and _crawler_type(fields["crawler_type"]) != plan.label:
            raise _event_error(
                "crawler_type",
                f"{fields['crawler_type']} contradicts the continuation's {plan.label}; "
                "leave crawler_type out when continuing",
            )
        if "years" in fields:
            value = fields["years"]
            years = value if isinstance(value, list) else [value]
            given = {_year(y, f"years[{i}]", True) for i, y in enumerate(years)}
            if given != set(plan.params.get("years", ())):
                raise _event_error(
                    "years",
                    f"{sorted(given)} contradicts the continuation's "
                    f"{list(plan.params.get('years', ()))}; leave years out when continuing",
                )

    def token_params(
        self, plan: Plan[StatementItem], remaining_keys: Sequence[str]
    ) -> Mapping[str, Any]:
        """The plan's params with only the companies the remaining keys still need."""
        left = {key.partition("/")[0] for key in remaining_keys}
        params = dict(plan.params)
        rows = params.get("co", {})
        params["co"] = {code: info for code, info in rows.items() if code in left}
        return params

    def open_source(self, config: OpenDartSettings) -> OpenDartSource:
        """The source, with the key read once per cold start (never logged)."""
        from ..aws.secrets import load_api_key

        api_key = load_api_key(config.environ or os.environ)
        return OpenDartSource(
            api_key=api_key,
            base_url=config.base_url or DEFAULT_BASE_URL,
            ofs_fallback=config.basis == "prefer-cfs",
        )

    def data_key(self, result: ItemResult[Any]) -> str:
        """``data/year=/report=/fs=/{corp_code}.jsonl.gz``."""
        item: StatementItem = result.item
        return data_key(item)

    def describe(self, plan: Plan[StatementItem], summary: Mapping[str, Any]) -> Mapping[str, Any]:
        """The old answer's ``total_companies`` and its Korean and English message."""
        from ..runs.merge import failed_count, remaining_count

        kind_ko = "분기" if plan.label == "quarter" else "연간"
        failed, remaining = failed_count(summary), remaining_count(summary)
        state_ko, state_en = (
            ("완료", "finished") if not remaining else ("미완료 (이어서 진행 필요)", "not finished")
        )
        counts = (
            summary.get("planned", 0),
            summary.get("ok", 0) + summary.get("already_done", 0),
            summary.get("no_data", 0),
            failed,
            remaining,
        )
        total = plan.facts.get("total_companies", 0)
        message = (
            f"{kind_ko} 재무제표 크롤링 {state_ko}: {total}개 기업, {counts[0]}건 중 "
            f"성공 {counts[1]}, 데이터 없음 {counts[2]}, 실패 {counts[3]}, 남음 {counts[4]} / "
            f"{plan.label} statements crawl {state_en}: {total} companies, {counts[0]} items: "
            f"ok {counts[1]}, no data {counts[2]}, failed {counts[3]}, remaining {counts[4]}"
        )
        return {"total_companies": total, "message": message}


def _params(
    crawler_type: str, years: Iterable[int], fs_divs: Iterable[str], companies: Iterable[Company]
) -> dict[str, Any]:
    return {
        "type": crawler_type,
        "years": list(years),
        "fs": list(fs_divs),
        "co": {c.corp_code: [c.stock_code or "", c.corp_name or ""] for c in companies},
    }


#: The registered job.
JOB = OpenDartJob()
register_job(JOB, replace=True)


# --- the command line's entry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """How a command-line run ended: its summary, where it is stored, and a fatal error."""

    summary: RunSummary
    summary_key: str
    #: The run's summary document as stored (with the ``already_done`` bucket).
    document: dict[str, Any] = field(default_factory=dict)
    fatal: UpstreamFatalError | None = None
    sink_error: SinkError | None = None
    #: Items already finished by an earlier part of this run (resumed from its journal).
    resumed: int = 0


async def run_statements_job(
    items: Iterable[StatementItem],
    *,
    source: OpenDartSource,
    store: BlobStore,
    run_id: str,
    config: CrawlConfig,
    total: int | None = None,
    limiter: RateLimiter | None = None,
    fetcher: Fetcher | None = None,
    on_result: Callable[[ItemResult[Any]], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
) -> JobResult:
    """Crawl ``items`` into ``store`` under ``run_id`` through the run layer.

    ``summary`` counts the items the journal already listed as finished in ``ok`` /
    ``no_data`` (as the command line always reported them); ``document`` is the stored
    summary, where they are the ``already_done`` bucket.
    """
    del total  # the run layer counts the plan itself
    result = await run_resumable(
        source,
        items,
        store=store,
        run_id=run_id,
        config=config,
        data_key=JOB.data_key,
        limiter=limiter,
        fetcher=fetcher,
        on_result=on_result,
        on_start=on_start,
    )
    summary = result.summary
    if result.already_done:
        from dataclasses import replace

        summary = replace(
            summary,
            planned=summary.planned + result.already_done,
            ok=summary.ok + result.already_ok,
            no_data=summary.no_data + result.already_done - result.already_ok,
        )
    return JobResult(
        summary=summary,
        summary_key=result.summary_key,
        document=result.document,
        fatal=result.fatal,
        sink_error=result.sink_error,
        resumed=result.already_done,
    )
