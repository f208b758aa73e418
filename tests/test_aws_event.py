"""The Lambda environment and event: defaults, precedence, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asyncrawl.aws.continuation import ContinuationState, encode
from asyncrawl.aws.event import (
    CrawlEvent,
    EventError,
    HandlerSettings,
    parse_event,
    settings_from_env,
)
from asyncrawl.errors import ConfigError
from asyncrawl.limiter import DEFAULT_RATES, Rate
from asyncrawl.sources.opendart.items import Company

BASE_ENV = {
    "CRAWLER_TYPE": "quarter",
    "S3_BUCKET": "crawl-bucket",
    "S3_PREFIX": "/dart/fs/",
    "DART_API_KEY_PARAM": "/crawler/dart-api-key",
    "COMPANIES_URI": "s3://lists/companies.csv",
    "CRAWL_YEARS": "2023, 2024",
}


def env(**changes: str | None) -> dict[str, str]:
    result = dict(BASE_ENV)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


@pytest.fixture
def settings() -> HandlerSettings:
    return settings_from_env(BASE_ENV)


def token(run_id: str = "run-7", crawler_type: str = "annual") -> str:
    return encode(
        ContinuationState(
            run_id=run_id,
            crawler_type=crawler_type,
            years=(2022,),
            fs_divs=("CFS",),
            remaining=("00126380/2022/11011/CFS",),
            companies={"00126380": ("005930", "삼성전자")},
        )
    )


def test_settings_read_every_variable() -> None:
    settings = settings_from_env(
        env(
            DART_BASE_URL="http://127.0.0.1:8080/api/",
            FS_DIV="ofs",
            RATE="100/1m, 5000/1d",
            CONCURRENCY="8",
            MAX_SYNC_SECONDS="120",
        )
    )
    assert settings == HandlerSettings(
        crawler_type="quarter",
        s3_bucket="crawl-bucket",
        s3_prefix="dart/fs",
        api_key_param="/crawler/dart-api-key",
        base_url="http://127.0.0.1:8080/api/",
        companies_uri="s3://lists/companies.csv",
        years=(2023, 2024),
        fs_divs=("OFS",),
        rates=(Rate(100, 60), Rate(5000, 86400)),
        concurrency=8,
        max_sync_seconds=120.0,
    )
    assert settings.out_uri == "s3://crawl-bucket/dart/fs"


def test_settings_defaults_match_the_contract() -> None:
    settings = settings_from_env(
        {"CRAWLER_TYPE": "annual", "S3_BUCKET": "crawl-bucket", "DART_API_KEY": "k" * 40}
    )
    assert settings.fs_divs == ("CFS", "OFS")
    assert settings.rates == DEFAULT_RATES
    assert settings.concurrency == 16
    assert settings.max_sync_seconds == 240.0
    assert settings.api_key_param is None
    assert settings.years == ()
    assert settings.companies_uri is None
    assert settings.out_uri == "s3://crawl-bucket"


def test_blank_variables_count_as_unset() -> None:
    # CloudFormation passes an optional parameter nobody filled in as "".
    settings = settings_from_env(env(RATE="", CONCURRENCY=" ", COMPANIES_URI=""))
    assert settings.rates == DEFAULT_RATES
    assert settings.concurrency == 16
    assert settings.companies_uri is None


@pytest.mark.parametrize(
    ("changes", "variable", "hint"),
    [
        ({"CRAWLER_TYPE": None}, "CRAWLER_TYPE", "annual or quarter"),
        ({"CRAWLER_TYPE": "monthly"}, "CRAWLER_TYPE", "not a crawler type"),
        ({"S3_BUCKET": None}, "S3_BUCKET", "is not set"),
        ({"S3_BUCKET": "s3://bucket/prefix"}, "S3_BUCKET", "S3_PREFIX"),
        ({"DART_API_KEY_PARAM": None}, "DART_API_KEY_PARAM", "DART_API_KEY"),
        ({"DART_BASE_URL": "opendart.fss.or.kr"}, "DART_BASE_URL", "http"),
        ({"COMPANIES_URI": "lists/companies.csv"}, "COMPANIES_URI", "s3://bucket/"),
        ({"CRAWL_YEARS": "2023,twenty"}, "CRAWL_YEARS", "not a year"),
        ({"CRAWL_YEARS": "2014"}, "CRAWL_YEARS", "2015"),
        ({"FS_DIV": "CFS,XFS"}, "FS_DIV", "CFS"),
        ({"RATE": "900 per minute"}, "RATE", "N/DURATION"),
        ({"CONCURRENCY": "many"}, "CONCURRENCY", "whole number"),
        ({"CONCURRENCY": "0"}, "CONCURRENCY", "1.."),
        ({"MAX_SYNC_SECONDS": "soon"}, "MAX_SYNC_SECONDS", "seconds"),
        ({"MAX_SYNC_SECONDS": "400"}, "MAX_SYNC_SECONDS", "350"),
        ({"MAX_SYNC_SECONDS": "0"}, "MAX_SYNC_SECONDS", "more than 0"),
    ],
)
def test_bad_environment_names_the_variable_and_the_fix(
    changes: dict[str, str | None], variable: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env(env(**changes))
    assert caught.value.field == variable
    assert hint in str(caught.value)
    assert not isinstance(caught.value, EventError)


def test_missing_key_names_both_variables() -> None:
    with pytest.raises(ConfigError, match="DART_API_KEY_PARAM nor DART_API_KEY"):
        settings_from_env(env(DART_API_KEY_PARAM=None))


@pytest.mark.parametrize("event", [None, {}, {"years": None, "companies": None}])
def test_an_empty_event_takes_everything_from_the_environment(
    event: object, settings: HandlerSettings
) -> None:
    assert parse_event(event, settings) == CrawlEvent(
        crawler_type="quarter",
        years=(2023, 2024),
        fs_divs=("CFS", "OFS"),
        companies_uri="s3://lists/companies.csv",
    )


def test_event_values_override_the_environment(settings: HandlerSettings) -> None:
    event = {
        "companies": [
            {"corp_code": "00126380", "stock_code": "005930", "corp_name": "삼성전자"},
            {"dart_corp_code": 164779, "stock_code": "660", "dart_corp": "SK하이닉스"},
        ],
        "years": [2024, "2022", 2024],
        "crawler_type": " Annual ",
        "run_id": "backfill-2024.01_a",
    }
    parsed = parse_event(event, settings)
    assert parsed == CrawlEvent(
        crawler_type="annual",
        years=(2024, 2022),
        fs_divs=("CFS", "OFS"),
        run_id="backfill-2024.01_a",
        companies=(
            Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자"),
            Company(corp_code="00164779", stock_code="000660", corp_name="SK하이닉스"),
        ),
    )
    # The event's list replaces the environment's: no second list is loaded.
    assert parsed.companies_uri is None


def test_no_company_list_anywhere_is_a_bad_request() -> None:
    settings = settings_from_env(env(COMPANIES_URI=None))
    with pytest.raises(EventError) as caught:
        parse_event({}, settings)
    assert caught.value.field == "companies"
    assert "COMPANIES_URI" in str(caught.value)


def test_no_years_anywhere_is_a_bad_request() -> None:
    settings = settings_from_env(env(CRAWL_YEARS=None))
    with pytest.raises(EventError, match="years: no years"):
        parse_event({}, settings)
    assert parse_event({"years": [2024]}, settings).years == (2024,)


next_year = datetime.now(UTC).year + 1
GOOD = {"corp_code": "00126380"}


@pytest.mark.parametrize(
    ("event", "field", "hint"),
    [
        ([1, 2], "event", "JSON object"),
        ("companies.csv", "event", "JSON object"),
        ({"payload": None}, "payload", "unknown event key"),
        ({"Years": [2024], "extra": 1}, "Years", "unknown event keys Years, extra"),
        ({"companies": "00126380"}, "companies", "list of objects"),
        ({"companies": []}, "companies", "is empty"),
        ({"companies": [GOOD, "00164779"]}, "companies[1]", "must be an object"),
        (
            {"companies": [GOOD, GOOD, GOOD, {"corp_code": "1234-567"}]},
            "companies[3].corp_code",
            "8-digit",
        ),
        ({"companies": [GOOD, {"stock_code": "005930"}]}, "companies[1].corp_code", "missing"),
        (
            {"companies": [{"corp_code": "x"}, GOOD, {"corp_code": "y"}]},
            "companies[0].corp_code",
            "also wrong: companies[2].corp_code",
        ),
        (
            {"companies": [{"corp_code": 1, "stock_code": "A005930"}]},
            "companies[0].stock_code",
            "drop the leading 'A'",
        ),
        ({"years": 2024}, "years", "list of years"),
        ({"years": []}, "years", "is empty"),
        ({"years": [2024, "twenty"]}, "years[1]", "not a year"),
        ({"years": [2024, True]}, "years[1]", "not a year"),
        ({"years": [2024, 2014]}, "years[1]", "2015"),
        ({"years": [next_year + 1]}, "years[0]", f"2015..{next_year}"),
        ({"crawler_type": "monthly"}, "crawler_type", "annual or quarter"),
        ({"crawler_type": 1}, "crawler_type", "annual or quarter"),
        ({"run_id": "has space"}, "run_id", "A-Z a-z 0-9"),
        ({"run_id": "x" * 65}, "run_id", "1 to 64"),
        ({"continuation": "v1.garbage!"}, "continuation", "altered"),
        ({"continuation": {"run_id": "r"}}, "continuation", "string"),
    ],
)
def test_bad_events_name_the_field(
    event: Any, field: str, hint: str, settings: HandlerSettings
) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(event, settings)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert hint in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_a_continuation_carries_the_run(settings: HandlerSettings) -> None:
    parsed = parse_event({"continuation": token()}, settings)
    assert parsed.run_id == "run-7"
    assert parsed.crawler_type == "annual"
    assert parsed.years == (2022,)
    assert parsed.fs_divs == ("CFS",)
    assert parsed.continuation is not None
    assert parsed.continuation.remaining == ("00126380/2022/11011/CFS",)
    assert parsed.continuation.companies == {"00126380": ("005930", "삼성전자")}
    # The remaining work replaces every company list: nothing is planned twice.
    assert parsed.companies is None
    assert parsed.companies_uri is None


def test_a_continuation_accepts_the_same_values_repeated(settings: HandlerSettings) -> None:
    event = {"continuation": token(), "run_id": "run-7", "crawler_type": "annual", "years": [2022]}
    assert parse_event(event, settings).run_id == "run-7"


def test_a_continuation_of_another_run_is_refused(settings: HandlerSettings) -> None:
    with pytest.raises(EventError, match="continuation: belongs to run run-7, not run-8"):
        parse_event({"continuation": token(), "run_id": "run-8"}, settings)


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"crawler_type": "quarter"}, "crawler_type"), ({"years": [2023]}, "years")],
)
def test_values_contradicting_the_continuation_are_refused(
    extra: dict[str, Any], field: str, settings: HandlerSettings
) -> None:
    with pytest.raises(EventError, match="contradicts the continuation") as caught:
        parse_event({"continuation": token(), **extra}, settings)
    assert caught.value.field == field
