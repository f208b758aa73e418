"""The Lambda handler over the generic run layer: a second job, signed tokens, bounded answers,
leases, replays, payload-less runs and the old answer's fields.

Same set-up as test_lambda_handler.py (the handler runs its own event loop; servers run on a
loop in a background thread; moto's S3 on loopback).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncrawl.aws.handler as handler_module
from asyncrawl.aws.answer import MAX_ANSWER_BYTES, kst_day
from asyncrawl.aws.answers import crawl_result
from asyncrawl.aws.handler import handler, reset_cold_start_cache
from asyncrawl.errors import AsyncrawlError
from asyncrawl.http import Request, Response
from asyncrawl.outcomes import NoData, Ok, Outcome, Transient, classify_http_status
from asyncrawl.results import ItemResult
from asyncrawl.runs.continuation import ContinuationState, encode
from asyncrawl.runs.job import Plan, register_job, unregister_job
from asyncrawl.runs.merge import invariant_holds, merge_summaries
from asyncrawl.sinks.base import BlobStore
from asyncrawl.testing.faults import FaultPlan, FaultServer
from asyncrawl.testing.opendart import DEMO_COMPANIES
from asyncrawl.testing.proxy import FaultProxy
from test_lambda_handler import (  # the same fixtures and helpers
    API_KEY,
    BUCKET,
    PREFIX,
    FakeContext,
    StandInThread,
    body_of,
    cold_start,
    emf_lines,
    set_env,
    standin,
)

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]
__all__ = ["cold_start", "standin"]  # fixtures used by name

OLD_BODY_KEYS = {"success", "crawler_type", "crawl_result", "s3_upload", "crawl_time"}
OLD_RESULT_KEYS = {"success", "total_companies", "message", "s3_bucket"}


def companies(count: int) -> list[dict[str, str]]:
    return [dict(c) for c in DEMO_COMPANIES[:count]]


def s3_json(moto_s3: MotoS3, key: str) -> Any:
    return json.loads(moto_s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def follow(first: dict[str, Any], context: FakeContext) -> list[tuple[int, dict[str, Any]]]:
    """Invoke as the safe caller does until the answer is not 206."""
    answers = [(first["statusCode"], body_of(first))]
    while answers[-1][0] == 206:
        assert len(answers) < 40, "the run never finished"
        body = answers[-1][1]
        answer = handler({"run_id": body["run_id"], "continuation": body["continuation"]}, context)
        answers.append((answer["statusCode"], body_of(answer)))
    return answers


# --- a second job, registered by a test, through the unchanged handler --------------------------


class PageSource:
    """Page ``n`` of a JSON API on the fault server; every 7th page has no data."""

    def __init__(self, base: str) -> None:
        self.base = base

    def key(self, item: int) -> str:
        return f"page-{item}"

    def request(self, item: int) -> Request:
        return Request(url=f"{self.base}/pages", params={"n": str(item)})

    def classify(self, item: int, response: Response) -> Outcome:
        generic = classify_http_status(response.status, response.headers)
        if generic is not None:
            return generic
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return Transient(reason="not JSON", status="bad_body")
        if item % 7 == 0:
            return NoData()
        return Ok(payload=[{"page": item, "item": str(body.get("item"))}])

    # The ItemCodec protocol: how a page survives a hand-over when it cannot be rebuilt.
    def dump_item(self, item: int) -> Any:
        return {"n": item}

    def load_item(self, data: Any) -> int:
        if not isinstance(data, dict) or type(data.get("n")) is not int:
            raise ValueError("not a page")
        return int(data["n"])


class PagesJob:
    """Pages 1..count of the API at ``PAGES_BASE_URL``: a job asyncrawl.aws knows nothing of."""

    name = "pages"
    event_keys: tuple[str, ...] = ("count",)

    def configure(self, environ: Mapping[str, str]) -> str:
        return environ["PAGES_BASE_URL"]

    def label(self, config: Any) -> str:
        return "pages"

    async def plan(self, event: Mapping[str, Any], config: Any, store: BlobStore) -> Plan[int]:
        count = event.get("count", 40)
        return Plan(items=list(range(1, count + 1)), params={"count": count}, label="pages")

    def resume(self, params: Mapping[str, Any], keys: Sequence[str], config: Any) -> Plan[int]:
        return Plan(
            items=[int(k.removeprefix("page-")) for k in keys], params=params, label="pages"
        )

    def token_params(self, plan: Plan[int], remaining_keys: Sequence[str]) -> Mapping[str, Any]:
        return dict(plan.params)

    def open_source(self, config: Any) -> PageSource:
        return PageSource(config)

    def data_key(self, result: ItemResult[Any]) -> str:
        return f"data/pages/{result.key}.jsonl.gz"

    def describe(self, plan: Plan[int], summary: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"message": f"pages: ok {summary.get('ok')}"}


class FaultThread(StandInThread):
    """A FaultServer on its own loop (StandInThread's start/stop/arrivals fit it as well)."""


@pytest.fixture
def pages_job() -> Iterator[PagesJob]:
    job = PagesJob()
    register_job(job)
    yield job
    unregister_job(job.name)


@pytest.fixture
def fault_server() -> Iterator[Callable[[FaultPlan], FaultThread]]:
    started: list[FaultThread] = []

    def start(plan: FaultPlan) -> FaultThread:
        server = FaultThread(FaultServer(plan))  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def pages_env(monkeypatch: pytest.MonkeyPatch, server: FaultThread, **more: str | None) -> None:
    more = {"CRAWL_JOB": "pages", **more}
    set_env(
        monkeypatch,
        PAGES_BASE_URL=server.server.url,
        CRAWLER_TYPE=None,
        DART_API_KEY=None,
        CRAWL_YEARS=None,
        **more,
    )


def test_a_second_job_runs_through_the_handler_with_a_206_and_a_resume(
    moto_s3: MotoS3,
    pages_job: PagesJob,
    fault_server: Callable[[FaultPlan], FaultThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_s3.create_bucket(BUCKET, versioned=True)
    server = fault_server(FaultPlan(seed=5, latency=0.2, p_503=0.05))
    pages_env(monkeypatch, server, MAX_SYNC_SECONDS="4", CONCURRENCY="2")

    answers = follow(handler({"count": 60}, FakeContext()), FakeContext())

    codes = [code for code, _ in answers]
    assert codes[0] == 206
    assert codes[-1] == 200
    bodies = [body for _, body in answers]
    assert all(b["job"] == "pages" and b["crawler_type"] == "pages" for b in bodies)
    parts = [b["crawl_result"] for b in bodies]
    merged = merge_summaries(parts)
    assert merged["planned"] == 60
    assert merged["ok"] + merged["no_data"] == 60
    assert invariant_holds(merged)
    stored = moto_s3.keys(f"{PREFIX}/data/pages/", bucket=BUCKET)
    assert len(stored) == merged["ok"] == 60 - len(range(7, 61, 7))
    for key in stored:
        assert len(moto_s3.versions(key, bucket=BUCKET)) == 1
    # A page is asked for again only when an invocation abandoned it in flight at its
    # deadline (at most CONCURRENCY per hand-over): nothing finished is fetched again.
    answered = [a.item for a in server.arrivals() if a.fault is None]
    assert len(set(answered)) == 60
    assert len(answered) - len(set(answered)) <= 2 * (len(answers) - 1)
    summary = s3_json(moto_s3, f"{PREFIX}/_meta/runs/{bodies[0]['run_id']}/summary.json")
    assert summary["ok"] == 60 - 8
    assert summary["invocations"] == len(answers)


def test_items_carried_whole_in_a_token_come_back_through_the_source_codec(
    moto_s3: MotoS3,
    pages_job: PagesJob,
    fault_server: Callable[[FaultPlan], FaultThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Discovered work cannot be rebuilt by the job from a key: the token carries it in the
    # Source's own form (dump_item), and the next part reads it back (load_item).
    moto_s3.create_bucket(BUCKET)
    server = fault_server(FaultPlan(latency=0.0))
    pages_env(monkeypatch, server)
    store_key(moto_s3, "carried")
    token = encode(
        ContinuationState(
            run_id="carried",
            job="pages",
            params={"count": 2},
            remaining=("page-1",),
            items={"page-500": {"n": 500}, "page-501": {"n": 501}},
            totals={"planned": 5, "ok": 2},
        ),
        TEST_KEY,
    )
    answer = handler({"continuation": token}, FakeContext())
    body = body_of(answer)
    assert answer["statusCode"] == 200, body
    assert sorted(a.item for a in server.arrivals()) == [
        "/pages?n=1",
        "/pages?n=500",
        "/pages?n=501",
    ]
    bad = encode(
        ContinuationState(run_id="carried", job="pages", items={"page-9": {"n": "nine"}}),
        TEST_KEY,
    )
    refused = handler({"continuation": bad}, FakeContext())
    assert refused["statusCode"] == 400
    assert body_of(refused)["message"].startswith("continuation: item page-9 does not load")


class LinkSource(PageSource):
    """Page ``n`` links to pages ``2n``, ``2n + 1`` and ``n + 1`` (duplicates and cycles) up to
    :data:`LAST_PAGE`: everything after page 1 is discovered while crawling."""

    def classify(self, item: int, response: Response) -> Outcome:
        outcome = super().classify(item, response)
        found = tuple(n for n in (2 * item, 2 * item + 1, item + 1, 1) if n <= LAST_PAGE)
        if isinstance(outcome, Ok):
            return Ok(payload=outcome.payload, follow=found)
        if isinstance(outcome, NoData):
            return NoData(follow=found)
        return outcome


LAST_PAGE = 90


class LinksJob(PagesJob):
    """Start at page 1; the rest is discovered (and carried in tokens by the ItemCodec)."""

    name = "links"

    async def plan(self, event: Mapping[str, Any], config: Any, store: BlobStore) -> Plan[int]:
        return Plan(items=[1], params={}, label="links")

    def open_source(self, config: Any) -> LinkSource:
        return LinkSource(config)


def test_discovered_work_is_handed_over_in_the_token_and_finished(
    moto_s3: MotoS3,
    fault_server: Callable[[FaultPlan], FaultThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_s3.create_bucket(BUCKET, versioned=True)
    job = LinksJob()
    register_job(job)
    try:
        # Generous budgets: opening an S3 client alone can take seconds on a loaded machine.
        server = fault_server(FaultPlan(seed=2, latency=0.25))
        pages_env(monkeypatch, server, CRAWL_JOB="links", MAX_SYNC_SECONDS="6", CONCURRENCY="2")
        answers = follow(handler({"count": 1}, FakeContext()), FakeContext())
    finally:
        unregister_job(job.name)

    codes = [code for code, _ in answers]
    assert codes[0] == 206, answers[0][1]["message"]
    assert codes[-1] == 200, answers[-1][1]["message"]
    parts = [body["crawl_result"] for _, body in answers]
    merged = merge_summaries(parts)
    assert invariant_holds(merged)
    # Each page finished once; a page rediscovered in a later part counts as already done.
    assert merged["ok"] + merged["no_data"] == LAST_PAGE
    assert merged["duplicates"] > 0
    stored = moto_s3.keys(f"{PREFIX}/data/pages/", bucket=BUCKET)
    assert len(stored) == LAST_PAGE - len(range(7, LAST_PAGE + 1, 7))
    for key in stored:
        assert len(moto_s3.versions(key, bucket=BUCKET)) == 1
    # Each page asked for once, but for attempts abandoned in flight at a hand-over.
    asked = [a.item for a in server.arrivals()]
    assert len(set(asked)) == LAST_PAGE
    assert len(asked) - LAST_PAGE <= 2 * (len(answers) - 1)


# --- signed tokens through the handler --------------------------------------------------------

TEST_KEY = b"t" * 32


def store_key(moto_s3: MotoS3, run_id: str, key: bytes = TEST_KEY) -> None:
    moto_s3.client().put_object(
        Bucket=BUCKET, Key=f"{PREFIX}/_meta/runs/{run_id}/token.key", Body=key
    )


def test_forged_and_altered_tokens_answer_400(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.25))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="4", CONCURRENCY="1")
    first = body_of(handler({"companies": companies(4)}, FakeContext()))
    token, run_id = first["continuation"], first["run_id"]
    assert token is not None, first["message"]
    before = len(server.arrivals())

    state = {
        "run_id": run_id,
        "job": "opendart",
        "params": {"type": "quarter", "years": [2023], "fs": ["CFS"], "co": {}},
        "remaining": ("00126380/2023/11011/CFS",),
        "totals": {"planned": 5, "ok": 1000},
    }
    forged = encode(ContinuationState(**state), b"f" * 32)  # right shape, wrong key
    stranger = encode(ContinuationState(**{**state, "run_id": "no-such-run"}), b"f" * 32)
    altered = token[:-60] + ("A" if token[-60] != "A" else "B") + token[-59:]
    for bad, hint in ((forged, "signature"), (stranger, "no signing key"), (altered, "")):
        answer = handler({"continuation": bad}, FakeContext())
        assert answer["statusCode"] == 400, answer["body"]
        message = body_of(answer)["message"]
        assert message.startswith("continuation: "), message
        assert hint in message
        assert "Traceback" not in answer["body"]
    assert len(server.arrivals()) == before  # nothing was crawled for them
    summary = s3_json(moto_s3, f"{PREFIX}/_meta/runs/{run_id}/summary.json")
    assert summary["ok"] <= summary["planned"]


def test_a_huge_integer_and_a_deep_event_answer_400_with_a_metric(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/")
    deep: Any = "x"
    for _ in range(300):
        deep = {"x": deep}
    events = [
        ({"companies": [{"corp_code": 100000000000000000000}]}, "companies[0].corp_code"),
        ({"companies": [{"corp_code": deep}]}, "companies[0].corp_code.x"),
    ]
    for event, field in events:
        answer = handler(event, FakeContext())
        assert answer["statusCode"] == 400
        assert body_of(answer)["message"].startswith(field)
    out = capsys.readouterr().out
    records = emf_lines(out)
    assert [r["BadRequest"] for r in records] == [1, 1]
    assert [r["Fatal"] for r in records] == [0, 0]
    assert out.count('"message":"invocation answered 400') == 2


# --- answers inside every caller's limits --------------------------------------------------------


def test_the_answer_stays_under_256_kib_with_30_000_items_remaining(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.2))
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        CRAWL_YEARS="2022,2023,2024",
        FS_DIV="CFS",
        MAX_SYNC_SECONDS="5",
        CONCURRENCY="2",
    )
    rows = [
        {"corp_code": f"{10_000_000 + 7919 * i:08d}", "corp_name": f"아주긴회사이름{i}" * 3}
        for i in range(3000)
    ]
    answer = handler({"companies": rows}, FakeContext())

    size = len(json.dumps(answer).encode())
    assert size < 256 * 1024
    assert size <= MAX_ANSWER_BYTES
    body = body_of(answer)
    assert answer["statusCode"] == 206
    result = body["crawl_result"]
    assert result["planned"] == 36_000
    assert result["remaining_count"] > 30_000
    assert len(result["remaining"]) <= 100
    assert result["lists_complete"] is False
    assert invariant_holds(result)
    assert result["summary_uri"].endswith(f"/_meta/runs/{body['run_id']}/summary.json")
    full = s3_json(moto_s3, body["s3_upload"]["summary_key"])
    assert len(full["remaining"]) == result["remaining_count"]
    # The boto3-only caller reads the bounded form and merges it.
    part = crawl_result(206, body)
    merged = merge_summaries([part])
    assert merged["remaining_count"] == result["remaining_count"]


# --- one invocation per run at a time ------------------------------------------------------------


def test_a_run_leased_by_another_invocation_answers_busy(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.2))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="5", CONCURRENCY="1")
    results: dict[str, dict[str, Any]] = {}

    def first() -> None:
        results["first"] = handler({"companies": companies(3), "run_id": "shared"}, FakeContext())

    thread = threading.Thread(target=first)
    thread.start()
    waited = 0
    while not server.arrivals() and waited < 400:  # the first holds the lease once it crawls
        time.sleep(0.025)
        waited += 1
    second = handler({"companies": companies(3), "run_id": "shared"}, FakeContext())
    thread.join(timeout=60)

    assert second["statusCode"] == 500
    body = body_of(second)
    assert body["status"] == "busy"
    assert "run shared is busy" in body["message"]
    assert results["first"]["statusCode"] in (200, 206)
    # Every item was asked for once: the second invocation crawled nothing.
    answered = [a.item for a in server.arrivals()]
    assert len(answered) == len(set(answered))
    # Released when done: the run can continue.
    again = handler({"companies": companies(3), "run_id": "shared"}, FakeContext())
    assert again["statusCode"] in (200, 206)


def test_replaying_the_token_of_a_finished_run_says_nothing_new_was_done(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.25))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="4", CONCURRENCY="2")
    answers = follow(handler({"companies": companies(5)}, FakeContext()), FakeContext())
    assert answers[-1][0] == 200
    last_token = answers[-2][1]["continuation"]
    fetched = len(server.arrivals())

    replay = handler({"continuation": last_token}, FakeContext())

    body = body_of(replay)
    assert replay["statusCode"] == 200
    result = body["crawl_result"]
    assert result["ok"] == result["no_data"] == result["requests"] == 0
    assert result["already_done"] == result["planned"] > 0
    assert body["s3_upload"]["objects_written"] == 0
    assert "nothing new" in body["message"]
    assert len(server.arrivals()) == fetched


# --- the unchanged caller's payload=None ---------------------------------------------------------


def test_a_payload_less_run_too_big_for_one_invocation_fails_then_resumes_the_same_run(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    moto_s3.client().put_object(
        Bucket=BUCKET,
        Key="lists/companies.csv",
        Body=(
            "corp_code,corp_name\n"
            + "".join(f"{c['corp_code']},{c['corp_name']}\n" for c in companies(6))
        ).encode(),
    )
    server = standin(plan=FaultPlan(latency=0.25))
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        COMPANIES_URI=f"s3://{BUCKET}/lists/companies.csv",
        MAX_SYNC_SECONDS="4",
        CONCURRENCY="2",
    )
    expected_run = f"opendart-quarter-{kst_day(datetime.now(UTC))}"
    answers = []
    for _ in range(20):
        answer = handler(None, FakeContext())
        answers.append((answer["statusCode"], body_of(answer)))
        if answer["statusCode"] == 200:
            break
    codes = [code for code, _ in answers]
    assert codes[0] == 500
    assert codes[-1] == 200
    assert set(codes[:-1]) == {500}
    for _, body in answers:
        assert body["run_id"] == expected_run
    for _, body in answers[:-1]:
        assert body["status"] == "incomplete"
        assert body["success"] is False
        left = body["crawl_result"]["remaining_count"]
        assert f"incomplete: {left} item(s) remain" in body["message"]
        assert body["crawl_result"]["success"] is False
    # Each retry resumed: what earlier invocations finished counts as already done.
    assert answers[1][1]["crawl_result"]["already_done"] > 0
    final = answers[-1][1]
    assert final["success"] is True
    assert final["crawl_result"]["planned"] == 6 * 4 * 2
    answered = [a.item for a in server.arrivals() if a.fault is None]
    assert len(set(answered)) == 48
    assert len(answered) - len(set(answered)) <= 2 * len(answers)  # only abandoned attempts


def test_the_body_keeps_the_old_answer_s_fields(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin()
    set_env(monkeypatch, DART_BASE_URL=server.base_url, CRAWLER_TYPE="annual")
    answer = handler({"companies": companies(3)}, FakeContext())

    body = body_of(answer)
    assert answer["statusCode"] == 200
    assert set(body) >= OLD_BODY_KEYS | {"elapsed_s", "run_id", "continuation", "job"}
    assert body["success"] is True
    assert body["crawler_type"] == "annual"
    result = body["crawl_result"]
    assert set(result) >= OLD_RESULT_KEYS
    assert result["success"] is True
    assert result["total_companies"] == 3
    assert result["s3_bucket"] == BUCKET
    assert "연간 재무제표 크롤링 완료: 3개 기업" in result["message"]
    assert "annual statements crawl finished: 3 companies" in result["message"]
    assert f"ok {result['ok']}" in result["message"]
    assert body["s3_upload"]["success"] is True
    assert str(result["ok"]) in body["s3_upload"]["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body["crawl_time"])
    assert isinstance(body["elapsed_s"], float)


def test_500_messages_name_the_environment_variable_not_a_flag(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/?debug=1")
    answer = handler({"companies": companies(1)}, FakeContext())

    assert answer["statusCode"] == 500
    message = body_of(answer)["message"]
    assert "DART_BASE_URL" in message
    assert "--base-url" not in message
    assert API_KEY not in answer["body"]


# --- storage that stops answering ---------------------------------------------------------------


class ProxyThread(StandInThread):
    """A FaultProxy on its own loop (the start/close calls fit it as well)."""


@pytest.fixture
def stalling_s3(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """moto behind a FaultProxy on its own loop; the function's S3 endpoint is the proxy."""
    host, _, port = moto_s3.endpoint.removeprefix("http://").partition(":")
    proxy = FaultProxy(host, int(port))
    thread = ProxyThread(proxy)  # type: ignore[arg-type]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    yield proxy
    proxy.mode = "pass"
    thread.close()


def answer_within(event: object, limit_s: float) -> dict[str, Any]:
    """The handler's answer, run in a thread; fails (instead of hanging) past ``limit_s``."""
    answers: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: answers.append(handler(event, FakeContext())))
    thread.start()
    thread.join(timeout=limit_s)
    assert answers, f"no answer within {limit_s} s: the budget did not hold"
    return answers[0]


@pytest.mark.parametrize("stall_after", [0, 6], ids=["hung-from-the-start", "stalls-mid-run"])
def test_a_hung_s3_still_gets_an_answer_naming_s3(
    stall_after: int,
    moto_s3: MotoS3,
    stalling_s3: FaultProxy,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET)
    if stall_after:
        stalling_s3.stall_after_requests = stall_after
    else:
        stalling_s3.mode = "stall"
    server = standin(plan=FaultPlan(latency=0.05))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="4", CONCURRENCY="2")

    # Round 1 waited out botocore's 60 s x 5 attempts per call; the budget is 4 s.
    answer = answer_within({"companies": companies(4)}, limit_s=60)

    body = body_of(answer)
    assert answer["statusCode"] in (206, 500), body
    if answer["statusCode"] == 500:
        assert "S3" in body["message"]
        assert f"s3://{BUCKET}/{PREFIX}" in body["message"]
    out = capsys.readouterr().out
    assert API_KEY not in answer["body"] + out
    assert "Traceback" not in answer["body"]
    assert emf_lines(out)


# --- fuzzing the handler's event path ----------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["00126380", "2024", "quarter", "126380", "v2.x.y.z", "run-1"])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["corp_code", "stock_code", "x", "n"]), inner, max_size=3)
    ),
    max_leaves=12,
)
_fuzz_events = (
    st.dictionaries(
        st.sampled_from(
            ["companies", "years", "crawler_type", "run_id", "continuation", "Items", "zzz"]
        ),
        _values,
        max_size=4,
    )
    | _values
)


class _Reached(AsyncrawlError):
    """The event got past every check and the plan: the crawl would start here."""


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(event=_fuzz_events)
def test_fuzzed_events_answer_400_naming_a_field_or_reach_the_crawl(
    event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(
        monkeypatch,
        DART_BASE_URL="http://127.0.0.1:9/api/",
        CONTINUATION_SECRET="fuzz-secret-0123456789-0123456789",
    )

    async def reached(*args: Any, **kwargs: Any) -> Any:
        raise _Reached("reached the crawl")

    monkeypatch.setattr(handler_module, "run_resumable", reached)
    reset_cold_start_cache()
    answer = handler(event, FakeContext())
    body = body_of(answer)
    assert "Traceback" not in answer["body"]
    if answer["statusCode"] == 400:
        field = body["message"].split(":", 1)[0]
        assert field, body["message"]
        assert " " not in field or field.startswith("continuation"), body["message"]
    else:
        assert answer["statusCode"] == 500, body
        # Past the event checks: the run would start (or a token's store lookup failed).
        assert "reached the crawl" in body["message"] or "S3" in body["message"], body


# --- PLAN_MODE=filings: the filing search, then only the filed reports ---------------------------


def test_plan_mode_filings_crawls_only_filed_reports_over_parts_and_records_them(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    # Mid-2024: 2023 filed in full, 2024 only its first quarter.
    server = standin(plan=FaultPlan(latency=0.25), filed_until="20240601")
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        PLAN_MODE="filings",
        CRAWL_YEARS="2023,2024",
        MAX_SYNC_SECONDS="4",
        CONCURRENCY="2",
    )
    answers = follow(handler({"companies": companies(4)}, FakeContext()), FakeContext())
    statuses = [status for status, _ in answers]
    assert statuses[0] == 206, answers[0][1]["message"]  # more than one part
    assert statuses[-1] == 200, answers[-1][1]["message"]

    arrivals = server.arrivals()
    listed = [a for a in arrivals if a.path.endswith("/list.json")]
    asked = [a.item for a in arrivals if a.path.endswith("/fnlttSinglAcntAll.json")]
    assert len(listed) == 4  # once per company, in the first part only
    filed = {
        f"{c['corp_code']}/{year}/{reprt}"
        for c in DEMO_COMPANIES[:4]
        for year in (2023, 2024)
        for reprt in ("11013", "11012", "11014", "11011")
        if server.server.report_filed(c["corp_code"], year, reprt)
    }
    assert {item.rsplit("/", 1)[0] for item in asked} == filed
    assert len(asked) == len(set(asked)) == 2 * len(filed) < 64  # 64 blind
    summary = s3_json(moto_s3, f"{PREFIX}/_meta/runs/{answers[0][1]['run_id']}/summary.json")
    assert summary["planned"] == 2 * len(filed)
    # The last part recorded every fetched report's filing: a new run asks list.json only.
    listed = moto_s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/_meta/opendart/")
    (generation,) = [o["Key"] for o in listed["Contents"] if "/rcept_no/" in o["Key"]]
    ledger = s3_json(moto_s3, generation)
    assert set(ledger) == set(asked)
    again = handler({"companies": companies(4)}, FakeContext())
    assert again["statusCode"] == 200, again["body"]
    later = server.arrivals()[len(arrivals) :]
    assert {a.path.rsplit("/", 1)[1] for a in later} == {"list.json"}
