"""What an OpenDART crawl is made of: companies, statement items, and the plan that lists them.

One :class:`StatementItem` is one request to ``fnlttSinglAcntAll.json``: one company's full
financial statements for one business year, one report and one statement division. Its
:attr:`~StatementItem.key` names it everywhere (summaries, journals, continuations), so the
annual report ``11011`` is the same item whether an annual or a quarter crawl planned it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ...errors import ConfigError

__all__ = [
    "FIRST_YEAR",
    "FS_DIVS",
    "REPORT_CODES",
    "Company",
    "StatementItem",
    "item_from_key",
    "plan_items",
]

#: The report codes each kind of crawl fetches, in the order a year's reports are published:
#: Q1 (11013), half year (11012), Q3 (11014), annual report (11011).
REPORT_CODES: Mapping[str, tuple[str, ...]] = {
    "quarter": ("11013", "11012", "11014", "11011"),
    "annual": ("11011",),
}
#: Statement divisions: consolidated (CFS) and separate (OFS) statements.
FS_DIVS: tuple[str, ...] = ("CFS", "OFS")
#: The first business year ``fnlttSinglAcntAll`` serves.
FIRST_YEAR = 2015

_CORP_CODE = re.compile(r"[0-9]{8}")
_STOCK_CODE = re.compile(r"[0-9A-Z]{6}")
_ALL_REPORT_CODES = frozenset(code for codes in REPORT_CODES.values() for code in codes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Company:
    """A company as OpenDART knows it.

    ``corp_code`` is DART's 8-digit company code; ``stock_code`` the 6-character KRX short code
    (digits and upper-case letters, e.g. ``005930`` or ``0126Z0``), ``None`` when unlisted or
    unknown; ``corp_name`` the name, ``None`` when unknown. Loose spellings (codes that lost
    their leading zeros, say) are normalised by the company-list readers, not here.
    """

    corp_code: str
    stock_code: str | None = None
    corp_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.corp_code, str) or not _CORP_CODE.fullmatch(self.corp_code):
            raise ConfigError(
                "corp_code", f"{self.corp_code!r} is not DART's 8-digit company code, e.g. 00126380"
            )
        if self.stock_code is not None and (
            not isinstance(self.stock_code, str) or not _STOCK_CODE.fullmatch(self.stock_code)
        ):
            raise ConfigError(
                "stock_code",
                f"{self.stock_code!r} is not a 6-character KRX code of 0-9 and A-Z, e.g. 005930",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementItem:
    """One company's full financial statements for one year, report and division."""

    company: Company
    bsns_year: int
    reprt_code: str
    fs_div: str

    @property
    def key(self) -> str:
        """``{corp_code}/{bsns_year}/{reprt_code}/{fs_div}``: stable across processes."""
        return f"{self.company.corp_code}/{self.bsns_year}/{self.reprt_code}/{self.fs_div}"


def _max_year() -> int:
    # Next year's first-quarter report can be asked for late in the year; nothing later.
    return datetime.now(UTC).year + 1


def _check_years(years: Iterable[int | str]) -> tuple[int, ...]:
    checked: dict[int, None] = {}
    last = _max_year()
    for raw in years:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ConfigError("--years", f"{raw!r} is not a year; give years such as 2023 2024")
        text = str(raw).strip()
        if not text.isascii() or not text.isdigit():
            raise ConfigError("--years", f"{raw!r} is not a year; give years such as 2023 2024")
        year = int(text)
        if not FIRST_YEAR <= year <= last:
            raise ConfigError(
                "--years",
                f"{year} is outside {FIRST_YEAR}..{last}; OpenDART serves full statements "
                f"from {FIRST_YEAR} on",
            )
        checked[year] = None
    if not checked:
        raise ConfigError("--years", "no years given; give at least one, e.g. --years 2024")
    return tuple(checked)


def _check_kind(kind: str) -> tuple[str, ...]:
    codes = REPORT_CODES.get(kind.strip().lower()) if isinstance(kind, str) else None
    if codes is None:
        raise ConfigError("--kind", f"{kind!r} is not a crawl kind; use 'quarter' or 'annual'")
    return codes


def _check_fs_divs(fs_divs: Iterable[str]) -> tuple[str, ...]:
    checked: dict[str, None] = {}
    for raw in fs_divs:
        value = raw.strip().upper() if isinstance(raw, str) else raw
        if value not in FS_DIVS:
            raise ConfigError(
                "--fs-div", f"{raw!r} is not a statement division; use CFS and/or OFS"
            )
        checked[value] = None
    if not checked:
        raise ConfigError("--fs-div", "no statement division given; use CFS and/or OFS")
    return tuple(checked)


def plan_items(
    companies: Iterable[Company],
    years: Iterable[int | str],
    kind: str,
    fs_divs: Iterable[str] = FS_DIVS,
) -> Iterator[StatementItem]:
    """Every item of a crawl: each company x year x report of ``kind`` x statement division.

    ``kind``, ``years`` and ``fs_divs`` are checked at once (a :class:`ConfigError` naming
    ``--kind``, ``--years`` or ``--fs-div``); the items are then produced lazily, company by
    company, so a plan over a long company list costs no memory up front. Repeated companies
    (same ``corp_code``), years and divisions are planned once.
    """
    codes = _check_kind(kind)
    checked_years = _check_years(years)
    divs = _check_fs_divs(fs_divs)
    return _plan(companies, checked_years, codes, divs)


def _plan(
    companies: Iterable[Company],
    years: tuple[int, ...],
    codes: tuple[str, ...],
    divs: tuple[str, ...],
) -> Iterator[StatementItem]:
    seen: set[str] = set()
    for company in companies:
        if company.corp_code in seen:
            continue
        seen.add(company.corp_code)
        for year in years:
            for code in codes:
                for div in divs:
                    yield StatementItem(
                        company=company, bsns_year=year, reprt_code=code, fs_div=div
                    )


def item_from_key(
    key: str, companies_by_code: Mapping[str, Company] | None = None
) -> StatementItem:
    """The item a :attr:`StatementItem.key` names (for resuming runs and continuations).

    The company is looked up in ``companies_by_code`` (``corp_code`` -> :class:`Company`) so
    its stock code and name come back; a company missing there is rebuilt from its code alone.
    A malformed key raises :class:`ConfigError` (a ``ValueError``).
    """
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 4:
        raise ConfigError(
            "item key", f"{key!r} is not of the form corp_code/bsns_year/reprt_code/fs_div"
        )
    corp_code, year_text, reprt_code, fs_div = parts
    if not _CORP_CODE.fullmatch(corp_code):
        raise ConfigError("item key", f"{key!r}: {corp_code!r} is not an 8-digit corp_code")
    if not (len(year_text) == 4 and year_text.isascii() and year_text.isdigit()):
        raise ConfigError("item key", f"{key!r}: {year_text!r} is not a 4-digit year")
    if reprt_code not in _ALL_REPORT_CODES:
        raise ConfigError("item key", f"{key!r}: {reprt_code!r} is not a known reprt_code")
    if fs_div not in FS_DIVS:
        raise ConfigError("item key", f"{key!r}: {fs_div!r} is not CFS or OFS")
    company = (companies_by_code or {}).get(corp_code) or Company(corp_code=corp_code)
    return StatementItem(
        company=company, bsns_year=int(year_text), reprt_code=reprt_code, fs_div=fs_div
    )
