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
    "DEMO_COMPANIES",
    "REPORT_CODES",
    "OpenDartStandIn",
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
_FILING_DATES: Final[Mapping[int, str]] = {1: "0515", 2: "0814", 3: "1114", 4: "0314"}


def realistic_plan(seed: int = 0) -> FaultPlan:
    """Faults like OpenDART's on a normal day, for the demo.

    About 150 ms per answer (120 ms plus an exponential tail averaging 30 ms), 2% HTTP 503s,
    and status 020 past 1,000 requests in any minute.
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

    def balance(self, account: str, share: float, year: int, quarter: int) -> int:
        before = self.annual(account, share, year - 1)
        after = self.annual(account, share, year)
        return round(before + (after - before) * quarter / 4)

    def flow(self, account: str, share: float, year: int, first: int, last: int) -> int:
        weights = [0.9 + 0.2 * _draw(self.corp_code, account, year, q) for q in range(1, 5)]
        part = sum(weights[first - 1 : last]) / sum(weights)
        return round(self.annual(account, share, year) * part)


def _period(number: int, quarter: int, *, balance: bool) -> str:
    if quarter == 4:
        return f"제 {number} 기"
    suffix = "말" if balance else ""
    return f"제 {number} 기 {_PERIOD_LABELS[quarter]}{suffix}"


def _statement_rows(
    corp_code: str, year: int, reprt_code: str, fs_div: str
) -> list[dict[str, str]]:
    """The rows ``fnlttSinglAcntAll`` answers for one item: 20 to about 60, all strings."""
    rng = random.Random(f"{corp_code}/{year}/{reprt_code}/{fs_div}")
    optional = [n for n, account in enumerate(_ACCOUNTS) if not account[5]]
    required = [n for n, account in enumerate(_ACCOUNTS) if account[5]]
    wanted = rng.randint(max(20, len(required)), len(_ACCOUNTS))
    chosen = sorted(required + rng.sample(optional, wanted - len(required)))

    quarter = REPORT_CODES[reprt_code]
    annual = reprt_code == _ANNUAL
    first = 1 if annual else quarter
    number = year - 1950 - int(40 * _draw(corp_code, "founded"))
    serial = 1 + int(9998 * _draw(corp_code, year, reprt_code, "rcept"))
    filed_year = year + 1 if annual else year
    rcept_no = f"{filed_year}{_FILING_DATES[quarter]}{serial:06d}"
    amounts = _Amounts(corp_code, fs_div)

    rows: list[dict[str, str]] = []
    order: dict[str, int] = {}
    for index in chosen:
        sj_div, account_id, account_nm, detail, share, _ = _ACCOUNTS[index]
        # Keyed by account, not statement: the IS, CIS and SCE net profit is one amount.
        key = f"{account_id}|{account_nm}"
        order[sj_div] = order.get(sj_div, 0) + 1
        balance = sj_div == "BS"
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
            "thstrm_nm": _period(number, quarter, balance=balance),
        }
        if balance:
            this = amounts.balance(key, share, year, quarter)
            # A balance compares with the last year-end, whatever the report.
            previous = amounts.balance(key, share, year - 1, 4)
            previous_nm = f"제 {number - 1} 기" if annual else f"제 {number - 1} 기말"
        else:
            # The annual report's flows span the year; a quarterly report's, its quarter.
            this = amounts.flow(key, share, year, first, quarter)
            previous = amounts.flow(key, share, year - 1, first, quarter)
            previous_nm = _period(number - 1, quarter, balance=False)
        row["thstrm_amount"] = str(this)
        if not annual:
            row["thstrm_add_amount"] = (
                "" if balance else str(amounts.flow(key, share, year, 1, quarter))
            )
        row["frmtrm_nm"] = previous_nm
        row["frmtrm_amount"] = str(previous)
        if not annual:
            row["frmtrm_q_nm"] = "" if balance else previous_nm
            row["frmtrm_q_amount"] = "" if balance else str(previous)
            row["frmtrm_add_amount"] = (
                "" if balance else str(amounts.flow(key, share, year - 1, 1, quarter))
            )
        if annual:
            before = (
                amounts.balance(key, share, year - 2, 4)
                if balance
                else amounts.flow(key, share, year - 2, 1, 4)
            )
            row["bfefrmtrm_nm"] = f"제 {number - 2} 기"
            row["bfefrmtrm_amount"] = str(before)
        else:
            # Quarterly reports compare with one year only.
            row["bfefrmtrm_nm"] = ""
            row["bfefrmtrm_amount"] = ""
        row["ord"] = str(order[sj_div])
        row["currency"] = "KRW"
        rows.append(row)
    return rows


def _json_body(payload: Mapping[str, object]) -> bytes:
    # OpenDART sends Korean text as UTF-8, not as \u escapes.
    return json.dumps(payload, ensure_ascii=False).encode()


@functools.lru_cache(maxsize=1024)
def _statements_body(corp_code: str, year: int, reprt_code: str, fs_div: str) -> bytes:
    """The 000 answer for one item, cached: a benchmark's server must not be its bottleneck."""
    rows = _statement_rows(corp_code, year, reprt_code, fs_div)
    return _json_body({"status": "000", "message": _MESSAGES["000"], "list": rows})


def _json_answer(payload: Mapping[str, object] | bytes) -> web.Response:
    body = payload if isinstance(payload, bytes) else _json_body(payload)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _xml_answer(text: str) -> web.Response:
    return web.Response(body=text.encode(), content_type="application/xml", charset="utf-8")


class OpenDartStandIn(FaultServer):
    """OpenDART's API on loopback, with the faults of ``plan``.

    ``api_key=None`` accepts any 40-character key; otherwise any other key answers 010.
    ``no_data_ratio`` of the items answer 013 (always the same ones). After ``quota`` requests
    every answer is 020 (a spent daily quota); ``blocked`` resets every connection (an IP block)
    and ``maintenance`` answers 800; both can be switched while the server runs.
    ``corp_codes`` are the companies ``corpCode.xml`` lists (default: :data:`DEMO_COMPANIES`
    and two unlisted companies); statements are served for any well-formed ``corp_code``.
    """

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        api_key: str | None = None,
        no_data_ratio: float = 0.1,
        quota: int | None = None,
        blocked: bool = False,
        corp_codes: Iterable[Mapping[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if api_key is not None and not _KEY_PATTERN.fullmatch(api_key):
            raise ConfigError("api_key", "must be None or 40 letters and digits, like DART's")
        if not (isinstance(no_data_ratio, int | float) and 0.0 <= no_data_ratio <= 1.0):
            raise ConfigError("no_data_ratio", f"must be between 0 and 1, got {no_data_ratio!r}")
        if quota is not None and (
            isinstance(quota, bool) or not isinstance(quota, int) or quota < 0
        ):
            raise ConfigError("quota", f"must be None or a request count >= 0, got {quota!r}")
        companies = tuple(dict(c) for c in (corp_codes or (*DEMO_COMPANIES, *_UNLISTED_COMPANIES)))
        for company in companies:
            if not _CORP_CODE_PATTERN.fullmatch(company.get("corp_code", "")):
                raise ConfigError("corp_codes", f"every corp_code must be 8 digits: {company!r}")
        super().__init__(
            plan, handler=self._answer, item_key=_opendart_item_key, host=host, port=port
        )
        self._api_key = api_key
        self.no_data_ratio = float(no_data_ratio)
        #: Requests this server answers before every answer becomes 020; None for no quota.
        self.quota = quota
        #: While true every connection is reset, as when OpenDART blocks an IP address.
        self.blocked = blocked
        #: While true every answer is status 800 (system maintenance).
        self.maintenance = False
        self._companies = companies
        self._requests = 0

    @property
    def requests(self) -> int:
        """Requests that arrived since the start (the quota counts these)."""
        return self._requests

    def choose_fault(self, request: web.Request, item: str, attempt: int, now: float) -> str | None:
        """Block, maintenance and quota come before the plan's faults."""
        self._requests += 1
        if self.blocked:
            return "blocked"
        if self.maintenance:
            return "maintenance"
        if self.quota is not None and self._requests > self.quota:
            return "quota"
        return super().choose_fault(request, item, attempt, now)

    async def fault_response(
        self, request: web.Request, context: ItemContext, fault: str
    ) -> web.StreamResponse:
        """Limits answer 020 and maintenance 800, as HTTP 200 like every OpenDART answer."""
        if fault in ("rate_limit", "quota"):
            return self._status(request, "020")
        if fault == "maintenance":
            return self._status(request, "800")
        if fault == "blocked":
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

    async def _answer(self, request: web.Request, context: ItemContext) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith("/api/") or name not in (
            "fnlttSinglAcntAll.json",
            "company.json",
            "corpCode.xml",
        ):
            raise web.HTTPNotFound()
        if not self._key_ok(request):
            return self._status(request, "010")
        if name == "corpCode.xml":
            return self._corp_codes()
        if name == "company.json":
            return self._company(request)
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
        if self._is_no_data(context.item):
            return self._status(request, "013")
        return _json_answer(_statements_body(corp_code, int(year), reprt_code, fs_div))

    def _company(self, request: web.Request) -> web.Response:
        corp_code = request.query.get("corp_code", "")
        if not _CORP_CODE_PATTERN.fullmatch(corp_code):
            return self._status(request, "100")
        company = next((c for c in self._companies if c["corp_code"] == corp_code), None)
        if company is None:
            return self._status(request, "013")
        stock_code = company.get("stock_code", "").strip()
        return _json_answer(
            {
                "status": "000",
                "message": _MESSAGES["000"],
                "corp_code": corp_code,
                "corp_name": company["corp_name"],
                "stock_name": company["corp_name"] if stock_code else "",
                "stock_code": stock_code,
                "corp_cls": "Y" if stock_code else "E",
            }
        )

    def _corp_codes(self) -> web.Response:
        entries = []
        for company in self._companies:
            corp_code = company["corp_code"]
            # OpenDART writes a single space for a company with no stock code.
            stock_code = company.get("stock_code", "").strip() or " "
            modify_date = company.get("modify_date") or (
                f"2024{1 + math.floor(12 * _draw(corp_code, 'month')):02d}"
                f"{1 + math.floor(28 * _draw(corp_code, 'day')):02d}"
            )
            entries.append(
                "    <list>\n"
                f"        <corp_code>{corp_code}</corp_code>\n"
                f"        <corp_name>{escape(company.get('corp_name', ''))}</corp_name>\n"
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
