"""The OpenDART API key, read once per cold start and never shown.

``DART_API_KEY_PARAM`` names where the key is kept:

* an SSM parameter: a name (``dart-api-key``), a path (``/crawler/dart-api-key``) or an SSM
  parameter ARN; read with decryption, so a SecureString works (the role needs
  ``ssm:GetParameter`` and ``kms:Decrypt`` on its key);
* a Secrets Manager secret ARN (``arn:aws:secretsmanager:...``); its ``SecretString`` is the
  key itself, or a JSON object holding it under ``DART_API_KEY`` or ``api_key`` (the role
  needs ``secretsmanager:GetSecretValue``).

Without ``DART_API_KEY_PARAM``, ``DART_API_KEY`` holds the key itself (local runs).

The key is read once per cold start and kept in this process (warm starts reuse it; a
rotated key is picked up by the next cold start), and registered with
:func:`asyncrawl.redact.register_secret` so no log line, error or answer can show it.
boto3 is used synchronously: it is one call per cold start, before any crawling starts, and
its endpoint follows boto3's own settings (``AWS_ENDPOINT_URL_SSM``,
``AWS_ENDPOINT_URL_SECRETSMANAGER``, ``AWS_ENDPOINT_URL``, region and credential chain).
Errors name the parameter, never the value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError
from ..redact import register_secret

__all__ = ["SECRET_JSON_KEYS", "clear_cache", "load_api_key"]

#: Members of a JSON ``SecretString`` that may hold the key, in order of preference.
SECRET_JSON_KEYS = ("DART_API_KEY", "api_key")

_PARAM = "DART_API_KEY_PARAM"
_lock = threading.Lock()
_cache: dict[str, str] = {}


def clear_cache() -> None:
    """Forget keys read so far, so the next :func:`load_api_key` reads again (for tests)."""
    with _lock:
        _cache.clear()


def load_api_key(environ: Mapping[str, str], *, session: Any = None) -> str:
    """The API key named by ``environ`` (see the module docstring), read once per process.

    ``session`` is a ``boto3.session.Session`` to read with (default: a new one).
    Raises :class:`~asyncrawl.errors.ConfigError` naming the variable or parameter and the fix.
    """
    name = environ.get(_PARAM, "").strip()
    if not name:
        key = environ.get("DART_API_KEY", "").strip()
        if not key:
            raise ConfigError(
                _PARAM,
                "neither DART_API_KEY_PARAM nor DART_API_KEY is set; set DART_API_KEY_PARAM to "
                "the SSM SecureString parameter name or Secrets Manager ARN holding the key",
            )
        register_secret(key)
        return key
    with _lock:
        cached = _cache.get(name)
        if cached is not None:
            return cached
        key = _read(name, session or boto3.session.Session())
        register_secret(key)
        _cache[name] = key
        return key


def _arn_service_and_region(name: str) -> tuple[str, str] | None:
    # arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
    parts = name.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        return parts[2], parts[3]
    return None


def _read(name: str, session: Any) -> str:
    arn = _arn_service_and_region(name)
    service = arn[0] if arn else "ssm"
    if service not in ("ssm", "secretsmanager"):
        raise ConfigError(
            _PARAM, f"{name!r} is neither an SSM parameter nor a Secrets Manager secret ARN"
        )
    # An ARN names its region; use it when the session has none configured.
    region = session.region_name or (arn[1] if arn else None)
    try:
        client = session.client(service, region_name=region)
        if service == "ssm":
            answer = client.get_parameter(Name=name, WithDecryption=True)
            value = answer["Parameter"]["Value"]
        else:
            answer = client.get_secret_value(SecretId=name)
            if "SecretString" not in answer:
                raise ConfigError(_PARAM, f"secret {name} holds binary data; store the key as text")
            value = _from_secret_string(answer["SecretString"], name)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        raise ConfigError(_PARAM, _client_problem(service, name, code)) from None
    except BotoCoreError as error:
        raise ConfigError(
            _PARAM, f"{name} could not be read ({type(error).__name__}); check region and network"
        ) from None
    key = value.strip() if isinstance(value, str) else ""
    if not key:
        raise ConfigError(_PARAM, f"{name} is empty; store the OpenDART API key in it")
    return key


def _from_secret_string(text: str, name: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        for member in SECRET_JSON_KEYS:
            value = document.get(member)
            if isinstance(value, str) and value.strip():
                return value
        raise ConfigError(
            _PARAM,
            f"secret {name} is a JSON object without {' or '.join(SECRET_JSON_KEYS)}; "
            "store the key under one of them, or as the plain secret string",
        )
    raise ConfigError(_PARAM, f"secret {name} is not the key nor a JSON object holding it")


def _client_problem(service: str, name: str, code: str) -> str:
    if code in ("ParameterNotFound", "ResourceNotFoundException"):
        return f"{name} does not exist (in this region); check the name and AWS_REGION"
    if code in ("AccessDeniedException", "AccessDenied"):
        action = "ssm:GetParameter" if service == "ssm" else "secretsmanager:GetSecretValue"
        return f"{name}: access denied; the function's role needs {action} (and kms:Decrypt)"
    return f"{name} could not be read: {service} answered {code}"
