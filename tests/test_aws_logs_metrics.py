"""JSON log lines without secrets, the EMF record's structure, and the Lambda answer's shape."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from asyncrawl.aws.answer import (
    CONTENT_TYPE,
    MAX_ANSWER_BYTES,
    bad_request,
    crawl_answer,
    fatal,
    make_answer,
)
from asyncrawl.aws.logs import configure_json_logging, log_context, reset_json_logging
from asyncrawl.aws.metrics import emf_record, emit_emf
from asyncrawl.redact import register_secret

SECRET = "logsecret-0123456789abcdef0123456789abcd"

# The units the EMF specification allows (CloudWatch's StandardUnit values).
EMF_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the logger's previous state restored afterwards."""
    logger = logging.getLogger("asyncrawl")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    root_filters = {h: list(h.filters) for h in logging.getLogger().handlers}
    buffer = io.StringIO()
    configure_json_logging(logging.DEBUG, buffer)
    yield buffer
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    for handler, filters in root_filters.items():
        handler.filters[:] = filters


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_record_is_one_json_object_per_line(stream: io.StringIO) -> None:
    log = logging.getLogger("asyncrawl.aws.handler")
    with log_context(run_id="run-1", aws_request_id="req-9"):
        log.info("crawled %d items\nof %s", 3, "삼성전자", extra={"remaining": 2})
    log.warning("outside")
    first, second = lines(stream)
    assert first["level"] == "INFO"
    assert first["logger"] == "asyncrawl.aws.handler"
    assert first["message"] == "crawled 3 items\nof 삼성전자"
    assert first["run_id"] == "run-1"
    assert first["aws_request_id"] == "req-9"
    assert first["remaining"] == 2
    assert first["time"].endswith("+00:00")
    # The context ends with its block: a warm start does not carry the last run's id.
    assert "run_id" not in second
    assert "삼성전자" in stream.getvalue()


def test_configuring_again_does_not_duplicate_lines(stream: io.StringIO) -> None:
    again = io.StringIO()
    configure_json_logging(logging.INFO, again)
    configure_json_logging(logging.INFO, again)
    logging.getLogger("asyncrawl.engine").info("once")
    logging.getLogger("asyncrawl.engine").debug("below the level")
    assert [line["message"] for line in lines(again)] == ["once"]
    assert stream.getvalue() == ""


def test_a_registered_key_never_reaches_a_line(stream: io.StringIO) -> None:
    register_secret(SECRET)
    log = logging.getLogger("asyncrawl.http")
    log.debug("GET https://opendart.fss.or.kr/api/x.json?crtfc_key=%s", SECRET)
    try:
        raise ValueError(f"bad answer for crtfc_key={SECRET}")
    except ValueError:
        log.exception("request failed", extra={"url": f"x?crtfc_key={SECRET}"})
    text = stream.getvalue()
    assert SECRET not in text
    debug, error = lines(stream)
    assert debug["message"].endswith("crtfc_key=***")
    assert error["url"] == "x?crtfc_key=***"
    assert "ValueError: bad answer for crtfc_key=***" in error["exception"]


def test_emf_record_follows_the_specification() -> None:
    record = emf_record(
        crawler_type="quarter",
        ok=230,
        no_data=8,
        failed=2,
        remaining=0,
        requests=251,
        retries=11,
        slowdowns=1,
        fatal=False,
        properties={"run_id": "run-1"},
        timestamp_ms=1_700_000_000_123,
    )
    meta = record["_aws"]
    assert meta["Timestamp"] == 1_700_000_000_123
    (directive,) = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == "asyncrawl"
    # One dimension only: a run id dimension would make a new metric series per run.
    assert directive["Dimensions"] == [["CrawlerType"]]
    assert record["CrawlerType"] == "quarter"
    names = [metric["Name"] for metric in directive["Metrics"]]
    assert len(names) == len(set(names)) <= 100
    for metric in directive["Metrics"]:
        assert set(metric) <= {"Name", "Unit", "StorageResolution"}
        assert metric["Unit"] in EMF_UNITS
        # Every referenced metric is a number at the top level.
        assert type(record[metric["Name"]]) is int
    values = {name: record[name] for name in names}
    assert values == {
        "ItemsOk": 230,
        "ItemsNoData": 8,
        "ItemsFailed": 2,
        "ItemsRemaining": 0,
        "Requests": 251,
        "Retries": 11,
        "SlowDowns": 1,
        "Fatal": 0,
        "BadRequest": 0,
        "AlreadyDone": 0,
    }
    assert record["run_id"] == "run-1"


def test_emf_record_counts_a_fatal_stop() -> None:
    record = emf_record(
        crawler_type="annual",
        ok=0,
        no_data=0,
        failed=0,
        remaining=5,
        requests=1,
        retries=0,
        slowdowns=0,
        fatal=True,
        namespace="crawler/opendart",
    )
    assert record["Fatal"] == 1
    assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "crawler/opendart"
    assert type(record["_aws"]["Timestamp"]) is int


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"ok": -1}, "ItemsOk"), ({"requests": 1.5}, "Requests"), ({"namespace": ""}, "namespace")],
)
def test_emf_record_refuses_what_cloudwatch_would_drop(
    changes: dict[str, Any], message: str
) -> None:
    counts: dict[str, Any] = dict.fromkeys(
        ("ok", "no_data", "failed", "remaining", "requests", "retries", "slowdowns"), 0
    )
    with pytest.raises(ValueError, match=message):
        emf_record(**{"crawler_type": "annual", "fatal": False, **counts, **changes})


def test_emit_emf_writes_the_record_as_one_line() -> None:
    record = emf_record(
        crawler_type="annual",
        ok=1,
        no_data=0,
        failed=0,
        remaining=0,
        requests=1,
        retries=0,
        slowdowns=0,
        fatal=False,
    )
    out = io.StringIO()
    emit_emf(record, out)
    text = out.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert orjson.loads(text) == record


def body(answer: dict[str, Any]) -> dict[str, Any]:
    assert set(answer) == {"statusCode", "headers", "body"}
    assert answer["headers"] == {"Content-Type": CONTENT_TYPE}
    assert isinstance(answer["body"], str)
    parsed = orjson.loads(answer["body"])
    assert isinstance(parsed, dict)
    return parsed


CONTRACT_KEYS = {
    "success",
    "status",
    "message",
    "job",
    "crawler_type",
    "run_id",
    "crawl_result",
    "s3_upload",
    "crawl_time",
    "elapsed_s",
    "continuation",
}
SUMMARY = {"run_id": "run-1", "planned": 3, "ok": 2, "no_data": 0, "failed": [], "remaining": []}


def crawled(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "status_code": 200,
        "status": "finished",
        "success": True,
        "message": "done",
        "job": "opendart",
        "crawler_type": "annual",
        "run_id": "run-1",
        "crawl_result": {**SUMMARY, "no_data": 1},
        "legacy": {"success": True, "total_companies": 1, "s3_bucket": "b"},
        "s3_upload": {"success": True, "message": "2 new object(s)"},
        "elapsed_s": 2.1234,
        "continuation": None,
    }
    fields.update(changes)
    return crawl_answer(**fields)


def test_a_finished_run_answers_200_with_the_old_and_the_new_fields() -> None:
    answer = crawled()
    assert answer["statusCode"] == 200
    parsed = body(answer)
    assert set(parsed) == CONTRACT_KEYS
    assert parsed["success"] is True
    assert parsed["continuation"] is None
    assert parsed["crawl_result"]["no_data"] == 1
    assert parsed["crawl_result"]["total_companies"] == 1
    assert parsed["crawl_result"]["failed_count"] == 0
    assert parsed["crawl_result"]["lists_complete"] is True
    assert parsed["elapsed_s"] == 2.123
    assert len(parsed["crawl_time"]) == len("2024-05-01 09:00:00")


def test_korean_stays_readable() -> None:
    failed = [{"item": "00126380/2024/11011/CFS", "status": "100", "reason": "잘못된 값"}]
    answer = crawled(crawl_result={**SUMMARY, "failed": failed}, success=False)
    # UTF-8, not \\uNNNN escapes.
    assert "잘못된 값" in answer["body"]


def test_a_run_out_of_time_answers_206_with_its_continuation() -> None:
    answer = crawled(
        status_code=206,
        status="partial",
        success=False,
        crawl_result={**SUMMARY, "remaining": ["00126380/2024/11011/CFS"]},
        continuation="v2.abc",
    )
    assert answer["statusCode"] == 206
    parsed = body(answer)
    assert parsed["continuation"] == "v2.abc"
    assert parsed["success"] is False


def test_an_answer_stays_bounded_whatever_the_lists() -> None:
    remaining = [f"{i:08d}/2024/11011/CFS" for i in range(100_000)]
    failed = [{"item": k, "status": "100", "reason": "x" * 2000} for k in remaining[:5000]]
    answer = crawled(
        status_code=206,
        crawl_result={**SUMMARY, "planned": 105_000, "failed": failed, "remaining": remaining},
        continuation="v2." + "a" * 32_000,
    )
    assert len(orjson.dumps(answer)) <= MAX_ANSWER_BYTES
    result = body(answer)["crawl_result"]
    assert result["remaining_count"] == 100_000
    assert result["failed_count"] == 5000
    assert len(result["remaining"]) <= 100
    assert result["lists_complete"] is False


def test_bad_request_and_fatal_keep_the_shape_and_add_a_message() -> None:
    bad = bad_request("years[1]: 2014 is outside 2015..2027", crawler_type="annual")
    assert bad["statusCode"] == 400
    parsed = body(bad)
    assert set(parsed) == CONTRACT_KEYS
    assert parsed["success"] is False
    assert parsed["status"] == "bad_request"
    assert parsed["message"].startswith("years[1]:")
    assert parsed["continuation"] is None

    stop = fatal("OpenDART refused the key (010)", run_id="run-1")
    assert stop["statusCode"] == 500
    parsed = body(stop)
    assert set(parsed) == CONTRACT_KEYS
    assert parsed["run_id"] == "run-1"
    assert parsed["s3_upload"]["success"] is False


def test_an_answer_never_shows_a_registered_key() -> None:
    register_secret(SECRET)
    answer = fatal(f"upstream said: bad key {SECRET}")
    assert SECRET not in answer["body"]
    assert "***" in body(answer)["message"]


def test_make_answer_refuses_status_codes_outside_the_contract() -> None:
    with pytest.raises(ValueError, match="status_code"):
        make_answer(404, {})


def test_reset_returns_records_to_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    buffer = io.StringIO()
    configure_json_logging(logging.INFO, buffer)
    reset_json_logging()
    with caplog.at_level(logging.INFO, logger="asyncrawl"):
        logging.getLogger("asyncrawl.engine").info("seen by caplog")
    assert buffer.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["seen by caplog"]
