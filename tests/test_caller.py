"""The safe Lambda caller against a local Invoke endpoint: chains, retries, errors, no repeats."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from asyncrawl.aws.caller import (
    FailedItemsError,
    HandlerStatusError,
    InvocationLimitError,
    InvokeRejectedError,
    LambdaFunctionError,
    LambdaInvocationError,
    MalformedAnswerError,
    NoProgressError,
    NotInvokedError,
    RunBusyError,
    UncertainInvocationError,
    invoke_until_done,
    lambda_client,
)
from asyncrawl.errors import ConfigError
from support.fake_lambda import (
    AWS_TEST_ENV,
    AWS_UNSET_ENV,
    FakeLambda,
    Reply,
    answer,
    drop,
    function_error,
    service_error,
    throttle,
)

FUNCTION = "opendart-crawler"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fake(aws_env: None) -> Iterator[FakeLambda]:
    with FakeLambda() as server:
        yield server


@pytest.fixture
def client(fake: FakeLambda) -> Iterator[Any]:
    made = lambda_client(endpoint_url=fake.url, region_name="us-east-1")
    yield made
    made.close()


class Sleeps:
    """An injected ``sleep`` that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def crawl_body(
    *,
    planned: int,
    ok: int,
    no_data: int = 0,
    failed: tuple[str, ...] = (),
    remaining: tuple[str, ...] = (),
    requests: int | None = None,
    retries: int = 0,
    status_counts: dict[str, int] | None = None,
    elapsed_s: float = 1.0,
    continuation: Any = None,
    run_id: str = "run-1",
) -> dict[str, Any]:
    """An answer body as the handler's contract shapes it."""
    sent = ok + no_data + len(failed) if requests is None else requests
    return {
        "success": not failed,
        "crawler_type": "annual",
        "run_id": run_id,
        "crawl_result": {
            "run_id": run_id,
            "planned": planned,
            "ok": ok,
            "no_data": no_data,
            "failed": [{"item": i, "status": "http_500", "reason": "server error"} for i in failed],
            "remaining": list(remaining),
            "requests": sent,
            "retries": retries,
            "status_counts": status_counts if status_counts is not None else {"000": sent},
            "elapsed_s": elapsed_s,
            "requests_per_s": sent / elapsed_s,
        },
        "s3_upload": {"bucket": "b", "prefix": "p"},
        "crawl_time": "2024-05-01T00:00:00Z",
        "continuation": continuation,
    }


def items(*numbers: int) -> tuple[str, ...]:
    return tuple(f"0012638{n}/2024/11011/CFS" for n in numbers)


def run(client: Any, payload: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("sleep", Sleeps())
    return invoke_until_done(FUNCTION, payload, client=client, **kwargs)


def test_one_invocation_returns_the_answer_body(fake: FakeLambda, client: Any) -> None:
    fake.script(answer(200, crawl_body(planned=3, ok=2, no_data=1)))

    result = run(client, {"years": [2024]})

    assert result["success"] is True
    assert result["run_id"] == "run-1"
    assert result["continuation"] is None
    summary = result["crawl_result"]
    assert (summary["planned"], summary["ok"], summary["no_data"]) == (3, 2, 1)
    assert summary["invocations"] == 1
    [request] = fake.requests
    assert request.function_name == FUNCTION
    assert request.invocation_type == "RequestResponse"
    assert request.payload == {"years": [2024]}


def test_no_payload_sends_an_empty_event(fake: FakeLambda, client: Any) -> None:
    fake.script(answer(200, crawl_body(planned=1, ok=1)))

    run(client)

    assert fake.requests[0].payload == {}


def test_a_206_chain_passes_each_continuation_and_the_counts_add_up(
    fake: FakeLambda, client: Any
) -> None:
    fake.script(
        answer(
            206,
            crawl_body(
                planned=10,
                ok=3,
                no_data=1,
                failed=items(1),
                remaining=items(2, 3, 4, 5, 6),
                retries=2,
                status_counts={"000": 4, "013": 1},
                elapsed_s=2.0,
                continuation="token-1",
            ),
        ),
        answer(
            206,
            crawl_body(
                planned=5,
                ok=2,
                no_data=1,
                remaining=items(5, 6),
                status_counts={"000": 3},
                elapsed_s=3.0,
                continuation="token-2",
            ),
        ),
        answer(
            200,
            crawl_body(planned=2, ok=1, failed=items(6), status_counts={"000": 1, "020": 1}),
        ),
    )

    result = run(client, {"years": [2024]}, tolerated_failed_items=2)

    payloads = [r.payload for r in fake.requests]
    assert payloads == [
        {"years": [2024]},
        {"run_id": "run-1", "continuation": "token-1"},
        {"run_id": "run-1", "continuation": "token-2"},
    ]
    summary = result["crawl_result"]
    assert summary["planned"] == 10
    assert (summary["ok"], summary["no_data"]) == (6, 2)
    assert [f["item"] for f in summary["failed"]] == list(items(1, 6))
    assert summary["remaining"] == []
    assert summary["planned"] == (
        summary["ok"] + summary["no_data"] + len(summary["failed"]) + len(summary["remaining"])
    )
    assert summary["requests"] == 5 + 3 + 2
    assert summary["retries"] == 2
    assert summary["status_counts"] == {"000": 8, "013": 1, "020": 1}
    assert summary["elapsed_s"] == 6.0
    assert summary["requests_per_s"] == round(10 / 6.0, 2)
    assert summary["invocations"] == 3
    # Two items failed (tolerated), so the run as a whole is not a success.
    assert result["success"] is False


def test_throttling_is_retried_and_the_function_runs_once(fake: FakeLambda, client: Any) -> None:
    fake.script(throttle(), throttle(), answer(200, crawl_body(planned=1, ok=1)))
    sleeps = Sleeps()

    result = run(client, sleep=sleeps, throttle_base_delay=2.0, rng=random.Random(7))

    assert result["crawl_result"]["ok"] == 1
    assert len(fake.requests) == 3
    assert fake.runs == 1
    assert len(sleeps.calls) == 2
    # Doubling backoff with ±50% jitter.
    assert 1.0 <= sleeps.calls[0] <= 3.0
    assert 2.0 <= sleeps.calls[1] <= 6.0


def test_throttling_past_the_retries_raises_not_invoked(fake: FakeLambda, client: Any) -> None:
    fake.script(*(throttle() for _ in range(4)))
    sleeps = Sleeps()

    with pytest.raises(NotInvokedError, match="did not run") as caught:
        run(client, sleep=sleeps, throttle_retries=3)

    assert len(fake.requests) == 4
    assert fake.runs == 0
    assert len(sleeps.calls) == 3
    assert caught.value.retryable is True


def test_a_refused_connection_is_retried_because_nothing_was_sent(aws_env: None) -> None:
    # A port nobody listens on: connecting fails before any request leaves.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = lambda_client(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    sleeps = Sleeps()

    with pytest.raises(NotInvokedError, match="could not connect"):
        run(refused, sleep=sleeps, throttle_retries=2)

    assert len(sleeps.calls) == 2


def test_a_function_error_raises(fake: FakeLambda, client: Any) -> None:
    fake.script(function_error("boom: S3 bucket missing", "KeyError"))

    with pytest.raises(LambdaFunctionError, match="KeyError: boom: S3 bucket missing") as caught:
        run(client)

    assert caught.value.function_error == "Unhandled"
    assert caught.value.status_code == 200
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "fatal: OpenDART says the key is invalid (020)"), (400, "years: not a year: 'x'")],
)
def test_an_error_status_in_the_body_raises_with_its_message(
    fake: FakeLambda, client: Any, status: int, message: str
) -> None:
    fake.script(answer(status, {"success": False, "message": message, "continuation": None}))

    with pytest.raises(HandlerStatusError) as caught:
        run(client)

    assert caught.value.status_code == status
    assert message in str(caught.value)
    assert len(fake.requests) == 1


def test_an_error_mid_chain_carries_what_was_done_and_the_continuation(
    fake: FakeLambda, client: Any
) -> None:
    fake.script(
        answer(206, crawl_body(planned=4, ok=2, remaining=items(3, 4), continuation="tok")),
        answer(500, {"message": "fatal: quota exhausted"}),
    )

    with pytest.raises(HandlerStatusError) as caught:
        run(client)

    assert caught.value.summary is not None
    assert caught.value.summary["ok"] == 2
    assert caught.value.summary["remaining"] == list(items(3, 4))
    assert caught.value.continuation == "tok"


def test_failed_items_beyond_the_tolerance_raise(fake: FakeLambda, client: Any) -> None:
    fake.script(answer(200, crawl_body(planned=5, ok=3, failed=items(1, 2))))

    with pytest.raises(FailedItemsError, match=r"2 item\(s\) failed") as caught:
        run(client, tolerated_failed_items=1)

    assert items(1)[0] in str(caught.value)
    assert caught.value.summary is not None
    assert caught.value.summary["ok"] == 3


def test_failed_items_within_the_tolerance_return(fake: FakeLambda, client: Any) -> None:
    fake.script(answer(200, crawl_body(planned=5, ok=3, failed=items(1, 2))))

    result = run(client, tolerated_failed_items=2)

    assert len(result["crawl_result"]["failed"]) == 2
    assert result["success"] is False


def test_a_dropped_connection_raises_after_exactly_one_invocation(
    fake: FakeLambda, client: Any
) -> None:
    fake.script(drop(), answer(200, crawl_body(planned=1, ok=1)))

    with pytest.raises(UncertainInvocationError, match="may have run") as caught:
        run(client)

    assert "not retried" in str(caught.value)
    assert len(fake.requests) == 1


def test_a_206_without_progress_raises(fake: FakeLambda, client: Any) -> None:
    fake.script(
        answer(206, crawl_body(planned=3, ok=1, remaining=items(2, 3), continuation="t1")),
        answer(206, crawl_body(planned=2, ok=0, remaining=items(2, 3), continuation="t2")),
        answer(200, crawl_body(planned=2, ok=2)),
    )

    with pytest.raises(NoProgressError) as caught:
        run(client)

    assert len(fake.requests) == 2
    assert caught.value.continuation == "t2"


def test_still_unfinished_after_max_invocations_raises(fake: FakeLambda, client: Any) -> None:
    fake.handler = lambda payload: answer(
        206, crawl_body(planned=100, ok=1, remaining=items(1), continuation="more")
    )

    with pytest.raises(InvocationLimitError, match="after 3 invocations") as caught:
        run(client, max_invocations=3)

    assert len(fake.requests) == 3
    assert caught.value.continuation == "more"
    assert caught.value.summary is not None
    assert caught.value.summary["ok"] == 3


def test_botocore_retries_are_off_even_when_the_environment_asks_for_them(
    fake: FakeLambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    # The control: a plain client does retry a ServiceException, so the fake can tell.
    plain = boto3.client("lambda", endpoint_url=fake.url, config=Config(retries={"mode": "legacy"}))
    fake.script(service_error(), answer(200, crawl_body(planned=1, ok=1)))
    plain.invoke(FunctionName=FUNCTION, Payload=b"{}")
    assert len(fake.requests) == 2

    safe = lambda_client(endpoint_url=fake.url)
    fake.script(service_error(), answer(200, crawl_body(planned=1, ok=1)))
    with pytest.raises(UncertainInvocationError, match="ServiceException") as caught:
        run(safe)

    assert len(fake.requests) == 3
    assert caught.value.status_code == 500


def test_an_unknown_function_is_rejected_without_retry(fake: FakeLambda, client: Any) -> None:
    fake.script(
        Reply(
            status=404,
            headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
            body=b'{"Type": "User", "message": "Function not found"}',
            runs=False,
        )
    )

    with pytest.raises(InvokeRejectedError, match="ResourceNotFoundException") as caught:
        run(client)

    assert caught.value.status_code == 404
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"not json"),
        Reply(body=b'{"statusCode": 200}'),
        Reply(body=json.dumps({"statusCode": 200, "body": "[1, 2]"}).encode()),
        answer(200, {"run_id": "r", "crawl_result": {"planned": 1}}),
        answer(206, crawl_body(planned=2, ok=1, remaining=items(2))),
    ],
    ids=["not-json", "no-body", "body-not-object", "summary-incomplete", "206-no-continuation"],
)
def test_a_malformed_answer_raises(fake: FakeLambda, client: Any, reply: Reply) -> None:
    fake.script(reply)

    with pytest.raises(MalformedAnswerError):
        run(client)

    assert len(fake.requests) == 1


def test_one_info_line_per_invocation_and_never_the_payload(
    fake: FakeLambda, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        answer(206, crawl_body(planned=2, ok=1, remaining=items(2), continuation="t")),
        answer(200, crawl_body(planned=1, ok=1)),
    )

    with caplog.at_level(logging.INFO, logger="asyncrawl.aws.caller"):
        run(client, {"companies": [{"corp_code": "00999999", "corp_name": "Secretive Co"}]})

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2
    assert "status 206" in lines[0]
    assert "remaining 1" in lines[0]
    assert "status 200" in lines[1]
    assert "Secretive Co" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"keepalive_idle": 350}, "keepalive_idle"),
        ({"keepalive_idle": 0}, "keepalive_idle"),
        ({"keepalive_interval": 400}, "keepalive_interval"),
        ({"keepalive_count": 0}, "keepalive_count"),
        ({"function_timeout": 901}, "function_timeout"),
        ({"function_timeout": 300, "read_timeout": 300}, "read_timeout"),
        ({"retries": {"max_attempts": 3}}, "retries"),
        ({"tcp_keepalive": False}, "tcp_keepalive"),
        ({"no_such_option": 1}, "config_overrides"),
    ],
)
def test_lambda_client_rejects_unsafe_settings(
    aws_env: None, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        lambda_client(**kwargs)

    assert caught.value.field == field


def test_lambda_client_sets_the_timeouts_and_turns_retries_off(aws_env: None) -> None:
    made = lambda_client(function_timeout=300, connect_timeout=3)

    config = made.meta.config
    assert config.read_timeout == 360
    assert config.connect_timeout == 3
    assert config.retries["total_max_attempts"] == 1


def test_a_client_with_botocore_retries_on_is_refused(fake: FakeLambda) -> None:
    plain = boto3.client("lambda", endpoint_url=fake.url)

    with pytest.raises(ConfigError, match="lambda_client") as caught:
        run(plain)

    assert caught.value.field == "client"
    assert fake.requests == []


def test_lambda_client_uses_the_given_session(aws_env: None) -> None:
    made = lambda_client(session=boto3.Session(region_name="ap-northeast-2"))

    assert made.meta.region_name == "ap-northeast-2"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_invocations": 0}, "max_invocations"),
        ({"tolerated_failed_items": -1}, "tolerated_failed_items"),
        ({"throttle_retries": 11}, "throttle_retries"),
        ({"throttle_base_delay": -1.0}, "throttle_base_delay"),
    ],
)
def test_invoke_until_done_rejects_bad_arguments(
    fake: FakeLambda, client: Any, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        run(client, **kwargs)

    assert caught.value.field == field
    assert fake.requests == []


def test_every_error_is_a_lambda_invocation_error() -> None:
    for error in (
        FailedItemsError,
        HandlerStatusError,
        InvocationLimitError,
        InvokeRejectedError,
        LambdaFunctionError,
        MalformedAnswerError,
        NoProgressError,
        NotInvokedError,
        UncertainInvocationError,
    ):
        assert issubclass(error, LambdaInvocationError)


_IMPORT_WITHOUT_AIOHTTP = textwrap.dedent(
    """
    import json, sys

    BLOCKED = ("aiohttp", "aioboto3", "aiobotocore", "orjson", "tenacity", "rich")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, Blocker())
    from asyncrawl.aws.caller import invoke_until_done, lambda_client

    client = lambda_client(endpoint_url=sys.argv[1])
    result = invoke_until_done("opendart-crawler", {"years": [2024]}, client=client)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"ok": result["crawl_result"]["ok"], "loaded": loaded}))
    """
)


def test_the_caller_works_with_boto3_alone(fake: FakeLambda) -> None:
    fake.script(answer(200, crawl_body(planned=2, ok=2)))

    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_AIOHTTP, fake.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": 2, "loaded": []}
    assert len(fake.requests) == 1


def test_an_incomplete_payload_less_answer_is_followed_like_a_206(
    fake: FakeLambda, client: Any
) -> None:
    # A payload-less run answers 500 "incomplete" (so an unchanged helper fails and retries);
    # the safe caller knows better and follows its continuation.
    unfinished = crawl_body(planned=4, ok=2, remaining=items(3, 4), continuation="tok")
    unfinished.update(status="incomplete", success=False)
    fake.script(answer(500, unfinished), answer(200, crawl_body(planned=2, ok=2)))

    result = run(client)

    assert result["crawl_result"]["ok"] == 4
    assert result["crawl_result"]["invocations"] == 2
    assert fake.requests[1].payload == {"run_id": "run-1", "continuation": "tok"}


def test_a_busy_run_raises_run_busy(fake: FakeLambda, client: Any) -> None:
    fake.script(answer(500, {"status": "busy", "message": "run run-1 is busy: another one"}))

    with pytest.raises(RunBusyError, match="is busy"):
        run(client)


def test_bounded_answers_merge_on_their_counts(fake: FakeLambda, client: Any) -> None:
    first = crawl_body(planned=30_000, ok=10, remaining=items(1, 2), continuation="tok")
    first["crawl_result"].update(remaining_count=29_990, lists_complete=False)
    second = crawl_body(planned=29_990, ok=29_990)
    fake.script(answer(206, first), answer(200, second))

    merged = run(client)["crawl_result"]

    assert merged["planned"] == 30_000
    assert merged["ok"] == 30_000
    assert merged["remaining_count"] == 0
