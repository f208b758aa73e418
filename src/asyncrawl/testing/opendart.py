"""An OpenDART stand-in on loopback: the real API's answer shapes, status codes and limits.

:class:`OpenDartStandIn` serves ``/api/fnlttSinglAcntAll.json``, ``/api/company.json`` and
``/api/corpCode.xml`` the way ``https://opendart.fss.or.kr/api/`` does (see
``docs/OPENDART.md``): every JSON answer is HTTP 200 and only its ``status`` says whether it
holds rows (000), no data (013), a bad key (010), a bad field (100), a spent limit (020) or
maintenance (800). On top of that it meets the faults of a :class:`FaultPlan` like any
:class:`FaultServer`, with the rate window answered as OpenDART does (status 020).

The data is synthetic but stable: rows, amounts and which items have no data depend on the
item alone (``corp_code/bsns_year/reprt_code/fs_div``), never on the fault seed or on the
attempt, so a crawl under faults must store exactly what a crawl without faults stores.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import random
import re
import zipfile
from collections.abc import Iterable, Mapping
from typing import Final
from xml.sax.saxutils import escape

from aiohttp import web

from ..errors import ConfigError
from .faults import FaultPlan, FaultServer, ItemContext, default_item_key

__all__ = [
    "DEFAULT_BLOCK_SECONDS",
    "DELISTED_COMPANIES",
    "DEMO_COMPANIES",
    "REPORT_CODES",
    "OpenDartStandIn",
    "period_end",
    "realistic_plan",
]

#: The ten listed companies the demo crawls (KRX short codes can hold letters: ``0126Z0``).
DEMO_COMPANIES: Final[tuple[dict[str, str], ...]] = (
    {"corp_code": "00126380", "stock_code": "005930", "corp_name": "삼성전자"},
    {"corp_code": "00164779", "stock_code": "000660", "corp_name": "SK하이닉스"},
    {"corp_code": "00164742", "stock_code": "005380", "corp_name": "현대자동차"},
    {"corp_code": "00106641", "stock_code": "000270", "corp_name": "기아"},
    {"corp_code": "00401731", "stock_code": "066570", "corp_name": "LG전자"},
    {"corp_code": "00356361", "stock_code": "051910", "corp_name": "LG화학"},
    {"corp_code": "00155319", "stock_code": "005490", "corp_name": "POSCO홀딩스"},
    {"corp_code": "00266961", "stock_code": "035420", "corp_name": "NAVER"},
    {"corp_code": "00258801", "stock_code": "035720", "corp_name": "카카오"},
    {"corp_code": "01820947", "stock_code": "0126Z0", "corp_name": "한빛바이오로직스"},
)

# corpCode.xml also lists companies that are not listed on an exchange: blank stock code.
_UNLISTED_COMPANIES: Final[tuple[dict[str, str], ...]] = (
    {"corp_code": "00434003", "stock_code": "", "corp_name": "다코"},
    {"corp_code": "00430964", "stock_code": "", "corp_name": "굿앤엘에스"},
)

#: Delisted companies: ``corpCode.xml`` keeps their stock code, ``company.json`` says
#: ``corp_cls`` E (synthetic entries; the codes are not real companies').
DELISTED_COMPANIES: Final[tuple[dict[str, str], ...]] = (
    {"corp_code": "00990001", "stock_code": "900110", "corp_name": "상장폐지예시", "corp_cls": "E"},
    {"corp_code": "00990002", "stock_code": "037010", "corp_name": "폐지된회사", "corp_cls": "E"},
)

#: What ``company.json`` says beyond ``corpCode.xml`` for the demo companies: market
#: (``corp_cls`` Y KOSPI, K KOSDAQ, N KONEX, E other), English name, fiscal year-end month.
_PROFILES: Final[Mapping[str, Mapping[str, str]]] = {
    "00126380": {"corp_cls": "Y", "corp_eng_name": "SAMSUNG ELECTRONICS CO,.LTD"},
    "00164779": {"corp_cls": "Y", "corp_eng_name": "SK hynix Inc."},
    "00164742": {"corp_cls": "Y", "corp_eng_name": "HYUNDAI MOTOR CO"},
    "00106641": {"corp_cls": "Y", "corp_eng_name": "Kia Corporation"},
    "00401731": {"corp_cls": "Y", "corp_eng_name": "LG ELECTRONICS INC."},
    "00356361": {"corp_cls": "Y", "corp_eng_name": "LG CHEM, LTD."},
    "00155319": {"corp_cls": "Y", "corp_eng_name": "POSCO HOLDINGS INC."},
    "00266961": {"corp_cls": "Y", "corp_eng_name": "NAVER Corporation"},
    "00258801": {"corp_cls": "Y", "corp_eng_name": "Kakao Corp."},
    "01820947": {"corp_cls": "K", "corp_eng_name": "Hanbit Biologics", "acc_mt": "03"},
}

#: ``reprt_code`` -> the quarter the report closes (4 for the annual report).
REPORT_CODES: Final[Mapping[str, int]] = {"11013": 1, "11012": 2, "11014": 3, "11011": 4}
_ANNUAL: Final = "11011"
_FS_DIVS: Final = frozenset({"CFS", "OFS"})
_FIRST_YEAR: Final = 2015

_MESSAGES: Final[Mapping[str, str]] = {
    "000": "정상",
    "010": "등록되지 않은 키입니다.",
    "013": "조회된 데이타가 없습니다.",
    "020": "요청 제한을 초과하였습니다.",
    "100": "필드의 부적절한 값입니다. 필드 설명에 없는 값을 사용한 경우에 발생하는 메시지입니다.",
    "800": "시스템 점검으로 인한 서비스가 중지 중입니다.",
}

_KEY_PATTERN: Final = re.compile(r"[0-9A-Za-z]{40}")
_CORP_CODE_PATTERN: Final = re.compile(r"\d{8}")
_YEAR_PATTERN: Final = re.compile(r"\d{4}")

_STATEMENT_NAMES: Final[Mapping[str, str]] = {
    "BS": "재무상태표",
    "IS": "손익계산서",
    "CIS": "포괄손익계산서",
    "CF": "현금흐름표",
    "SCE": "자본변동표",
}
_NO_STANDARD_ID: Final = "-표준계정코드 미사용-"
_EQUITY_MEMBER: Final = "자본 [member]"
_RETAINED_MEMBER: Final = "자본 [member]|이익잉여금 [member]"

# (sj_div, account_id, account_nm, account_detail, share of revenue, always present).
# Flows (IS, CIS, CF, SCE) are amounts over a period; BS amounts are balances at its end.
_ACCOUNTS: Final[tuple[tuple[str, str, str, str, float, bool], ...]] = (
    ("BS", "ifrs-full_CurrentAssets", "유동자산", "-", 0.55, True),
    ("BS", "ifrs-full_CashAndCashEquivalents", "현금및현금성자산", "-", 0.18, True),
    ("BS", "dart_ShortTermDepositsNotClassifiedAsCashEquivalents", "단기금융상품", "-", 0.2, False),
    ("BS", "ifrs-full_CurrentTradeReceivables", "매출채권", "-", 0.12, False),
    ("BS", "ifrs-full_OtherCurrentReceivables", "미수금", "-", 0.02, False),
    ("BS", "ifrs-full_Inventories", "재고자산", "-", 0.17, False),
    ("BS", "ifrs-full_OtherCurrentAssets", "기타유동자산", "-", 0.03, False),
    ("BS", "ifrs-full_NoncurrentAssets", "비유동자산", "-", 0.95, True),
    ("BS", "ifrs-full_PropertyPlantAndEquipment", "유형자산", "-", 0.6, False),
    ("BS", "ifrs-full_IntangibleAssetsOtherThanGoodwill", "무형자산", "-", 0.08, False),
    ("BS", "ifrs-full_InvestmentsInAssociates", "관계기업 투자", "-", 0.04, False),
    ("BS", "ifrs-full_DeferredTaxAssets", "이연법인세자산", "-", 0.03, False),
    ("BS", "ifrs-full_Assets", "자산총계", "-", 1.5, True),
    ("BS", "ifrs-full_CurrentLiabilities", "유동부채", "-", 0.3, True),
    ("BS", "ifrs-full_TradeAndOtherCurrentPayables", "매입채무", "-", 0.05, False),
    ("BS", "ifrs-full_ShorttermBorrowings", "단기차입금", "-", 0.04, False),
    ("BS", "ifrs-full_CurrentTaxLiabilities", "당기법인세부채", "-", 0.01, False),
    ("BS", "ifrs-full_NoncurrentLiabilities", "비유동부채", "-", 0.06, True),
    ("BS", "dart_BondsIssued", "사채", "-", 0.01, False),
    ("BS", "ifrs-full_LongtermBorrowings", "장기차입금", "-", 0.02, False),
    ("BS", "ifrs-full_Liabilities", "부채총계", "-", 0.36, True),
    ("BS", "ifrs-full_IssuedCapital", "자본금", "-", 0.003, True),
    ("BS", "dart_IssuedCapitalOfPreferredStock", "우선주자본금", "-", 0.0005, False),
    ("BS", "ifrs-full_SharePremium", "주식발행초과금", "-", 0.02, False),
    ("BS", "ifrs-full_RetainedEarnings", "이익잉여금(결손금)", "-", 1.1, True),
    ("BS", "dart_ElementsOfOtherStockholdersEquity", "기타자본항목", "-", -0.01, False),
    ("BS", "ifrs-full_Equity", "자본총계", "-", 1.14, True),
    ("BS", "ifrs-full_EquityAndLiabilities", "자본과부채총계", "-", 1.5, True),
    ("IS", "ifrs-full_Revenue", "수익(매출액)", "-", 1.0, True),
    ("IS", "ifrs-full_CostOfSales", "매출원가", "-", 0.62, True),
    ("IS", "ifrs-full_GrossProfit", "매출총이익", "-", 0.38, True),
    ("IS", "dart_TotalSellingGeneralAdministrativeExpenses", "판매비와관리비", "-", 0.24, False),
    ("IS", "dart_OperatingIncomeLoss", "영업이익(손실)", "-", 0.14, True),
    ("IS", "ifrs-full_OtherIncome", "기타수익", "-", 0.01, False),
    ("IS", "ifrs-full_OtherExpenses", "기타비용", "-", 0.008, False),
    ("IS", "ifrs-full_FinanceIncome", "금융수익", "-", 0.05, False),
    ("IS", "ifrs-full_FinanceCosts", "금융비용", "-", 0.04, False),
    ("IS", "ifrs-full_ProfitLossBeforeTax", "법인세비용차감전순이익(손실)", "-", 0.16, True),
    ("IS", "ifrs-full_IncomeTaxExpenseContinuingOperations", "법인세비용", "-", 0.03, False),
    ("IS", "ifrs-full_ProfitLoss", "당기순이익(손실)", "-", 0.13, True),
    ("IS", _NO_STANDARD_ID, "지배기업 소유주지분", "-", 0.125, False),
    ("CIS", "ifrs-full_ProfitLoss", "당기순이익(손실)", "-", 0.13, True),
    ("CIS", "ifrs-full_OtherComprehensiveIncome", "기타포괄손익", "-", 0.02, False),
    ("CIS", "ifrs-full_ComprehensiveIncome", "총포괄손익", "-", 0.15, True),
    ("CF", "ifrs-full_CashFlowsFromUsedInOperatingActivities", "영업활동 현금흐름", "-", 0.2, True),
    (
        "CF",
        "ifrs-full_InterestPaidClassifiedAsOperatingActivities",
        "이자의 지급",
        "-",
        -0.004,
        False,
    ),
    (
        "CF",
        "ifrs-full_CashFlowsFromUsedInInvestingActivities",
        "투자활동 현금흐름",
        "-",
        -0.17,
        True,
    ),
    (
        "CF",
        "ifrs-full_PurchaseOfPropertyPlantAndEquipmentClassifiedAsInvestingActivities",
        "유형자산의 취득",
        "-",
        -0.15,
        False,
    ),
    (
        "CF",
        "ifrs-full_CashFlowsFromUsedInFinancingActivities",
        "재무활동 현금흐름",
        "-",
        -0.03,
        True,
    ),
    (
        "CF",
        "ifrs-full_DividendsPaidClassifiedAsFinancingActivities",
        "배당금의 지급",
        "-",
        -0.03,
        False,
    ),
    (
        "CF",
        "ifrs-full_IncreaseDecreaseInCashAndCashEquivalents",
        "현금및현금성자산의순증가(감소)",
        "-",
        0.01,
        True,
    ),
    ("SCE", "ifrs-full_Equity", "기초자본", _EQUITY_MEMBER, 1.05, False),
    ("SCE", "ifrs-full_ProfitLoss", "당기순이익(손실)", _RETAINED_MEMBER, 0.13, False),
    ("SCE", "ifrs-full_DividendsPaid", "배당금지급", _RETAINED_MEMBER, -0.03, False),
    ("SCE", "ifrs-full_Equity", "기말자본", _EQUITY_MEMBER, 1.14, False),
)

_PERIOD_LABELS: Final[Mapping[int, str]] = {1: "1분기", 2: "반기", 3: "3분기"}
#: ``reprt_code`` -> (``pblntf_detail_ty``, the report's name in the filing search).
_FILING_KINDS: Final[Mapping[str, tuple[str, str]]] = {
    "11013": ("A003", "분기보고서"),
    "11012": ("A002", "반기보고서"),
    "11014": ("A003", "분기보고서"),
    "11011": ("A001", "사업보고서"),
}
_CORRECTION: Final = "[기재정정]"
_DATE_PATTERN: Final = re.compile(r"\d{8}")
#: How long an IP stays blocked after going over the rate window. OpenDART's blocks last up
#: to 24 hours; a minute keeps benchmarks that breach the window measurable.
DEFAULT_BLOCK_SECONDS: Final = 60.0


def realistic_plan(seed: int = 0) -> FaultPlan:
    """Faults like OpenDART's on a normal day, for the demo.

    About 150 ms per answer (120 ms plus an exponential tail averaging 30 ms), 2% HTTP 503s,
    and an IP block (reset connections) past 1,000 requests in any minute.
    """
    return FaultPlan(
        seed=seed, latency=0.12, latency_jitter=0.03, p_503=0.02, rate_limit=(1000, 60.0)
    )


def _draw(*parts: object) -> float:
    """A float in [0, 1) from ``parts`` alone: the data never depends on the fault seed."""
    text = ":".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"opendart").digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _opendart_item_key(request: web.Request) -> str:
    """``corp_code/bsns_year/reprt_code/fs_div`` for statements; never the key."""
    query = request.query
    if request.path.endswith("/fnlttSinglAcntAll.json"):
        names = ("corp_code", "bsns_year", "reprt_code", "fs_div")
        return "/".join(query.get(name, "") for name in names)
    return default_item_key(request)


def period_end(bsns_year: int, reprt_code: str, acc_mt: int = 12) -> tuple[int, int]:
    """(year, month) in which a report's period ends.

    The business year is named after the calendar year its fiscal year ends in: a company
    closing in March (``acc_mt`` 3) has business year 2024 from April 2023 to March 2024, so
    its first-quarter report of 2024 ends in June 2023.
    """
    quarter = REPORT_CODES[reprt_code]
    index = bsns_year * 12 + (acc_mt - 1) - 3 * (4 - quarter)
    year, month = divmod(index, 12)
    return year, month + 1


def _filing_date(bsns_year: int, reprt_code: str, acc_mt: int, revision: int) -> str:
    """YYYYMMDD a report (or its ``revision``-th correction) was filed."""
    year, month = period_end(bsns_year, reprt_code, acc_mt)
    # Quarterly reports are due 45 days after the period, annual reports 90 days.
    later = (3 if reprt_code == _ANNUAL else 2) + revision
    filed_year, filed_month = divmod(year * 12 + month - 1 + later, 12)
    return f"{filed_year}{filed_month + 1:02d}14"


class _Amounts:
    """Amounts of one company and statement basis, consistent across years and reports.

    A balance (BS) at a quarter's end lies between the two year-end balances around it; a
    flow's four quarters add up to its year, so cumulative and prior-year figures agree with
    what the same stand-in answers for the other reports.
    """

    def __init__(self, corp_code: str, fs_div: str) -> None:
        self.corp_code = corp_code
        self.fs_div = fs_div
        # Revenue between 10 billion and 300 trillion won, spread evenly on a log scale.
        self.scale = 10 ** (10 + 4.5 * _draw(corp_code, "scale"))
        if fs_div == "OFS":
            self.scale *= 0.55 + 0.4 * _draw(corp_code, "ofs")
        self.growth = 0.97 + 0.12 * _draw(corp_code, "growth")

    def annual(self, account: str, share: float, year: int) -> float:
        noise = 0.85 + 0.3 * _draw(self.corp_code, self.fs_div, account, year)
        return self.scale * share * noise * self.growth ** (year - _FIRST_YEAR)

    def balance(self, account: str, share: float, year: int, quarter: int) -> str:
        before = self.annual(account, share, year - 1)
        after = self.annual(account, share, year)
        return str(round(before + (after - before) * quarter / 4))

    def flow(self, account: str, share: float, year: int, first: int, last: int) -> str:
        weights = [0.9 + 0.2 * _draw(self.corp_code, account, year, q) for q in range(1, 5)]
        part = sum(weights[first - 1 : last]) / sum(weights)
        return str(round(self.annual(account, share, year) * part))


def _amount_fields(
    amounts: _Amounts, key: str, share: float, sj_div: str, year: int, quarter: int, number: int
) -> dict[str, str]:
    """The period names and amounts of one row, with the keys OpenDART sends for its kind."""
    if quarter == 4:
        # Annual report: three years side by side; IS/CIS also carry an empty cumulative.
        if sj_div == "BS":
            this, last, before = (
                amounts.balance(key, share, y, 4) for y in (year, year - 1, year - 2)
            )
        else:
            this, last, before = (
                amounts.flow(key, share, y, 1, 4) for y in (year, year - 1, year - 2)
            )
        fields = {"thstrm_nm": f"제 {number} 기", "thstrm_amount": this}
        if sj_div in ("IS", "CIS"):
            fields["thstrm_add_amount"] = ""
        fields |= {
            "frmtrm_nm": f"제 {number - 1} 기",
            "frmtrm_amount": last,
            "bfefrmtrm_nm": f"제 {number - 2} 기",
            "bfefrmtrm_amount": before,
        }
        return fields
    label = _PERIOD_LABELS[quarter]
    if sj_div == "BS":
        # A balance at the quarter's end, compared with the last year-end.
        return {
            "thstrm_nm": f"제 {number} 기 {label}말",
            "thstrm_amount": amounts.balance(key, share, year, quarter),
            "frmtrm_nm": f"제 {number - 1} 기말",
            "frmtrm_amount": amounts.balance(key, share, year - 1, 4),
        }
    if sj_div in ("IS", "CIS"):
        # The quarter's three months, and the year to date, against the same of last year.
        return {
            "thstrm_nm": f"제 {number} 기 {label}",
            "thstrm_amount": amounts.flow(key, share, year, quarter, quarter),
            "thstrm_add_amount": amounts.flow(key, share, year, 1, quarter),
            "frmtrm_q_nm": f"제 {number - 1} 기 {label}",
            "frmtrm_q_amount": amounts.flow(key, share, year - 1, quarter, quarter),
            "frmtrm_add_amount": amounts.flow(key, share, year - 1, 1, quarter),
        }
    # CF and SCE: the year to date against the same of last year.
    return {
        "thstrm_nm": f"제 {number} 기 {label}",
        "thstrm_amount": amounts.flow(key, share, year, 1, quarter),
        "frmtrm_q_nm": f"제 {number - 1} 기 {label}",
        "frmtrm_q_amount": amounts.flow(key, share, year - 1, 1, quarter),
    }


def _statement_rows(
    corp_code: str, year: int, reprt_code: str, fs_div: str, rcept_no: str = ""
) -> list[dict[str, str]]:
    """The rows ``fnlttSinglAcntAll`` answers for one item: 20 to about 60, all strings.

    ``rcept_no`` defaults to the original filing's (a December close, no correction).
    """
    if not rcept_no:
        serial = 1 + int(9998 * _draw(corp_code, year, reprt_code, "rcept", 0))
        rcept_no = f"{_filing_date(year, reprt_code, 12, 0)}{serial:06d}"
    rng = random.Random(f"{corp_code}/{year}/{reprt_code}/{fs_div}")
    optional = [n for n, account in enumerate(_ACCOUNTS) if not account[5]]
    required = [n for n, account in enumerate(_ACCOUNTS) if account[5]]
    wanted = rng.randint(max(20, len(required)), len(_ACCOUNTS))
    chosen = sorted(required + rng.sample(optional, wanted - len(required)))

    quarter = REPORT_CODES[reprt_code]
    number = year - 1950 - int(40 * _draw(corp_code, "founded"))
    amounts = _Amounts(corp_code, fs_div)

    rows: list[dict[str, str]] = []
    order: dict[str, int] = {}
    for index in chosen:
        sj_div, account_id, account_nm, detail, share, _ = _ACCOUNTS[index]
        # Keyed by account, not statement: the IS, CIS and SCE net profit is one amount.
        key = f"{account_id}|{account_nm}"
        order[sj_div] = order.get(sj_div, 0) + 1
        row = {
            "rcept_no": rcept_no,
            "reprt_code": reprt_code,
            "bsns_year": str(year),
            "corp_code": corp_code,
            "sj_div": sj_div,
            "sj_nm": _STATEMENT_NAMES[sj_div],
            "account_id": account_id,
            "account_nm": account_nm,
            "account_detail": detail,
        }
        row |= _amount_fields(amounts, key, share, sj_div, year, quarter, number)
        row["ord"] = str(order[sj_div])
        row["currency"] = "KRW"
        rows.append(row)
    return rows


def _json_body(payload: Mapping[str, object]) -> bytes:
    # OpenDART sends Korean text as UTF-8, not as \u escapes.
    return json.dumps(payload, ensure_ascii=False).encode()


@functools.lru_cache(maxsize=1024)
def _statements_body(
    corp_code: str, year: int, reprt_code: str, fs_div: str, rcept_no: str
) -> bytes:
    """The 000 answer for one item, cached: a benchmark's server must not be its bottleneck."""
    rows = _statement_rows(corp_code, year, reprt_code, fs_div, rcept_no)
    return _json_body({"status": "000", "message": _MESSAGES["000"], "list": rows})


def _json_answer(payload: Mapping[str, object] | bytes) -> web.Response:
    body = payload if isinstance(payload, bytes) else _json_body(payload)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _xml_answer(text: str) -> web.Response:
    return web.Response(body=text.encode(), content_type="application/xml", charset="utf-8")


def _whole(text: str, default: int) -> int | None:
    """A positive whole number parameter (``default`` when absent), None when malformed."""
    if not text:
        return default
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


class OpenDartStandIn(FaultServer):
    """OpenDART's API on loopback, with the faults of ``plan``.

    ``api_key=None`` accepts any 40-character key; otherwise any other key answers 010.
    ``no_data_ratio`` of the items answer 013 (always the same ones). After ``quota`` answered
    requests every answer is 020 until :meth:`new_day` (a spent *daily* quota). Past the plan's
    ``rate_limit`` window the IP is blocked for ``block_seconds``: every connection is reset,
    as with ``blocked``. ``maintenance`` answers 800 while true; ``maintenance_after`` switches
    it on once that many requests have arrived (a window opening mid-run). ``filed_until``
    (YYYYMMDD) hides reports filed after it (013 and absent from ``list.json``). ``corp_codes``
    are the companies ``corpCode.xml`` lists (default: :data:`DEMO_COMPANIES`, two unlisted and
    :data:`DELISTED_COMPANIES`); an entry may carry ``corp_cls``, ``corp_eng_name`` and
    ``acc_mt`` (fiscal year-end month). Statements are served for any well-formed ``corp_code``.
    """

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        api_key: str | None = None,
        no_data_ratio: float = 0.1,
        quota: int | None = None,
        blocked: bool = False,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        maintenance_after: int | None = None,
        filed_until: str | None = None,
        corp_codes: Iterable[Mapping[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if api_key is not None and not _KEY_PATTERN.fullmatch(api_key):
            raise ConfigError("api_key", "must be None or 40 letters and digits, like DART's")
        if not (isinstance(no_data_ratio, int | float) and 0.0 <= no_data_ratio <= 1.0):
            raise ConfigError("no_data_ratio", f"must be between 0 and 1, got {no_data_ratio!r}")
        for name, count in (("quota", quota), ("maintenance_after", maintenance_after)):
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 0
            ):
                raise ConfigError(name, f"must be None or a request count >= 0, got {count!r}")
        if not (isinstance(block_seconds, int | float) and block_seconds > 0):
            raise ConfigError("block_seconds", f"must be seconds > 0, got {block_seconds!r}")
        if filed_until is not None and not _DATE_PATTERN.fullmatch(filed_until):
            raise ConfigError("filed_until", f"must be None or YYYYMMDD, got {filed_until!r}")
        default = (*DEMO_COMPANIES, *_UNLISTED_COMPANIES, *DELISTED_COMPANIES)
        companies = tuple(dict(c) for c in (corp_codes or default))
        for company in companies:
            if not _CORP_CODE_PATTERN.fullmatch(company.get("corp_code", "")):
                raise ConfigError("corp_codes", f"every corp_code must be 8 digits: {company!r}")
        super().__init__(
            plan, handler=self._answer, item_key=_opendart_item_key, host=host, port=port
        )
        self._api_key = api_key
        self.no_data_ratio = float(no_data_ratio)
        #: Requests this server answers in a day before every answer becomes 020; None: no quota.
        self.quota = quota
        #: While true every connection is reset, as when OpenDART blocks an IP address.
        self.blocked = blocked
        #: How long going over the rate window blocks the IP.
        self.block_seconds = float(block_seconds)
        #: While true every answer is status 800 (system maintenance).
        self.maintenance = False
        #: Requests after which maintenance starts (then None); None for no such window.
        self.maintenance_after = maintenance_after
        #: Reports filed after this date (YYYYMMDD) are not filed yet; None: all are.
        self.filed_until = filed_until
        self._companies = {c["corp_code"]: c for c in companies}
        self._requests = 0
        self._quota_used = 0
        self._blocked_until = -math.inf
        self._revisions: dict[tuple[str, int, str], int] = {}

    @property
    def requests(self) -> int:
        """Requests that arrived since the start."""
        return self._requests

    def new_day(self) -> None:
        """Midnight KST: the daily quota starts again."""
        self._quota_used = 0

    def unblock(self) -> None:
        """Lift an IP block that going over the rate window caused."""
        self._blocked_until = -math.inf

    def correct(self, corp_code: str, bsns_year: int, reprt_code: str) -> str:
        """File a correction of a report (``[기재정정]``); returns its new ``rcept_no``."""
        report = (corp_code, int(bsns_year), reprt_code)
        self._revisions[report] = self._revisions.get(report, 0) + 1
        return self.rcept_no(corp_code, int(bsns_year), reprt_code)

    def rcept_no(self, corp_code: str, bsns_year: int, reprt_code: str, revision: int = -1) -> str:
        """The receipt number of a report's filing (its latest correction by default)."""
        if revision < 0:
            revision = self._revisions.get((corp_code, bsns_year, reprt_code), 0)
        date = _filing_date(bsns_year, reprt_code, self._acc_mt(corp_code), revision)
        serial = 1 + int(9998 * _draw(corp_code, bsns_year, reprt_code, "rcept", revision))
        return f"{date}{serial:06d}"

    def report_filed(self, corp_code: str, bsns_year: int, reprt_code: str) -> bool:
        """Whether a report is filed: it has rows (CFS or OFS) and is not filed in the future."""
        if self.filed_until is not None and (
            _filing_date(bsns_year, reprt_code, self._acc_mt(corp_code), 0) > self.filed_until
        ):
            return False
        return any(
            not self._is_no_data(f"{corp_code}/{bsns_year}/{reprt_code}/{div}")
            for div in sorted(_FS_DIVS)
        )

    def choose_fault(self, request: web.Request, item: str, attempt: int, now: float) -> str | None:
        """Block, maintenance and quota come before the plan's faults."""
        self._requests += 1
        if self.blocked or now < self._blocked_until:
            return "blocked"
        if self._over_rate_limit(now):
            # OpenDART blocks the IP past ~1,000 requests a minute; it does not answer 020.
            # The arrival that breached the window is logged as such, the block's as blocked.
            self._blocked_until = now + self.block_seconds
            return "rate_limit"
        if self.maintenance_after is not None and self._requests > self.maintenance_after:
            self.maintenance, self.maintenance_after = True, None
        if self.maintenance:
            return "maintenance"
        self._quota_used += 1
        if self.quota is not None and self._quota_used > self.quota:
            return "quota"
        return self.plan.fault_for(item, attempt)

    async def fault_response(
        self, request: web.Request, context: ItemContext, fault: str
    ) -> web.StreamResponse:
        """The quota answers 020 and maintenance 800, as HTTP 200 like every OpenDART answer."""
        if fault == "quota":
            return self._status(request, "020")
        if fault == "maintenance":
            return self._status(request, "800")
        if fault in ("blocked", "rate_limit"):
            return await super().fault_response(request, context, "reset")
        return await super().fault_response(request, context, fault)

    def _status(self, request: web.Request, status: str) -> web.Response:
        """A status-only answer: XML for corpCode.xml, JSON elsewhere."""
        message = _MESSAGES[status]
        if request.path.endswith(".xml"):
            return _xml_answer(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<result><status>{status}</status><message>{escape(message)}</message></result>"
            )
        return _json_answer({"status": status, "message": message})

    def _key_ok(self, request: web.Request) -> bool:
        key = request.query.get("crtfc_key", "")
        if self._api_key is not None:
            return key == self._api_key
        return _KEY_PATTERN.fullmatch(key) is not None

    def _is_no_data(self, item: str) -> bool:
        return _draw(item, "no-data") < self.no_data_ratio

    def _acc_mt(self, corp_code: str) -> int:
        company = self._companies.get(corp_code, {})
        month = company.get("acc_mt") or _PROFILES.get(corp_code, {}).get("acc_mt", "12")
        return int(month)

    def _profile(self, corp_code: str) -> dict[str, str]:
        """corp_code, corp_name, corp_eng_name, stock_code, corp_cls of a known company."""
        company = dict(_PROFILES.get(corp_code, {}))
        company.update(self._companies[corp_code])
        stock_code = company.get("stock_code", "").strip()
        company["stock_code"] = stock_code
        company.setdefault("corp_cls", "Y" if stock_code else "E")
        company.setdefault("corp_eng_name", "")
        return company

    async def _answer(self, request: web.Request, context: ItemContext) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith("/api/") or name not in (
            "fnlttSinglAcntAll.json",
            "company.json",
            "corpCode.xml",
            "list.json",
        ):
            raise web.HTTPNotFound()
        if not self._key_ok(request):
            return self._status(request, "010")
        if name == "corpCode.xml":
            return self._corp_codes()
        if name == "company.json":
            return self._company(request)
        if name == "list.json":
            return self._filings(request)
        return self._statements(request, context)

    def _statements(self, request: web.Request, context: ItemContext) -> web.Response:
        query = request.query
        corp_code = query.get("corp_code", "")
        year = query.get("bsns_year", "")
        reprt_code = query.get("reprt_code", "")
        fs_div = query.get("fs_div", "")
        if (
            not _CORP_CODE_PATTERN.fullmatch(corp_code)
            or not _YEAR_PATTERN.fullmatch(year)
            or int(year) < _FIRST_YEAR
            or reprt_code not in REPORT_CODES
            or fs_div not in _FS_DIVS
        ):
            return self._status(request, "100")
        if self._is_no_data(context.item) or not self.report_filed(
            corp_code, int(year), reprt_code
        ):
            return self._status(request, "013")
        rcept_no = self.rcept_no(corp_code, int(year), reprt_code)
        return _json_answer(_statements_body(corp_code, int(year), reprt_code, fs_div, rcept_no))

    def _company(self, request: web.Request) -> web.Response:
        corp_code = request.query.get("corp_code", "")
        if not _CORP_CODE_PATTERN.fullmatch(corp_code):
            return self._status(request, "100")
        if corp_code not in self._companies:
            return self._status(request, "013")
        company = self._profile(corp_code)
        return _json_answer(
            {
                "status": "000",
                "message": _MESSAGES["000"],
                "corp_code": corp_code,
                "corp_name": company["corp_name"],
                "corp_name_eng": company["corp_eng_name"],
                "stock_name": company["corp_name"] if company["stock_code"] else "",
                "stock_code": company["stock_code"],
                "corp_cls": company["corp_cls"],
                "acc_mt": f"{self._acc_mt(corp_code):02d}",
            }
        )

    def _filings(self, request: web.Request) -> web.Response:
        """``list.json``: one company's periodic reports in a date range, newest first, paged."""
        query = request.query
        corp_code = query.get("corp_code", "")
        begin = query.get("bgn_de", "") or "19990101"
        end = query.get("end_de", "") or "99991231"
        kind = query.get("pblntf_ty", "")
        detail = query.get("pblntf_detail_ty", "")
        latest_only = query.get("last_reprt_at", "N") == "Y"
        page_no = _whole(query.get("page_no", ""), 1)
        page_count = _whole(query.get("page_count", ""), 10)
        if (
            not _CORP_CODE_PATTERN.fullmatch(corp_code)
            or not _DATE_PATTERN.fullmatch(begin)
            or not _DATE_PATTERN.fullmatch(end)
            or kind not in ("", "A")
            or detail not in ("", "A001", "A002", "A003")
            or page_no is None
            or page_count is None
            or page_count > 100
        ):
            return self._status(request, "100")
        known = self._companies.get(corp_code, {})
        company = self._profile(corp_code) if known else {"corp_name": "", "stock_code": ""}
        filings = [
            filing
            for filing in self._all_filings(corp_code, latest_only)
            if begin <= filing["rcept_dt"] <= end
            and (not detail or _FILING_KINDS[filing["reprt_code"]][0] == detail)
        ]
        filings.sort(key=lambda filing: filing["rcept_no"], reverse=True)
        total_page = max(1, math.ceil(len(filings) / page_count))
        page = filings[(page_no - 1) * page_count : page_no * page_count]
        if not page:
            return self._status(request, "013")
        return _json_answer(
            {
                "status": "000",
                "message": _MESSAGES["000"],
                "page_no": page_no,
                "page_count": page_count,
                "total_count": len(filings),
                "total_page": total_page,
                "list": [
                    {
                        "corp_code": corp_code,
                        "corp_name": company["corp_name"],
                        "stock_code": company["stock_code"],
                        "corp_cls": company.get("corp_cls", "E"),
                        "report_nm": filing["report_nm"],
                        "rcept_no": filing["rcept_no"],
                        "flr_nm": company["corp_name"],
                        "rcept_dt": filing["rcept_dt"],
                        "rm": "",
                    }
                    for filing in page
                ],
            }
        )

    def _all_filings(self, corp_code: str, latest_only: bool) -> list[dict[str, str]]:
        acc_mt = self._acc_mt(corp_code)
        last_year = int((self.filed_until or "2100")[:4]) + 1
        filings = []
        for year in range(_FIRST_YEAR, last_year + 1):
            for reprt_code in REPORT_CODES:
                if not self.report_filed(corp_code, year, reprt_code):
                    continue
                end_year, end_month = period_end(year, reprt_code, acc_mt)
                latest = self._revisions.get((corp_code, year, reprt_code), 0)
                for revision in range(latest if latest_only else 0, latest + 1):
                    rcept_no = self.rcept_no(corp_code, year, reprt_code, revision)
                    prefix = _CORRECTION if revision else ""
                    name = _FILING_KINDS[reprt_code][1]
                    filings.append(
                        {
                            "reprt_code": reprt_code,
                            "rcept_no": rcept_no,
                            "rcept_dt": rcept_no[:8],
                            "report_nm": f"{prefix}{name} ({end_year}.{end_month:02d})",
                        }
                    )
        return filings

    def _corp_codes(self) -> web.Response:
        entries = []
        for corp_code in self._companies:
            company = self._profile(corp_code)
            # OpenDART writes a single space for a company with no stock code.
            stock_code = company["stock_code"] or " "
            modify_date = company.get("modify_date") or (
                f"2024{1 + math.floor(12 * _draw(corp_code, 'month')):02d}"
                f"{1 + math.floor(28 * _draw(corp_code, 'day')):02d}"
            )
            entries.append(
                "    <list>\n"
                f"        <corp_code>{corp_code}</corp_code>\n"
                f"        <corp_name>{escape(company.get('corp_name', ''))}</corp_name>\n"
                f"        <corp_eng_name>{escape(company['corp_eng_name'])}</corp_eng_name>\n"
                f"        <stock_code>{escape(stock_code)}</stock_code>\n"
                f"        <modify_date>{escape(modify_date)}</modify_date>\n"
                "    </list>\n"
            )
        document = '<?xml version="1.0" encoding="UTF-8"?>\n<result>\n' + "".join(entries)
        document += "</result>\n"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("CORPCODE.xml", document)
        return web.Response(
            body=buffer.getvalue(),
            content_type="application/x-msdownload",
            headers={"Content-Disposition": "attachment; filename=CORPCODE.zip"},
        )
