"""The API key from SSM or Secrets Manager (moto's server on loopback), read once, never shown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from asyncrawl.aws.secrets import clear_cache, load_api_key
from asyncrawl.errors import ConfigError
from asyncrawl.redact import redact_text

if TYPE_CHECKING:
    from support.moto_s3 import MotoS3

# A plugin, not an import, so pytest rewrites its asserts (see tests/support/moto_s3.py).
pytest_plugins = ["support.moto_s3"]

KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


class CountingSession:
    """A boto3 session that counts the requests its clients send."""

    def __init__(self) -> None:
        self.session = boto3.session.Session()
        self.sent: list[str] = []
        self.session.events.register("before-send", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.sent.append(request.url)


def test_ssm_securestring_is_read_decrypted(moto_s3: MotoS3) -> None:
    moto_s3.client("ssm").put_parameter(
        Name="/crawler/dart-api-key", Value=KEY, Type="SecureString"
    )
    assert load_api_key({"DART_API_KEY_PARAM": "/crawler/dart-api-key"}) == KEY
    # From now on the key is masked wherever text is redacted (logs, errors, answers).
    assert redact_text(f"url?crtfc_key={KEY}") == "url?crtfc_key=***"


def test_the_key_is_read_once_per_process(moto_s3: MotoS3) -> None:
    moto_s3.client("ssm").put_parameter(Name="dart-api-key", Value=KEY, Type="SecureString")
    counting = CountingSession()
    environ = {"DART_API_KEY_PARAM": "dart-api-key"}
    assert load_api_key(environ, session=counting.session) == KEY
    assert len(counting.sent) == 1
    assert load_api_key(environ, session=counting.session) == KEY
    assert load_api_key(environ) == KEY
    assert len(counting.sent) == 1
    clear_cache()
    load_api_key(environ, session=counting.session)
    assert len(counting.sent) == 2


@pytest.mark.parametrize(
    "secret_string",
    [KEY, f" {KEY}\n", orjson.dumps({"DART_API_KEY": KEY}), orjson.dumps({"api_key": KEY})],
)
def test_secrets_manager_arn_plain_or_json(moto_s3: MotoS3, secret_string: str | bytes) -> None:
    text = secret_string.decode() if isinstance(secret_string, bytes) else secret_string
    arn = moto_s3.client("secretsmanager").create_secret(Name="dart", SecretString=text)["ARN"]
    assert arn.startswith("arn:aws:secretsmanager:")
    assert load_api_key({"DART_API_KEY_PARAM": arn}) == KEY


def test_a_json_secret_without_the_key_names_the_members_not_the_content(
    moto_s3: MotoS3,
) -> None:
    other = "fedcba9876543210fedcba9876543210fedcba98"
    client = moto_s3.client("secretsmanager")
    arn = client.create_secret(Name="dart", SecretString=orjson.dumps({"key": other}).decode())[
        "ARN"
    ]
    with pytest.raises(ConfigError, match="DART_API_KEY or api_key") as caught:
        load_api_key({"DART_API_KEY_PARAM": arn})
    assert caught.value.field == "DART_API_KEY_PARAM"
    assert other not in str(caught.value)


def test_a_missing_parameter_is_named(moto_s3: MotoS3) -> None:
    with pytest.raises(ConfigError, match="/crawler/nope does not exist") as caught:
        load_api_key({"DART_API_KEY_PARAM": "/crawler/nope"})
    assert caught.value.field == "DART_API_KEY_PARAM"
    assert caught.value.__cause__ is None


def test_a_missing_secret_is_named(moto_s3: MotoS3) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dart-AbCdEf"
    with pytest.raises(ConfigError, match="secret:dart-AbCdEf does not exist"):
        load_api_key({"DART_API_KEY_PARAM": arn})


def test_an_arn_of_another_service_is_refused() -> None:
    with pytest.raises(ConfigError, match="neither an SSM parameter nor a Secrets Manager"):
        load_api_key({"DART_API_KEY_PARAM": "arn:aws:s3:::bucket/key"})


def test_the_key_can_come_from_the_environment_for_local_runs() -> None:
    local = "localkey-0123456789abcdef0123456789abcdef"
    assert load_api_key({"DART_API_KEY": f" {local} "}) == local
    assert redact_text(local) == "***"


def test_no_key_anywhere_names_both_variables() -> None:
    with pytest.raises(ConfigError, match="neither DART_API_KEY_PARAM nor DART_API_KEY") as caught:
        load_api_key({"DART_API_KEY_PARAM": " ", "DART_API_KEY": ""})
    assert caught.value.field == "DART_API_KEY_PARAM"
