"""The Lambda environment and event: defaults, precedence, strict limits, errors naming the field.

The run layer's part (``asyncrawl.aws.event``) is generic; the OpenDART job's fields are read by
``asyncrawl.jobs.opendart.JOB.plan``. Both are checked here, and fuzzed with hypothesis: any
JSON-ish event is planned or refused with an EventError naming a field, never another error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrawl.aws.event import (
    MAX_DEPTH,
    CrawlEvent,
    EventError,
    HandlerSettings,
    check_json,
    parse_event,
    settings_from_env,
)
from asyncrawl.errors import ConfigError
from asyncrawl.jobs.opendart import JOB, OpenDartSettings, default_years
from asyncrawl.limiter import DEFAULT_RATES, Rate
from asyncrawl.runs.job import Plan
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


def plan(event: Any, environ: dict[str, str] | None = None) -> Plan[Any]:
    """The OpenDART job's plan for ``event`` (COMPANIES_URI unset: no store is read)."""
    config = JOB.configure(environ or env(COMPANIES_URI=None))
    parsed = parse_event(event, JOB)
    return asyncio.run(JOB.plan(parsed.fields, config, None))  # type: ignore[arg-type]


def test_settings_read_every_variable() -> None:
    settings = settings_from_env(
        env(
            DART_BASE_URL="http://127.0.0.1:8080/api/",
            FS_DIV="ofs",
            RATE="100/1m, 5000/1d",
            CONCURRENCY="8",
            MAX_SYNC_SECONDS="120",
            ATTEMPT_TIMEOUT="12.5",
            HEDGE_AFTER="2",
            CRAWL_JOB="opendart",
        )
    )
    assert settings.job_name == "opendart"
    assert settings.s3_bucket == "crawl-bucket"
    assert settings.s3_prefix == "dart/fs"
    assert settings.rates == (Rate(100, 60), Rate(5000, 86400))
    assert settings.concurrency == 8
    assert settings.max_sync_seconds == 120.0
    assert settings.attempt_timeout == 12.5
    assert settings.hedge_after == 2.0
    assert settings.out_uri == "s3://crawl-bucket/dart/fs"
    job = settings.job_config
    assert isinstance(job, OpenDartSettings)
    assert job.crawler_type == "quarter"
    assert job.base_url == "http://127.0.0.1:8080/api/"
    assert job.companies_uri == "s3://lists/companies.csv"
    assert job.years == (2023, 2024)
    assert job.fs_divs == ("OFS",)


def test_settings_defaults_match_the_contract() -> None:
    settings = settings_from_env(
        {"CRAWLER_TYPE": "annual", "S3_BUCKET": "crawl-bucket", "DART_API_KEY": "k" * 40}
    )
    assert settings.job_name == "opendart"
    assert settings.rates == DEFAULT_RATES
    assert settings.concurrency == 16
    assert settings.max_sync_seconds == 240.0
    assert settings.attempt_timeout is None
    assert settings.hedge_after is None
    assert settings.continuation_secret is None
    assert settings.job_config.fs_divs == ("CFS", "OFS")
    assert settings.job_config.years == ()
    assert settings.job_config.companies_uri is None
    assert settings.out_uri == "s3://crawl-bucket"


def test_blank_variables_count_as_unset() -> None:
    # CloudFormation passes an optional parameter nobody filled in as "".
    settings = settings_from_env(env(RATE="", CONCURRENCY=" ", COMPANIES_URI="", HEDGE_AFTER=""))
    assert settings.rates == DEFAULT_RATES
    assert settings.concurrency == 16
    assert settings.hedge_after is None
    assert settings.job_config.companies_uri is None


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
        ({"CONCURRENCY": "100000000000000000000"}, "CONCURRENCY", "whole number"),
        ({"MAX_SYNC_SECONDS": "soon"}, "MAX_SYNC_SECONDS", "seconds"),
        ({"MAX_SYNC_SECONDS": "nan"}, "MAX_SYNC_SECONDS", "seconds"),
        ({"MAX_SYNC_SECONDS": "400"}, "MAX_SYNC_SECONDS", "350"),
        ({"MAX_SYNC_SECONDS": "0"}, "MAX_SYNC_SECONDS", "more than 0"),
        ({"ATTEMPT_TIMEOUT": "-1"}, "ATTEMPT_TIMEOUT", "above 0"),
        ({"HEDGE_AFTER": "inf"}, "HEDGE_AFTER", "seconds"),
        ({"CRAWL_JOB": "nosuchjob"}, "CRAWL_JOB", "no job named 'nosuchjob'"),
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
def test_an_empty_event_is_payload_less(event: object) -> None:
    assert parse_event(event, JOB) == CrawlEvent(payload_less=True)


def test_event_values_override_the_environment() -> None:
    event = {
        "companies": [
            {"corp_code": "00126380", "stock_code": "005930", "corp_name": "삼성전자"},
            {"dart_corp_code": 164779, "stock_code": "660", "dart_corp": "SK하이닉스"},
        ],
        "years": [2024, "2022", 2024],
        "crawler_type": " Annual ",
        "run_id": "backfill-2024.01_a",
    }
    parsed = parse_event(event, JOB)
    assert parsed.run_id == "backfill-2024.01_a"
    assert not parsed.payload_less
    planned = plan(event)
    assert planned.label == "annual"
    assert planned.params["years"] == [2024, 2022]
    assert planned.params["co"] == {
        "00126380": ["005930", "삼성전자"],
        "00164779": ["000660", "SK하이닉스"],
    }
    assert {item.company for item in planned.items} == {
        Company(corp_code="00126380", stock_code="005930", corp_name="삼성전자"),
        Company(corp_code="00164779", stock_code="000660", corp_name="SK하이닉스"),
    }
    assert planned.facts == {"total_companies": 2}


def test_a_step_functions_batch_brings_its_companies_as_items() -> None:
    planned = plan({"Items": [{"corp_code": "00126380"}], "BatchInput": {"any": "thing"}})
    assert planned.facts == {"total_companies": 1}


def test_no_company_list_anywhere_is_a_bad_request() -> None:
    with pytest.raises(EventError) as caught:
        plan({})
    assert caught.value.field == "companies"
    assert "COMPANIES_URI" in str(caught.value)


def test_without_years_anywhere_the_default_years_apply() -> None:
    # The old function needed no years: quarter crawls this and last year (KST), annual last.
    planned = plan(
        {"companies": [{"corp_code": "00126380"}]}, env(CRAWL_YEARS=None, COMPANIES_URI=None)
    )
    assert planned.params["years"] == list(default_years("quarter"))
    new_year_kst = datetime(2025, 12, 31, 15, 30, tzinfo=UTC)  # 00:30 on 1 January 2026 in KST
    assert default_years("quarter", new_year_kst) == (2025, 2026)
    assert default_years("annual", new_year_kst) == (2025,)


next_year = datetime.now(UTC).year + 1
GOOD = {"corp_code": "00126380"}


@pytest.mark.parametrize(
    ("event", "field", "hint"),
    [
        ([1, 2], "event", "JSON object"),
        ("companies.csv", "event", "JSON object"),
        ({"payload": None}, "payload", "unknown event key"),
        ({"Years": [2024], "extra": 1}, "Years", "unknown event keys Years, extra"),
        ({"run_id": "has space"}, "run_id", "A-Z a-z 0-9"),
        ({"run_id": "x" * 65}, "run_id", "1 to 64"),
        ({"continuation": {"run_id": "r"}}, "continuation", "string"),
        # Strict JSON: integers kept exact, bounded depth and size.
        (
            {"companies": [{"corp_code": 100000000000000000000}]},
            "companies[0].corp_code",
            "too large",
        ),
        ({"years": [2**64]}, "years[0]", "too large"),
        ({"companies": [{"corp_code": float("nan")}]}, "companies[0].corp_code", "finite"),
        ({"companies": "x" * 100_000}, "companies", "longer than"),
        ({"run_id": b"raw"}, "run_id", "bytes, not a JSON value"),
    ],
)
def test_bad_events_name_the_field(event: Any, field: str, hint: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(event, JOB)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert hint in str(caught.value)


def test_a_field_nested_300_deep_is_refused_without_recursion() -> None:
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"x": deep}
    with pytest.raises(EventError) as caught:
        parse_event({"companies": [deep]}, JOB)
    assert caught.value.field.startswith("companies[0].x.x")
    assert f"deeper than {MAX_DEPTH}" in str(caught.value)
    # The same 100,000 levels deep: still an EventError, not a RecursionError.
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(EventError):
        check_json({"companies": deep})


@pytest.mark.parametrize(
    ("event", "field", "hint"),
    [
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
        ({"companies": [GOOD], "years": 2024}, "years", "list of years"),
        ({"companies": [GOOD], "years": []}, "years", "non-empty"),
        ({"companies": [GOOD], "years": [2024, "twenty"]}, "years[1]", "not a year"),
        ({"companies": [GOOD], "years": [2024, True]}, "years[1]", "not a year"),
        ({"companies": [GOOD], "years": [2024, 2014]}, "years[1]", "2015"),
        ({"companies": [GOOD], "years": [next_year + 1]}, "years[0]", f"2015..{next_year}"),
        ({"companies": [GOOD], "years": ["99999999999999"]}, "years[0]", "not a year"),
        ({"companies": [GOOD], "crawler_type": "monthly"}, "crawler_type", "annual or quarter"),
        ({"companies": [GOOD], "crawler_type": 1}, "crawler_type", "annual or quarter"),
        ({"Items": "x"}, "Items", "list of objects"),
    ],
)
def test_bad_job_fields_name_the_field(event: Any, field: str, hint: str) -> None:
    with pytest.raises(EventError) as caught:
        plan(event)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert hint in str(caught.value)


def test_a_continuation_is_kept_as_given_for_the_store_to_verify() -> None:
    parsed = parse_event({"continuation": "v2.run-7.abc.def", "run_id": "run-7"}, JOB)
    assert parsed.continuation == "v2.run-7.abc.def"
    assert parsed.run_id == "run-7"


def test_fields_beside_a_continuation_may_repeat_its_plan_only() -> None:
    resumed = JOB.resume(
        {"type": "annual", "years": [2022], "fs": ["CFS"], "co": {}},
        ["00126380/2022/11011/CFS"],
        JOB.configure(env()),
    )
    JOB.check_continuing({"crawler_type": "annual", "years": [2022]}, resumed)
    with pytest.raises(EventError, match="contradicts the continuation") as caught:
        JOB.check_continuing({"crawler_type": "quarter"}, resumed)
    assert caught.value.field == "crawler_type"
    with pytest.raises(EventError, match="contradicts the continuation") as caught:
        JOB.check_continuing({"years": [2023]}, resumed)
    assert caught.value.field == "years"
    with pytest.raises(EventError) as caught:
        JOB.check_continuing({"companies": [GOOD]}, resumed)
    assert caught.value.field == "companies"


# --- fuzzing: every event is planned or refused naming a field --------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["00126380", "2024", "quarter", "annual", "126380", "005930", " 2023 "])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["corp_code", "stock_code", "corp_name", "dart_corp_code", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)
_events = (
    st.dictionaries(
        st.sampled_from(
            ["companies", "years", "crawler_type", "run_id", "Items", "BatchInput", "nope"]
        ),
        _json,
        max_size=4,
    )
    | _json
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_events)
def test_fuzzed_events_are_planned_or_refused_naming_a_field(event: Any) -> None:
    refused: EventError | None = None
    try:
        planned = plan(event)
    except EventError as error:
        refused = error
    if refused is not None:
        assert refused.field
        assert str(refused).startswith(f"{refused.field}: ")
    else:
        assert planned.items


def test_handler_settings_refuse_a_non_bucket() -> None:
    with pytest.raises(ConfigError) as caught:
        HandlerSettings(s3_bucket="ab")
    assert caught.value.field == "S3_BUCKET"
