"""deploy/template.yaml: valid for cfn-lint, least privilege, and a state machine that loops.

cfn-lint (a dev dependency) validates the whole template, the inline Step Functions definition
included (rule E3601 checks it against the States Language schema); a broken copy must fail,
so the check is known to look at the state machine. What the schema does not check (a ``Next``
naming a state that does not exist) is checked here. The child workflow then runs in moto's
Step Functions execution mode against the fake Lambda endpoint: 206, 206, 200 is three
invocations, each following the last answer's continuation; 500 fails; the cap stops a shard
that never finishes. moto runs the child's states (Task on ``lambda:invoke``, Choice, Pass,
Fail, ``States.StringToJson``, ``States.MathAdd``); the Distributed Map around it (S3 item
reader, result writer, MaxConcurrency) is checked only statically.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from support.fake_lambda import FakeLambda, answer

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

pytest_plugins = ["support.moto_s3"]

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "template.yaml"


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def _resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    resource: dict[str, Any] = template["Resources"][name]
    return resource


def test_cfn_lint_passes() -> None:
    result = _lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_checks_the_inline_state_machine(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    broken.write_text(
        text.replace("                  Type: Task\n", "                  Type: Tusk\n")
    )
    result = _lint(broken)
    assert result.returncode != 0
    assert "E3601" in result.stdout


def _state_scopes(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield definition
    for state in definition["States"].values():
        for nested in ("ItemProcessor", "Iterator"):
            if nested in state:
                yield from _state_scopes(state[nested])


def _targets(state: dict[str, Any]) -> Iterator[str]:
    for key in ("Next", "Default"):
        if key in state:
            yield state[key]
    for choice in state.get("Choices", ()):
        yield choice["Next"]
    for catcher in state.get("Catch", ()):
        yield catcher["Next"]


def _definition(template: dict[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = _resource(template, "ShardsStateMachine")["Properties"][
        "Definition"
    ]
    return definition


def test_every_transition_names_a_state_of_its_scope(template: dict[str, Any]) -> None:
    for scope in _state_scopes(_definition(template)):
        names = set(scope["States"])
        assert scope["StartAt"] in names
        for state in scope["States"].values():
            assert set(_targets(state)) <= names


def test_the_function_declares_runtime_architecture_handler_and_logs(
    template: dict[str, Any],
) -> None:
    function = _resource(template, "CrawlerFunction")["Properties"]
    assert function["Runtime"] == "python3.13"
    assert function["Handler"] == "lambda_handler.handler"
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert template["Parameters"]["Architecture"]["AllowedValues"] == ["arm64", "x86_64"]
    # The budget (240 s) + grace + flush fit; a NAT drops an idle connection at 350 s.
    assert function["Timeout"] == 300
    assert function["Environment"]["Variables"]["MAX_SYNC_SECONDS"] == "240"
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    log_group = _resource(template, "CrawlerLogGroup")["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # The key by name only: the value never sits in the template or the environment.
    assert function["Environment"]["Variables"]["DART_API_KEY_PARAM"] == {
        "Fn::If": ["UseSecret", {"Ref": "ApiKeySecretArn"}, {"Ref": "ApiKeyParameterName"}]
    }
    assert "DART_API_KEY" not in function["Environment"]["Variables"]


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    statements = []
    for policy in _resource(template, role)["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            statements.append(statement)
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    if isinstance(action, dict):  # Fn::If between two actions
        return [a for a in action["Fn::If"][1:] if isinstance(a, str)]
    return [action] if isinstance(action, str) else list(action)


def test_the_roles_are_least_privilege_with_no_deletes(template: dict[str, Any]) -> None:
    for role in ("CrawlerRole", "StateMachineRole"):
        for statement in _statements(template, role):
            for action in _actions(statement):
                assert "*" not in action
                assert "Delete" not in action
            assert statement["Resource"] != "*"
    by_sid = {s["Sid"]: s for s in _statements(template, "CrawlerRole")}
    writes = by_sid["WriteRowsAndRunState"]
    assert _actions(writes) == ["s3:PutObject"]
    assert [r["Fn::Sub"] for r in writes["Resource"]] == [
        "arn:${AWS::Partition}:s3:::${BucketName}/${Prefix}data/*",
        "arn:${AWS::Partition}:s3:::${BucketName}/${Prefix}_meta/*",
    ]
    listing = by_sid["ListRunState"]
    assert _actions(listing) == ["s3:ListBucket"]
    assert "s3:prefix" in listing["Condition"]["StringLike"]
    assert _actions(by_sid["QuotaLedger"]) == ["dynamodb:UpdateItem", "dynamodb:GetItem"]
    assert by_sid["DecryptTheKey"]["Condition"]["StringEquals"]["kms:ViaService"]
    machine = {s["Sid"]: s for s in _statements(template, "StateMachineRole")}
    assert _actions(machine["RunChildWorkflows"]) == ["states:StartExecution"]
    assert "_meta/stepfunctions/*" in machine["WriteMapResults"]["Resource"]["Fn::Sub"]


def test_the_map_runs_standard_children_one_per_shard_and_writes_outside_data(
    template: dict[str, Any],
) -> None:
    machine = _resource(template, "ShardsStateMachine")["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    crawl = machine["Definition"]["States"]["CrawlShards"]
    assert crawl["Type"] == "Map"
    assert crawl["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert crawl["MaxConcurrency"] == "${ShardCount}"
    assert machine["DefinitionSubstitutions"]["ShardCount"] == {"Ref": "ShardCount"}
    assert crawl["ToleratedFailurePercentage"] == "${ToleratedFailurePercentage}"
    assert crawl["ResultWriter"]["Parameters"]["Prefix"] == "${Prefix}_meta/stepfunctions"
    invoke = crawl["ItemProcessor"]["States"]["Invoke"]
    retried = {error for rule in invoke["Retry"] for error in rule["ErrorEquals"]}
    # Only errors proving the function did not run; never ServiceException or a timeout.
    assert retried == {"Lambda.TooManyRequestsException", "Lambda.ResourceNotReadyException"}


def test_the_ledger_table_expires_days_by_ttl(template: dict[str, Any]) -> None:
    table = _resource(template, "QuotaLedger")["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_the_glue_table_is_all_strings_with_projected_partitions(
    template: dict[str, Any],
) -> None:
    table = _resource(template, "StatementsTable")["Properties"]["TableInput"]
    columns = table["StorageDescriptor"]["Columns"]
    assert {c["Type"] for c in columns} == {"string"}
    names = [c["Name"] for c in columns]
    # The union of every report's and statement's keys (OPENDART.md) plus ours.
    for key in ("thstrm_add_amount", "frmtrm_q_amount", "bfefrmtrm_amount", "fs_div", "crawled_at"):
        assert key in names
    assert [p["Name"] for p in table["PartitionKeys"]] == ["year", "report", "fs"]
    assert not set(names) & {"year", "report", "fs"}
    assert table["Parameters"]["projection.enabled"] == "true"
    assert table["Parameters"]["projection.fs.values"] == "CFS,OFS"


def test_alarms_cover_errors_throttles_duration_emf_counts_and_executions(
    template: dict[str, Any],
) -> None:
    from asyncrawl.aws.metrics import METRIC_UNITS

    alarms = {
        (r["Properties"]["Namespace"], r["Properties"]["MetricName"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms == {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
        ("asyncrawl", "ItemsFailed"),
        ("asyncrawl", "ItemsRemaining"),
        ("asyncrawl", "SlowDowns"),
        ("asyncrawl", "Fatal"),
        ("AWS/States", "ExecutionsFailed"),
    }
    # The EMF alarms watch metrics the handler really emits, under its namespace.
    assert {name for namespace, name in alarms if namespace == "asyncrawl"} <= set(METRIC_UNITS)


# --- the child workflow in moto's Step Functions execution mode ------------------------------


def _post(endpoint: str, path: str, document: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - this session's loopback moto server
        f"{endpoint}{path}",
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def _child_definition(template: dict[str, Any], cap: int) -> str:
    processor = _definition(template)["States"]["CrawlShards"]["ItemProcessor"]
    child = {"StartAt": processor["StartAt"], "States": processor["States"]}
    text = json.dumps(child)
    text = text.replace("${CrawlerFunctionArn}", "opendart-crawler")
    return text.replace('"${MaxInvocationsPerShard}"', str(cap))


@pytest.fixture
def executing(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLambda]:
    """moto executing state machines, its Lambda calls sent to the fake Lambda endpoint."""
    _post(moto_s3.endpoint, "/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
    with FakeLambda() as fake:
        # moto's interpreter calls Lambda at localhost:$MOTO_PORT: that is the fake here.
        monkeypatch.setenv("MOTO_PORT", fake.url.rsplit(":", 1)[1])
        try:
            yield fake
        finally:
            _post(
                moto_s3.endpoint,
                "/moto-api/config",
                {"stepfunctions": {"execute_state_machine": False}},
            )


def _run(template: dict[str, Any], event: dict[str, Any], *, cap: int = 200) -> dict[str, Any]:
    client = boto3.client("stepfunctions")
    machine = client.create_state_machine(
        name="shard",
        definition=_child_definition(template, cap),
        roleArn="arn:aws:iam::123456789012:role/shards",
    )["stateMachineArn"]
    execution = client.start_execution(
        stateMachineArn=machine, input=json.dumps({"event": event, "invocations": 0})
    )["executionArn"]
    for _ in range(600):  # a bound on the polling, not a timing claim
        described: dict[str, Any] = client.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError("the execution did not end")


def _body(run_id: str, continuation: Any, **counts: Any) -> dict[str, Any]:
    return {
        "success": continuation is None,
        "run_id": run_id,
        "continuation": continuation,
        **counts,
    }


def test_the_child_loops_on_206_with_the_continuation_until_200(
    template: dict[str, Any], executing: FakeLambda
) -> None:
    executing.script(
        answer(206, _body("shard-0001", "token-1")),
        answer(206, _body("shard-0001", "token-2")),
        answer(200, _body("shard-0001", None)),
    )
    event = {"companies": [{"corp_code": "00126380"}], "years": [2024], "run_id": "shard-0001"}
    described = _run(template, event)
    assert described["status"] == "SUCCEEDED", described
    payloads = [request.payload for request in executing.requests]
    assert payloads == [
        event,
        {"run_id": "shard-0001", "continuation": "token-1"},
        {"run_id": "shard-0001", "continuation": "token-2"},
    ]
    assert json.loads(described["output"]) == {
        "statusCode": 200,
        "run_id": "shard-0001",
        "success": True,
    }


def test_the_child_fails_on_an_error_answer_without_invoking_again(
    template: dict[str, Any], executing: FakeLambda
) -> None:
    executing.script(answer(500, {"success": False, "message": "daily quota used"}))
    described = _run(template, {"run_id": "shard-0002"})
    assert described["status"] == "FAILED"
    assert len(executing.requests) == 1


def test_the_child_stops_at_the_invocation_cap(
    template: dict[str, Any], executing: FakeLambda
) -> None:
    executing.script(*(answer(206, _body("r", f"t{n}")) for n in range(5)))
    described = _run(template, {"run_id": "r"}, cap=2)
    assert described["status"] == "FAILED"
    # invocations 0, 1, 2 answered 206; the third reaches the cap.
    assert len(executing.requests) == 3
