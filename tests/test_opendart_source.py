"""OpenDART items, plans, the data key layout, and how OpenDartSource reads answers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from asyncrawl.errors import ConfigError
from asyncrawl.http import Response
from asyncrawl.outcomes import (
    Failed,
    Fatal,
    NoData,
    Ok,
    Outcome,
    SlowDown,
    Transient,
    Unusable,
)
from asyncrawl.redact import redact_text
from asyncrawl.source import Source
from asyncrawl.sources import opendart
from asyncrawl.sources.opendart import (
    REPORT_CODES,
    Company,
    OpenDartSource,
    StatementItem,
    data_key,
    item_from_key,
    plan_items,
)

KEY = "0123456789abcdef0123456789abcdef01234567"
SAMSUNG = Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자")
FIXED = datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)


def companies(count: int) -> list[Company]:
    return [Company(corp_code=f"{i:08d}", stock_code=f"{i:06d}") for i in range(1, count + 1)]


def item(
    company: Company = SAMSUNG, reprt_code: str = "11011", fs_div: str = "CFS"
) -> StatementItem:
    return StatementItem(company=company, bsns_year=2023, reprt_code=reprt_code, fs_div=fs_div)


def source(**kwargs: Any) -> OpenDartSource:
    return OpenDartSource(api_key=KEY, clock=lambda: FIXED, **kwargs)


def answer(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(status=status, headers=headers or {}, body=raw)


def dart_row(**extra: str) -> dict[str, str]:
    row = {
        "rcept_no": "20240312000736",
        "reprt_code": "11011",
        "bsns_year": "2023",
        "corp_code": "00126380",
        "sj_div": "BS",
        "sj_nm": "재무상태표",
        "account_id": "ifrs-full_CurrentAssets",
        "account_nm": "유동자산",
        "account_detail": "-",
        "thstrm_nm": "제 55 기",
        "thstrm_amount": "195936557000000",
        "frmtrm_nm": "제 54 기",
        "frmtrm_amount": "218470581000000",
        "ord": "1",
        "currency": "KRW",
    }
    row.update(extra)
    return row


def test_public_api_is_sorted() -> None:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    def group(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert opendart.__all__ == sorted(opendart.__all__, key=group)
    assert all(hasattr(opendart, name) for name in opendart.__all__)


# --- items and plans -----------------------------------------------------------------------


def test_company_refuses_malformed_codes() -> None:
    with pytest.raises(ConfigError, match="corp_code"):
        Company(corp_code="126380")
    with pytest.raises(ConfigError, match="stock_code"):
        Company(corp_code="00126380", stock_code="0126z0")
    assert Company(corp_code="00126380", stock_code="0126Z0").stock_code == "0126Z0"


def test_item_key_names_company_year_report_and_division() -> None:
    assert item(fs_div="OFS").key == "00126380/2023/11011/OFS"


def test_quarter_plan_is_four_reports_times_both_divisions() -> None:
    planned = list(plan_items(companies(10), [2022, 2023, 2024], "quarter"))
    assert len(planned) == 10 * 3 * 4 * 2 == 240
    assert len({i.key for i in planned}) == 240
    assert {i.reprt_code for i in planned} == {"11013", "11012", "11014", "11011"}
    assert {i.fs_div for i in planned} == {"CFS", "OFS"}


def test_annual_plan_is_the_annual_report_only() -> None:
    planned = list(plan_items(companies(10), [2023, 2024], "annual", fs_divs=["CFS"]))
    assert len(planned) == 20
    assert {(i.reprt_code, i.fs_div) for i in planned} == {("11011", "CFS")}


def test_annual_report_is_the_same_item_in_both_kinds_of_crawl() -> None:
    annual = {i.key for i in plan_items([SAMSUNG], [2023], "annual")}
    quarter = {i.key for i in plan_items([SAMSUNG], [2023], "quarter")}
    assert annual == {"00126380/2023/11011/CFS", "00126380/2023/11011/OFS"}
    assert annual <= quarter


def test_repeated_companies_years_and_divisions_are_planned_once() -> None:
    twice = [SAMSUNG, SAMSUNG, Company(corp_code="00126380")]
    planned = list(plan_items(twice, [2023, "2023", 2023], "quarter", fs_divs=["CFS", "cfs"]))
    assert len(planned) == 4
    assert all(i.company is SAMSUNG for i in planned)


def test_plan_is_lazy_over_the_company_list() -> None:
    def endless() -> Iterator[Company]:
        for n in itertools.count(1):
            yield Company(corp_code=f"{n:08d}")

    first = list(itertools.islice(plan_items(endless(), [2023], "annual"), 5))
    assert [i.key for i in first] == [
        "00000001/2023/11011/CFS",
        "00000001/2023/11011/OFS",
        "00000002/2023/11011/CFS",
        "00000002/2023/11011/OFS",
        "00000003/2023/11011/CFS",
    ]


@pytest.mark.parametrize(
    ("kind", "years", "fs_divs", "field"),
    [
        ("monthly", [2023], ["CFS"], "--kind"),
        ("quarter", [2014], ["CFS"], "--years"),
        ("quarter", [datetime.now(UTC).year + 2], ["CFS"], "--years"),
        ("quarter", ["20x3"], ["CFS"], "--years"),
        ("quarter", [True], ["CFS"], "--years"),
        ("quarter", [], ["CFS"], "--years"),
        ("quarter", [2023], ["XFS"], "--fs-div"),
        ("quarter", [2023], [], "--fs-div"),
    ],
)
def test_bad_plans_are_refused_at_once_naming_the_flag(
    kind: str, years: list[Any], fs_divs: list[str], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        # No iteration: the error must come from the call itself.
        plan_items([SAMSUNG], years, kind, fs_divs)
    assert caught.value.field == field


def test_next_year_is_allowed_for_early_reports() -> None:
    next_year = datetime.now(UTC).year + 1
    assert len(list(plan_items([SAMSUNG], [next_year], "annual"))) == 2


def test_keys_round_trip_to_the_same_items() -> None:
    listed = companies(3)
    by_code = {c.corp_code: c for c in listed}
    planned = list(plan_items(listed, [2023, 2024], "quarter"))
    assert [item_from_key(i.key, by_code) for i in planned] == planned


def test_key_of_an_unlisted_company_rebuilds_it_from_its_code() -> None:
    rebuilt = item_from_key("00126380/2023/11014/OFS")
    assert rebuilt == StatementItem(
        company=Company(corp_code="00126380"), bsns_year=2023, reprt_code="11014", fs_div="OFS"
    )


@pytest.mark.parametrize(
    "key",
    [
        "",
        "00126380/2023/11011",
        "00126380/2023/11011/CFS/x",
        "126380/2023/11011/CFS",
        "00126380/23/11011/CFS",
        "00126380/2023/99999/CFS",
        "00126380/2023/11011/XFS",
    ],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="item key"):
        item_from_key(key)
    with pytest.raises(ConfigError):
        item_from_key(key)


# --- layout --------------------------------------------------------------------------------


def test_data_key_uses_partitions_that_do_not_repeat_row_fields() -> None:
    key = data_key(item(reprt_code="11012", fs_div="OFS"))
    assert key == "data/year=2023/report=11012/fs=OFS/00126380.jsonl.gz"
    partitions = [part.split("=")[0] for part in key.split("/")[1:-1]]
    assert partitions == ["year", "report", "fs"]
    assert set(partitions).isdisjoint([*dart_row(), "fs_div", "stock_code", "crawled_at"])


# --- the source: construction and requests ---------------------------------------------------


def test_source_satisfies_the_source_protocol() -> None:
    typed: Source[StatementItem] = source()
    assert typed.key(item()) == item().key


@pytest.mark.parametrize("bad", ["", "short", KEY + "0", f" {KEY}\n"])
def test_bad_keys_are_refused_naming_the_variable_not_the_value(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OpenDartSource(api_key=bad)
    assert caught.value.field == "DART_API_KEY"
    assert not bad.strip() or bad.strip() not in str(caught.value)


def test_whitespace_around_a_key_is_pointed_out() -> None:
    with pytest.raises(ConfigError, match="whitespace"):
        OpenDartSource(api_key=f"{KEY}\n")


def test_the_key_is_masked_in_logs_and_repr() -> None:
    made = source()
    assert KEY not in repr(made)
    assert redact_text(f"key={KEY}") == "key=***"


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="--base-url"):
        OpenDartSource(api_key=KEY, base_url="opendart.fss.or.kr/api")


def test_request_asks_for_the_full_statements_with_the_key_masked() -> None:
    request = source().request(item(reprt_code="11014", fs_div="OFS"))
    assert request.url == "https://opendart.fss.or.kr/api/fnlttSinglAcntAll.json"
    assert dict(request.params) == {
        "crtfc_key": KEY,
        "corp_code": "00126380",
        "bsns_year": "2023",
        "reprt_code": "11014",
        "fs_div": "OFS",
    }
    assert request.secret_params == frozenset({"crtfc_key"})
    assert KEY not in request.display_url
    assert "crtfc_key=***" in request.display_url


def test_base_url_without_a_slash_still_reaches_the_endpoint() -> None:
    request = source(base_url="http://127.0.0.1:8080/api").request(item())
    assert request.url == "http://127.0.0.1:8080/api/fnlttSinglAcntAll.json"


# --- the source: classifying answers ------------------------------------------------------------


def classify(body: object, **kwargs: Any) -> Outcome:
    return source().classify(item(), answer(body, **kwargs))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("013", NoData),
        ("020", Fatal),
        ("800", Fatal),
        ("900", Transient),
        ("010", Fatal),
        ("011", Fatal),
        ("012", Fatal),
        ("901", Fatal),
        ("014", Failed),
        ("021", Failed),
        ("100", Failed),
        ("101", Failed),
        ("999", Failed),
    ],
)
def test_each_dart_status_has_its_outcome(status: str, kind: type) -> None:
    outcome = classify({"status": status, "message": "메시지"})
    assert isinstance(outcome, kind)
    assert outcome.status == status


def test_020_is_the_daily_quota_and_stops_the_run_resumably() -> None:
    # 020 is the key's daily quota, not a per-minute signal: pausing and retrying only
    # spends requests that all answer 020 until midnight KST.
    outcome = classify({"status": "020", "message": "요청 제한을 초과하였습니다."})
    assert isinstance(outcome, Fatal)
    assert outcome.status == "020"
    assert "daily quota used" in outcome.reason
    assert "midnight KST" in outcome.reason


def test_800_is_maintenance_and_stops_the_run_resumably() -> None:
    outcome = classify({"status": "800", "message": "시스템 점검으로 인한 서비스가 중지 중입니다."})
    assert isinstance(outcome, Fatal)
    assert outcome.status == "800"
    assert "OpenDART is under maintenance" in outcome.reason
    assert "same run id" in outcome.reason


def test_http_404_means_a_wrong_base_url_and_names_the_parameter() -> None:
    made = source(base_url="http://127.0.0.1:8080/")
    outcome = made.classify(item(), answer(b"<html>Not Found</html>", status=404))
    assert isinstance(outcome, Fatal)
    assert outcome.status == "http_404"
    assert "base_url" in outcome.reason
    assert "http://127.0.0.1:8080/" in outcome.reason
    assert "/api/" in outcome.reason


def test_unknown_status_names_status_and_message() -> None:
    outcome = classify({"status": "777", "message": "새로운 오류"})
    assert isinstance(outcome, Failed)
    assert "777" in outcome.reason
    assert "새로운 오류" in outcome.reason


@pytest.mark.parametrize(
    ("status", "meaning"),
    [("010", "not registered"), ("011", "suspended"), ("012", "IP"), ("901", "expired")],
)
def test_fatal_reasons_say_which_and_never_carry_the_key(status: str, meaning: str) -> None:
    # Even an answer that echoes the key must not put it in the reason.
    outcome = classify({"status": status, "message": f"bad key {KEY}"})
    assert isinstance(outcome, Fatal)
    assert meaning in outcome.reason
    assert KEY not in outcome.reason


def test_echoed_key_is_masked_in_other_reasons() -> None:
    outcome = classify({"status": "100", "message": f"crtfc_key={KEY} invalid"})
    assert isinstance(outcome, Failed)
    assert KEY not in outcome.reason


def test_ok_with_an_empty_list_is_no_data() -> None:
    outcome = classify({"status": "000", "message": "정상", "list": []})
    assert isinstance(outcome, NoData)
    assert outcome.status == "000"


@pytest.mark.parametrize(
    ("http", "headers", "kind", "retry_after"),
    [
        (429, {}, SlowDown, None),
        (503, {"Retry-After": "7"}, SlowDown, 7.0),
        (503, {}, Transient, None),
        (500, {}, Transient, None),
        (403, {}, Fatal, None),
    ],
)
def test_http_errors_are_read_before_the_body(
    http: int, headers: dict[str, str], kind: type, retry_after: float | None
) -> None:
    outcome = classify({"status": "000", "list": [dart_row()]}, status=http, headers=headers)
    assert isinstance(outcome, kind)
    assert outcome.status == f"http_{http}"
    if retry_after is not None:
        assert isinstance(outcome, SlowDown)
        assert outcome.retry_after == retry_after


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"\xff\xfe\x00garbled",
        b'{"status": "000", "list": [',
        [1, 2, 3],
        "000",
        {"message": "no status"},
        {"status": 0, "list": []},
        {"status": "000", "message": "정상"},
        {"status": "000", "list": {"not": "a list"}},
        {"status": "000", "list": [dart_row(), "not a row"]},
        {"status": "000", "list": [dart_row(thstrm_amount={"nested": 1})]},  # type: ignore[arg-type]
    ],
)
def test_bad_bodies_are_unusable_never_a_crash(body: object) -> None:
    # Unusable: retried like Transient, and a streak of them stops the run (engine's rule).
    outcome = classify(body)
    assert isinstance(outcome, Unusable)
    assert outcome.status == "bad_body"


def test_rows_are_enriched_and_every_value_is_a_string() -> None:
    rows = [dart_row(), dart_row(sj_div="IS", account_nm="매출액", ord="2")]
    outcome = source().classify(item(fs_div="OFS"), answer({"status": "000", "list": rows}))
    assert isinstance(outcome, Ok)
    assert outcome.status == "000"
    stored = outcome.payload
    assert len(stored) == 2
    for sent, kept in zip(rows, stored, strict=True):
        assert {k: kept[k] for k in sent} == sent
        assert kept["fs_div"] == "OFS"
        assert kept["stock_code"] == "005930"
        assert kept["corp_name"] == "삼성전자"
        assert kept["corp_code"] == "00126380"
        assert kept["crawled_at"] == "2024-05-01T09:30:00.123Z"
        assert all(isinstance(v, str) for v in kept.values())


def test_crawled_at_is_utc_whatever_zone_the_clock_reports() -> None:
    seoul = timezone(timedelta(hours=9))
    made = OpenDartSource(api_key=KEY, clock=lambda: datetime(2024, 5, 1, 18, 0, tzinfo=seoul))
    outcome = made.classify(item(), answer({"status": "000", "list": [dart_row()]}))
    assert isinstance(outcome, Ok)
    stamp = datetime.fromisoformat(outcome.payload[0]["crawled_at"])
    assert stamp == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert stamp.utcoffset() == timedelta(0)


def test_unknown_stock_code_and_name_are_empty_strings() -> None:
    bare = item(company=Company(corp_code="00126380"))
    row = dart_row()
    del row["corp_code"]
    row["thstrm_add_amount"] = None  # type: ignore[assignment]
    outcome = source().classify(bare, answer({"status": "000", "list": [row]}))
    assert isinstance(outcome, Ok)
    kept = outcome.payload[0]
    assert (kept["stock_code"], kept["corp_name"]) == ("", "")
    assert kept["corp_code"] == "00126380"
    assert kept["thstrm_add_amount"] == ""


def test_report_codes_are_the_documented_ones() -> None:
    assert REPORT_CODES == {
        "quarter": ("11013", "11012", "11014", "11011"),
        "annual": ("11011",),
    }
