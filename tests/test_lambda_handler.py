"""The Lambda handler end to end: the OpenDART stand-in on loopback, moto's S3, real answers.

The handler runs its own event loop (``asyncio.run``), as it does in Lambda, so these tests are
plain synchronous functions. The stand-in runs on a second loop in a background thread; its
arrival times are that loop's clock (``time.monotonic``, the same clock the handler's loops
read), so rate windows can be checked across invocations.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import importlib.util
import itertools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import asyncrawl.aws.handler as handler_module
import asyncrawl.jobs.opendart as jobs_module
from asyncrawl.aws.answer import CONTENT_TYPE
from asyncrawl.aws.continuation import ContinuationState, decode, encode, resolve, spill_key
from asyncrawl.aws.event import settings_from_env
from asyncrawl.aws.handler import (
    SAFETY_MARGIN_S,
    budget_seconds,
    handler,
    reset_cold_start_cache,
)
from asyncrawl.testing.faults import Arrival, FaultPlan
from asyncrawl.testing.opendart import DEMO_COMPANIES, OpenDartStandIn

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]

API_KEY = "Zq7xK2mP9vB4nR8tW1yL6cH3jF5gD0sA2eU7iO4k"
OTHER_KEY = "0000000000111111111122222222223333333333"
BUCKET = "crawl-out"
PREFIX = "dart/statements"
BODY_KEYS = {
    "success",
    "crawler_type",
    "run_id",
    "crawl_result",
    "s3_upload",
    "crawl_time",
    "continuation",
}
REPORTS = {"annual": ("11011",), "quarter": ("11013", "11012", "11014", "11011")}


# --- the stand-in on its own loop ---------------------------------------------------------------


class StandInThread:
    """An :class:`OpenDartStandIn` served by an event loop in a background thread."""

    def __init__(self, server: OpenDartStandIn) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(server.start())

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    @property
    def base_url(self) -> str:
        """What ``DART_BASE_URL`` is set to."""
        return self.server.url + "/api/"

    def arrivals(self) -> list[Arrival]:
        """The server's arrival log, read on its own loop."""

        async def read() -> list[Arrival]:
            return self.server.arrivals

        result: list[Arrival] = self._call(read())
        return result

    def close(self) -> None:
        self._call(self.server.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture
def standin() -> Iterator[Callable[..., StandInThread]]:
    """Start stand-ins with ``standin(plan=..., api_key=...)``; all are stopped afterwards."""
    started: list[StandInThread] = []

    def start(**options: Any) -> StandInThread:
        server = StandInThread(OpenDartStandIn(**options))
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# --- the function's environment and context -----------------------------------------------------


@dataclass
class FakeContext:
    """What Lambda passes as ``context``: the time left and the request id."""

    remaining_ms: int = 900_000
    aws_request_id: str = "req-0001"
    asked: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        self.asked.append(self.remaining_ms)
        return self.remaining_ms


@pytest.fixture(autouse=True)
def cold_start() -> Iterator[None]:
    """Each test starts like a fresh container: settings and key are read again."""
    reset_cold_start_cache()
    yield
    reset_cold_start_cache()


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str | None) -> None:
    """The function's environment: defaults below, overridden (or removed with None) by values."""
    env: dict[str, str | None] = {
        "CRAWLER_TYPE": "quarter",
        "S3_BUCKET": BUCKET,
        "S3_PREFIX": PREFIX,
        "DART_API_KEY": API_KEY,
        "DART_API_KEY_PARAM": None,
        "DART_BASE_URL": None,
        "COMPANIES_URI": None,
        "CRAWL_YEARS": "2023",
        "FS_DIV": None,
        "RATE": None,
        "CONCURRENCY": "4",
        "MAX_SYNC_SECONDS": "30",
    }
    env.update(values)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def body_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer's body, after checking the answer's shape is exactly the contract's."""
    assert set(answer) == {"statusCode", "headers", "body"}
    assert answer["headers"] == {"Content-Type": CONTENT_TYPE}
    assert isinstance(answer["body"], str)
    body: dict[str, Any] = json.loads(answer["body"])
    assert set(body) >= BODY_KEYS
    return body


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF records among the JSON lines printed to stdout."""
    records = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


def companies(count: int) -> list[dict[str, str]]:
    return [dict(c) for c in DEMO_COMPANIES[:count]]


def planned_keys(
    rows: list[dict[str, str]], years: list[int], crawler_type: str
) -> set[tuple[str, int, str, str]]:
    return {
        (row["corp_code"], year, report, fs)
        for row in rows
        for year in years
        for report in REPORTS[crawler_type]
        for fs in ("CFS", "OFS")
    }


def data_object(corp: str, year: int, report: str, fs: str) -> str:
    return f"{PREFIX}/data/year={year}/report={report}/fs={fs}/{corp}.jsonl.gz"


def call_until_done(
    event: dict[str, Any],
    context: FakeContext,
    *,
    after_each: Callable[[], None] | None = None,
    max_calls: int = 40,
) -> list[tuple[int, dict[str, Any]]]:
    """Invoke as the safe caller does: re-invoke with the continuation until not 206.

    ``after_each`` runs after every invocation (to note what the stand-in saw by then).
    """
    answers: list[tuple[int, dict[str, Any]]] = []
    answer = handler(event, context)
    while True:
        if after_each is not None:
            after_each()
        body = body_of(answer)
        answers.append((answer["statusCode"], body))
        if answer["statusCode"] != 206:
            return answers
        assert len(answers) < max_calls, "the run never finished"
        answer = handler({"run_id": body["run_id"], "continuation": body["continuation"]}, context)


# --- 1. a run over several invocations ----------------------------------------------------------


def test_run_continues_over_invocations_and_stores_each_item_once(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET, versioned=True)
    # Budgets of a few seconds: opening an S3 client alone can take a second on a loaded
    # machine, and every storage call now ends by the budget.
    server = standin(plan=FaultPlan(seed=3, latency=0.2, p_503=0.05))
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        CRAWL_YEARS="2022,2023",
        MAX_SYNC_SECONDS="4",
        CONCURRENCY="4",
    )
    rows = companies(10)
    seen_by: list[int] = []  # arrivals logged by the end of each invocation
    answers = call_until_done(
        {"companies": rows},
        FakeContext(),
        after_each=lambda: seen_by.append(len(server.arrivals())),
    )

    codes = [code for code, _ in answers]
    assert codes[0] == 206
    assert codes[-1] == 200
    assert set(codes[:-1]) == {206}
    bodies = [body for _, body in answers]
    run_id = bodies[0]["run_id"]
    assert all(b["run_id"] == run_id and b["crawler_type"] == "quarter" for b in bodies)
    assert all(b["continuation"] for b in bodies[:-1])
    assert bodies[-1]["continuation"] is None
    # A token carries only the companies that still have work (it stays small).
    for body in bodies[:-1]:
        state = read_token(moto_s3, body["continuation"])
        left = {key.partition("/")[0] for key in first_remaining(moto_s3, body)}
        assert set(state.params["co"]) == left
    assert bodies[-1]["success"] is True
    assert not any(b["success"] for b in bodies[:-1])

    # The parts add up: every planned item finished exactly once, over all invocations.
    planned = planned_keys(rows, [2022, 2023], "quarter")
    parts = [b["crawl_result"] for b in bodies]
    assert parts[0]["planned"] == len(planned) == 160
    finished = sum(p["ok"] + p["no_data"] + len(p["failed"]) for p in parts)
    assert finished == len(planned)
    assert parts[-1]["remaining"] == []
    for before, after in itertools.pairwise(parts):
        assert after["planned"] == before["remaining_count"]

    # Every item with data is stored once: one object version. The only exception the
    # guarantees allow: an item stored but not journalled when an invocation's time ran out
    # (its write in flight, or the journal's last part refused by the budget) is listed
    # remaining and rewritten at the same key by the next one: at most the in-flight few.
    arrivals = server.arrivals()
    stored = set(moto_s3.keys(f"{PREFIX}/data/", bucket=BUCKET))
    ok_total = sum(p["ok"] for p in parts)
    assert len(stored) == ok_total > 0
    no_data_total = sum(p["no_data"] for p in parts)
    assert no_data_total > 0
    handed_over = {k for body in bodies[:-1] for k in first_remaining(moto_s3, body)}
    rewritten = []
    for corp, year, report, fs in planned:
        key = data_object(corp, year, report, fs)
        if key in stored and len(moto_s3.versions(key, bucket=BUCKET)) > 1:
            rewritten.append(key)
            assert f"{corp}/{year}/{report}/{fs}" in handed_over, key
    assert len(rewritten) <= 4 * (len(answers) - 1), rewritten
    assert len(stored) + no_data_total == len(planned)

    # Nothing finished was fetched again. Within an invocation an item arrives again only
    # after a fault; an item an invocation finished (not in its remaining) never arrives in a
    # later one. (An attempt abandoned at the deadline's grace may be answered by the server
    # yet never recorded: such an item is remaining and rightly fetched again.)
    starts = [0, *seen_by[:-1]]
    for index, (start, end) in enumerate(zip(starts, seen_by, strict=True)):
        answered: set[str] = set()
        for arrival in arrivals[start:end]:
            assert arrival.item not in answered, f"{arrival.item} fetched again after its answer"
            if arrival.fault is None:
                answered.add(arrival.item)
        finished_here = answered - set(first_remaining(moto_s3, bodies[index]))
        later = {a.item for a in arrivals[end:]}
        assert not finished_here & later, "an item finished earlier was fetched again"
    assert {a.item for a in arrivals if a.fault is None} == {
        f"{corp}/{year}/{report}/{fs}" for corp, year, report, fs in planned
    }

    summary = json.loads(
        moto_s3.client()
        .get_object(Bucket=BUCKET, Key=f"{PREFIX}/_meta/runs/{run_id}/summary.json")["Body"]
        .read()
    )
    assert summary["planned"] == len(planned)
    assert summary["ok"] == ok_total
    assert summary["no_data"] == no_data_total
    assert summary["remaining"] == []

    # A stored object holds the item's rows.
    some_key = sorted(stored)[0]
    data = moto_s3.client().get_object(Bucket=BUCKET, Key=some_key)["Body"].read()
    first_row = json.loads(gzip.decompress(data).splitlines()[0])
    assert first_row["corp_code"] == some_key.rsplit("/", 1)[-1].removesuffix(".jsonl.gz")

    # 8. One EMF record per invocation, each with that invocation's counts.
    records = emf_lines(capsys.readouterr().out)
    assert len(records) == len(answers)
    assert [r["ItemsOk"] for r in records] == [p["ok"] for p in parts]
    assert [r["ItemsRemaining"] for r in records] == [p["remaining_count"] for p in parts]
    assert all(r["CrawlerType"] == "quarter" and r["run_id"] == run_id for r in records)


def test_replaying_a_continuation_fetches_and_stores_nothing_again(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore re-invokes a function whose answer it lost (LAMBDA-HANG.md): the same
    # continuation arrives twice. Items the run already stored must not be fetched again.
    moto_s3.create_bucket(BUCKET, versioned=True)
    server = standin(plan=FaultPlan(latency=0.2))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="4", CONCURRENCY="2")
    answers = call_until_done({"companies": companies(10)}, FakeContext())
    assert len(answers) >= 2
    first = answers[0][1]
    fetched = len(server.arrivals())
    stored = moto_s3.keys(f"{PREFIX}/data/", bucket=BUCKET)

    replay = handler(
        {"run_id": first["run_id"], "continuation": first["continuation"]}, FakeContext()
    )

    assert replay["statusCode"] == 200, replay["body"]
    assert len(server.arrivals()) == fetched
    for key in stored:
        assert len(moto_s3.versions(key, bucket=BUCKET)) == 1, key


# --- 2. the rate window across invocations ------------------------------------------------------


def test_rate_window_holds_across_the_invocation_boundary(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.01))
    # 32 items, 20 sends per 2 s, 1.5 s per invocation: the first invocation spends the window,
    # so the next one must wait for it to roll over rather than start a fresh one.
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        RATE="10/2s",
        MAX_SYNC_SECONDS="4",
        CONCURRENCY="8",
    )
    answers = call_until_done({"companies": companies(4)}, FakeContext())

    codes = [code for code, _ in answers]
    assert codes[0] == 206
    assert codes[-1] == 200
    assert sum(b["crawl_result"]["ok"] + b["crawl_result"]["no_data"] for _, b in answers) == 32
    arrivals = server.arrivals()
    # An attempt abandoned in flight at a hand-over (at most CONCURRENCY each) is sent again.
    assert len({a.item for a in arrivals}) == 32
    assert len(arrivals) - 32 <= 8 * (len(answers) - 1)
    assert server.server.max_in_window(2.0) <= 10


# --- 3. bad events ------------------------------------------------------------------------------


TEST_SIGNING_KEY = b"k" * 32
PARAMS = {"type": "quarter", "years": [2023], "fs": ["CFS", "OFS"], "co": {}}


def _token(run_id: str, **fields: Any) -> str:
    """A token signed with a key the function does not hold (unless a test stores it)."""
    state = {
        "run_id": run_id,
        "job": "opendart",
        "params": {**PARAMS, "co": {"00126380": ["005930", "삼성전자"]}},
        "remaining": ("00126380/2023/11011/CFS",),
        **fields,
    }
    return encode(ContinuationState(**state), TEST_SIGNING_KEY)


def store_signing_key(moto_s3: MotoS3, run_id: str) -> None:
    """Give run ``run_id`` the test's signing key, as the function's first invocation would."""
    moto_s3.client().put_object(
        Bucket=BUCKET, Key=f"{PREFIX}/_meta/runs/{run_id}/token.key", Body=TEST_SIGNING_KEY
    )


def read_token(moto_s3: MotoS3, token: str) -> ContinuationState:
    """The state in ``token``, verified with its run's key from the store."""

    async def lookup(run_id: str) -> bytes:
        key = f"{PREFIX}/_meta/runs/{run_id}/token.key"
        data: bytes = moto_s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return data

    return asyncio.run(decode(token, lookup))


@pytest.mark.parametrize(
    ("event", "field_named"),
    [
        pytest.param([], "event", id="not-an-object"),
        pytest.param("go", "event", id="a-string"),
        pytest.param({"company": []}, "company", id="unknown-key"),
        pytest.param({"years": "2023"}, "years", id="years-not-a-list"),
        pytest.param({"years": [1999]}, "years[0]", id="year-too-early"),
        pytest.param({"years": [2023, 3000]}, "years[1]", id="year-too-late"),
        pytest.param({"years": [True]}, "years[0]", id="year-a-bool"),
        pytest.param({"companies": "00126380"}, "companies", id="companies-not-a-list"),
        pytest.param({"companies": [{"corp_code": "12ab"}]}, "companies[0]", id="bad-corp-code"),
        pytest.param(
            {"companies": [{"corp_code": "00126380"}, {"corp_code": "x" * 9}]},
            "companies[1]",
            id="second-corp-code-bad",
        ),
        pytest.param({"companies": [{"stock_code": "005930"}]}, "companies[0]", id="no-corp-code"),
        pytest.param({"crawler_type": "monthly"}, "crawler_type", id="unknown-crawler-type"),
        pytest.param({"crawler_type": 1}, "crawler_type", id="crawler-type-a-number"),
        pytest.param({"run_id": 5}, "run_id", id="run-id-a-number"),
        pytest.param({"run_id": "../../etc"}, "run_id", id="run-id-a-path"),
        pytest.param({"continuation": "garbage"}, "continuation", id="garbage-continuation"),
        pytest.param({"continuation": "v1.!!!"}, "continuation", id="mangled-continuation"),
        pytest.param({"continuation": 42}, "continuation", id="continuation-a-number"),
        pytest.param(
            {"continuation": _token("run-a"), "run_id": "run-b"},
            "continuation",
            id="continuation-of-another-run",
        ),
        pytest.param({}, "companies", id="no-company-list-anywhere"),
        pytest.param(None, "companies", id="null-event-without-companies-uri"),
    ],
)
def test_bad_events_answer_400_naming_the_field(
    event: object,
    field_named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/")
    answer = handler(event, FakeContext())

    assert answer["statusCode"] == 400
    body = body_of(answer)
    assert body["success"] is False
    assert body["continuation"] is None
    assert body["message"].startswith(field_named), body["message"]
    assert "Traceback" not in answer["body"]
    assert "Traceback" not in capsys.readouterr().out


def test_continuation_with_contradicting_fields_answers_400(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/")
    store_signing_key(moto_s3, "run-a")
    for name, value in (("years", [2022]), ("crawler_type", "annual"), ("companies", [{}])):
        answer = handler({"continuation": _token("run-a"), name: value}, FakeContext())
        assert answer["statusCode"] == 400, answer["body"]
        assert body_of(answer)["message"].startswith(name)


# --- 4. a warm container ------------------------------------------------------------------------


def test_warm_container_runs_invocation_after_invocation(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.005))
    set_env(monkeypatch, DART_BASE_URL=server.base_url, CRAWLER_TYPE="annual")
    run_ids = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index in range(3):
            row = companies(3)[index]
            answer = handler(
                {"companies": [row], "run_id": f"warm-{index}"},
                FakeContext(aws_request_id=str(index)),
            )
            body = body_of(answer)
            assert answer["statusCode"] == 200, body
            assert body["crawl_result"]["planned"] == 2
            assert body["crawl_result"]["ok"] + body["crawl_result"]["no_data"] == 2
            run_ids.append(body["run_id"])
        gc.collect()
    # Each invocation closed its own session and clients: nothing left behind for GC.
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert run_ids == ["warm-0", "warm-1", "warm-2"]
    summaries = moto_s3.keys(f"{PREFIX}/_meta/runs/", bucket=BUCKET)
    for run_id in run_ids:
        assert f"{PREFIX}/_meta/runs/{run_id}/summary.json" in summaries
    assert len(server.arrivals()) == 6
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert "Unclosed" not in text
        assert "Event loop is closed" not in text


# --- 5. a fatal upstream ------------------------------------------------------------------------


def test_a_refused_key_answers_500_and_never_shows_the_key(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(api_key=OTHER_KEY)
    set_env(monkeypatch, DART_BASE_URL=server.base_url)
    answer = handler({"companies": companies(2)}, FakeContext())

    assert answer["statusCode"] == 500
    body = body_of(answer)
    assert body["success"] is False
    assert body["continuation"] is None
    assert "010" in body["message"] or "key" in body["message"].lower()
    assert "Traceback" not in answer["body"]
    captured = capsys.readouterr()
    for text in (json.dumps(answer), answer["body"], captured.out, captured.err, caplog.text):
        assert API_KEY not in text
    assert any(a.fault is None for a in server.arrivals())
    stored = moto_s3.keys("", bucket=BUCKET)
    assert not [k for k in stored if "/data/" in k]
    for key in stored:
        data = moto_s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert API_KEY.encode() not in data


# --- 6. everything from the environment ---------------------------------------------------------


@pytest.mark.parametrize("event", [None, {}], ids=["null", "empty"])
def test_an_empty_event_crawls_the_company_list_of_the_environment(
    event: object,
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_s3.create_bucket(BUCKET)
    moto_s3.client().put_object(
        Bucket=moto_s3.bucket,
        Key="lists/companies.csv",
        Body="corp_code,stock_code,corp_name\n126380,5930,삼성전자\n00164779,000660,SK하이닉스\n".encode(),
    )
    server = standin()
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        CRAWLER_TYPE="annual",
        COMPANIES_URI=f"s3://{moto_s3.bucket}/lists/companies.csv",
    )
    answer = handler(event, FakeContext())

    body = body_of(answer)
    assert answer["statusCode"] == 200, body
    assert body["crawler_type"] == "annual"
    assert body["continuation"] is None
    assert body["crawl_result"]["planned"] == 4
    corps = {a.item.split("/")[0] for a in server.arrivals()}
    assert corps == {"00126380", "00164779"}


def test_prefer_cfs_asks_for_ofs_only_where_cfs_had_no_data_across_invocations(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(seed=5, latency=0.2), no_data_ratio=0.3)
    set_env(monkeypatch, DART_BASE_URL=server.base_url, STATEMENT_BASIS="prefer-cfs")
    answers = call_until_done({"companies": companies(3)}, FakeContext())

    assert answers[-1][0] == 200, answers[-1][1]
    asked = [a.item for a in server.arrivals()]
    cfs = {key for key in asked if key.endswith("/CFS")}
    empty_cfs = {key.removesuffix("/CFS") for key in cfs if server.server._is_no_data(key)}
    ofs = {key.removesuffix("/OFS") for key in asked if key.endswith("/OFS")}
    assert len(cfs) == 12  # 3 companies x 4 reports x 1 year, CFS only
    assert empty_cfs  # the stand-in has some reports without consolidated statements
    assert ofs == empty_cfs


# --- 7. the budget ------------------------------------------------------------------------------


def test_time_spent_before_crawling_comes_out_of_the_budget(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading a long company list or a spilled continuation takes time; the crawl's deadline
    # must be what is left of the budget, not the whole budget again.
    moto_s3.create_bucket(BUCKET)
    # Room for a slow machine's setup (S3 client, lease, token key: over 1 s under load) and
    # a crawl that cannot finish in what is left: 10 companies, one at a time, 0.6 s each.
    budget = 5.0
    server = standin(plan=FaultPlan(latency=0.6))
    set_env(
        monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS=str(budget), CONCURRENCY="1"
    )
    real_plan = jobs_module.JOB.plan
    real_run = handler_module.run_resumable
    planning = 1.0
    deadlines: list[float | None] = []

    async def slow_plan(*args: Any) -> Any:
        await asyncio.sleep(planning)
        return await real_plan(*args)

    async def spy_run(*args: Any, **kwargs: Any) -> Any:
        deadlines.append(kwargs["config"].deadline)
        return await real_run(*args, **kwargs)

    monkeypatch.setattr(jobs_module.JOB, "plan", slow_plan)
    monkeypatch.setattr(handler_module, "run_resumable", spy_run)
    answer = handler({"companies": companies(10)}, FakeContext())

    assert answer["statusCode"] == 206, answer["body"]
    (deadline,) = deadlines
    assert deadline is not None
    assert deadline <= budget - planning


def test_budget_is_the_smaller_of_max_sync_seconds_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, MAX_SYNC_SECONDS="240")
    settings = settings_from_env(os.environ)
    assert budget_seconds(settings, FakeContext(remaining_ms=900_000)) == 240.0
    assert budget_seconds(settings, FakeContext(remaining_ms=60_000)) == 60.0 - SAFETY_MARGIN_S
    assert budget_seconds(settings, None) == 240.0


def test_a_function_about_to_time_out_answers_500_without_crawling(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin()
    set_env(monkeypatch, DART_BASE_URL=server.base_url)
    context = FakeContext(remaining_ms=int((SAFETY_MARGIN_S + 0.5) * 1000))
    answer = handler({"companies": companies(1)}, context)

    assert answer["statusCode"] == 500
    assert "timeout" in body_of(answer)["message"]
    assert context.asked
    assert server.arrivals() == []


def test_the_time_left_caps_the_budget_below_max_sync_seconds(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(plan=FaultPlan(latency=0.25))
    # MAX_SYNC_SECONDS alone would let all 80 items finish (2 at a time, 50 ms each: ~2 s);
    # the function's time left gives a 1.5 s budget, so it must answer 206.
    set_env(monkeypatch, DART_BASE_URL=server.base_url, MAX_SYNC_SECONDS="200", CONCURRENCY="2")
    context = FakeContext(remaining_ms=int((SAFETY_MARGIN_S + 4) * 1000))
    answer = handler({"companies": companies(10)}, context)

    body = body_of(answer)
    assert answer["statusCode"] == 206, body
    assert body["crawl_result"]["remaining"]


# --- what the function's own setup gets wrong is a 500, not the caller's 400 --------------------


def test_a_missing_companies_uri_object_is_the_function_s_fault(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin()
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        COMPANIES_URI=f"s3://{moto_s3.bucket}/lists/missing.csv",
    )
    answer = handler({}, FakeContext())

    assert answer["statusCode"] == 500
    message = body_of(answer)["message"]
    assert "COMPANIES_URI" in message
    assert message.startswith("function misconfigured")
    assert server.arrivals() == []
    (record,) = emf_lines(capsys.readouterr().out)
    assert record["Fatal"] == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRAWLER_TYPE", "monthly"),
        ("MAX_SYNC_SECONDS", "400"),
        ("CONCURRENCY", "many"),
        ("RATE", "fast"),
        ("CRAWL_YEARS", "1999"),
        ("DART_BASE_URL", "opendart.fss.or.kr"),
        ("COMPANIES_URI", "companies.csv"),
        ("STATEMENT_BASIS", "cfs-first"),
        ("PLAN_MODE", "smart"),
    ],
)
def test_a_misconfigured_function_answers_500_naming_the_variable(
    variable: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, **{variable: value})
    answer = handler({"companies": companies(1)}, FakeContext())

    assert answer["statusCode"] == 500
    message = body_of(answer)["message"]
    assert message.startswith(f"function misconfigured: {variable}"), message
    (record,) = emf_lines(capsys.readouterr().out)
    assert record["Fatal"] == 1


def test_a_missing_bucket_answers_500_with_one_fatal_metric(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = standin()
    set_env(monkeypatch, DART_BASE_URL=server.base_url, S3_BUCKET="no-such-bucket")
    answer = handler({"companies": companies(1)}, FakeContext())

    assert answer["statusCode"] == 500
    body = body_of(answer)
    assert "no-such-bucket" in body["message"]
    assert "Traceback" not in answer["body"]
    (record,) = emf_lines(capsys.readouterr().out)
    assert record["Fatal"] == 1
    assert record["CrawlerType"] == "quarter"


def test_a_refused_key_prints_one_fatal_metric(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin(api_key=OTHER_KEY)
    set_env(monkeypatch, DART_BASE_URL=server.base_url)
    assert handler({"companies": companies(1)}, FakeContext())["statusCode"] == 500
    (record,) = emf_lines(capsys.readouterr().out)
    assert record["Fatal"] == 1


def test_an_unexpected_error_still_answers_in_the_contract_s_shape(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET)
    server = standin()
    set_env(monkeypatch, DART_BASE_URL=server.base_url)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"a bug that mentions {API_KEY}")

    monkeypatch.setattr(handler_module, "run_resumable", broken)
    answer = handler({"companies": companies(1)}, FakeContext(aws_request_id="req-bug"))

    assert answer["statusCode"] == 500
    body = body_of(answer)
    assert "RuntimeError" in body["message"]
    assert "req-bug" in body["message"]
    assert "Traceback" not in answer["body"]
    out = capsys.readouterr().out
    assert API_KEY not in answer["body"]
    assert API_KEY not in out
    (record,) = emf_lines(out)
    assert record["Fatal"] == 1


# --- continuations the store cannot back -------------------------------------------------------


def test_a_continuation_whose_saved_state_is_gone_answers_400(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/")
    store_signing_key(moto_s3, "run-a")
    pointer = _token(
        "run-a",
        params={},
        remaining=(),
        invocation=2,
        state_key=spill_key("run-a", 2),
        state_sha256="0" * 64,
    )
    answer = handler({"continuation": pointer}, FakeContext())

    assert answer["statusCode"] == 400
    message = body_of(answer)["message"]
    assert message.startswith("continuation: ")
    assert "missing" in message
    assert "continuation: continuation" not in message


def test_a_continuation_with_a_malformed_item_answers_400(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET)
    set_env(monkeypatch, DART_BASE_URL="http://127.0.0.1:9/api/")
    store_signing_key(moto_s3, "run-a")
    token = _token("run-a", remaining=("00126380/2023/99999/CFS",))
    answer = handler({"continuation": token}, FakeContext())

    assert answer["statusCode"] == 400
    assert body_of(answer)["message"].startswith("continuation")


# --- the key from SSM ---------------------------------------------------------------------------


def test_the_key_is_read_from_ssm_and_never_shown(
    moto_s3: MotoS3,
    standin: Callable[..., StandInThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_s3.create_bucket(BUCKET)
    moto_s3.client("ssm").put_parameter(
        Name="/asyncrawl/dart-key", Value=API_KEY, Type="SecureString"
    )
    server = standin(api_key=API_KEY)
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        DART_API_KEY=None,
        DART_API_KEY_PARAM="/asyncrawl/dart-key",
        CRAWLER_TYPE="annual",
    )
    answer = handler({"companies": companies(2)}, FakeContext())

    assert answer["statusCode"] == 200, answer["body"]
    assert body_of(answer)["crawl_result"]["planned"] == 4
    captured = capsys.readouterr()
    assert API_KEY not in answer["body"]
    assert API_KEY not in captured.out + captured.err


# --- a continuation too large for the token -----------------------------------------------------


def test_a_large_remainder_is_spilled_to_the_store_and_picked_up_again(
    moto_s3: MotoS3, standin: Callable[..., StandInThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_s3.create_bucket(BUCKET, versioned=True)
    server = standin(plan=FaultPlan(latency=0.02))
    set_env(
        monkeypatch,
        DART_BASE_URL=server.base_url,
        CRAWLER_TYPE="annual",
        MAX_SYNC_SECONDS="5",
        CONCURRENCY="8",
    )
    rows = [
        {
            "corp_code": f"{10_000_000 + 7919 * i:08d}",
            "stock_code": f"{i:06d}",
            "corp_name": f"회사{i}",
        }
        for i in range(3500)
    ]
    first = body_of(handler({"companies": rows}, FakeContext()))
    assert first["continuation"] is not None, first["message"]
    run_id = first["run_id"]
    spilled = moto_s3.keys(f"{PREFIX}/_meta/runs/{run_id}/state/", bucket=BUCKET)
    assert spilled == [f"{PREFIX}/_meta/runs/{run_id}/state/continuation-1.json"]
    assert len(first["continuation"]) < 1024
    before = server.arrivals()

    second = handler({"run_id": run_id, "continuation": first["continuation"]}, FakeContext())

    body = body_of(second)
    assert second["statusCode"] == 206
    assert body["crawl_result"]["planned"] == first["crawl_result"]["remaining_count"]
    assert body["crawl_result"]["ok"] + body["crawl_result"]["no_data"] > 0
    after = server.arrivals()[len(before) :]
    assert after
    # The answer samples the remaining list; the run's summary.json holds it whole.
    summary_key = first["crawl_result"]["summary_uri"].removeprefix(f"s3://{BUCKET}/")
    assert summary_key == first["s3_upload"]["summary_key"]
    # (summary.json now holds the second invocation's merged view: its remaining is smaller.)
    finished_first = {a.item for a in before} - set(first_remaining(moto_s3, first))
    assert finished_first
    assert not finished_first.intersection(a.item for a in after)


def first_remaining(moto_s3: MotoS3, body: dict[str, Any]) -> list[str]:
    """All remaining keys of an answer: its sample when complete, else the token's."""
    part = body["crawl_result"]
    if part["lists_complete"]:
        return list(part["remaining"])
    state = read_token(moto_s3, body["continuation"])
    if state.spilled:
        state = asyncio.run(resolve(state, _getter(moto_s3)))
    return list(state.remaining)


def _getter(moto_s3: MotoS3) -> Callable[[str], Any]:
    async def get(key: str) -> bytes | None:
        data: bytes = (
            moto_s3.client().get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Body"].read()
        )
        return data

    return get


# --- the entry point Lambda is configured with --------------------------------------------------


def test_the_root_module_is_the_entry_point_lambda_calls() -> None:
    # Lambda's handler setting is "lambda_handler.handler", imported from the package root.
    path = Path(__file__).resolve().parent.parent / "lambda_handler.py"
    spec = importlib.util.spec_from_file_location("lambda_handler", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.handler is handler
