"""The OpenDART Source: one ``fnlttSinglAcntAll.json`` request per item, and what its answer means.

OpenDART answers errors, "no data" and "rate limit exceeded" with HTTP 200; only the body's
``status`` tells them apart, so :meth:`OpenDartSource.classify` reads the HTTP status first
(429, 5xx, ...) and then the body:

======================  =====================================================================
DART status             outcome (``status`` is the DART code, counted in run summaries)
======================  =====================================================================
000 with rows           ``Ok(payload=[row, ...])`` (rows enriched, see below)
000 without rows, 013   ``NoData``: finished, never retried
020                     ``Fatal``: the key's *daily* quota is used; the run stops, its
                        unfinished items stay remaining and the same run id resumes them after
                        midnight KST (OpenDART's per-minute limit is an IP block, not 020)
800                     ``Fatal``: OpenDART is under maintenance (minutes to hours); the run
                        stops and the same run id resumes it later
900                     ``Transient``: retried with back-off
010, 011, 012, 901      ``Fatal``: the key is unknown, suspended, not allowed from this IP or
                        expired; the run stops (the reason never carries the key)
014, 021, 100, 101      ``Failed``: this item cannot succeed
anything else           ``Failed`` with DART's status and message
HTTP 404                ``Fatal(status="http_404")``: OpenDART answers every error as HTTP 200,
                        so a 404 means the base URL is wrong (say, without ``/api/``); every
                        other item would meet the same 404
not JSON / not a dict   ``Unusable(status="bad_body")`` (an HTML error page from a proxy, a
                        truncated answer): retried; a streak of them stops the run (engine)
======================  =====================================================================

Each stored row is DART's row plus ``corp_code`` (DART's own value, added from the item when
missing), ``stock_code`` and ``corp_name`` from the company list (``""`` when unknown, so that
every column stays a string), ``fs_div`` (DART's rows do not carry it) and ``crawled_at``
(ISO-8601 UTC, e.g. ``2024-05-01T09:30:00.123Z``). Every other value stays the string DART
sent; a ``null`` becomes ``""`` and a bare number its decimal text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

import orjson

from ...errors import ConfigError
from ...http import Request, Response
from ...outcomes import (
    Failed,
    Fatal,
    NoData,
    Ok,
    Outcome,
    Transient,
    Unusable,
    classify_http_status,
)
from ...redact import redact_text, register_secret
from .items import Company, StatementItem, item_from_key

__all__ = [
    "DEFAULT_BASE_URL",
    "FATAL_STATUSES",
    "REFUSED_STATUSES",
    "OpenDartSource",
    "check_api_key",
    "read_answer",
    "status_outcome",
    "utc_now",
    "wrong_base_url",
]

#: OpenDART's API root.
DEFAULT_BASE_URL = "https://opendart.fss.or.kr/api/"
#: The length of every OpenDART API key.
API_KEY_LENGTH = 40

#: DART statuses that end the whole run, and what each means.
FATAL_STATUSES: Mapping[str, str] = {
    "010": "the API key is not registered with OpenDART (check DART_API_KEY)",
    "011": "the API key is suspended by OpenDART",
    "012": "this IP address is not allowed to use the API key",
    "901": "the API key has expired (the account's retention period ended); renew it",
}
#: DART statuses that stop the run while its work stays resumable (same run id, later).
REFUSED_STATUSES: Mapping[str, str] = {
    "020": "daily quota used: the key's daily request limit is spent; resumable after "
    "midnight KST with the same run id",
    "800": "OpenDART is under maintenance; resume later with the same run id",
}
_NO_DATA = "013"
_TRANSIENT: Mapping[str, str] = {
    "900": "OpenDART reported an undefined error",
}
_FAILED: Mapping[str, str] = {
    "014": "the file does not exist",
    "021": "too many companies in one call (at most 100): split the batch",
    "100": "a field has an invalid value (input bug)",
    "101": "inappropriate access (input bug)",
}


def utc_now() -> datetime:
    """The current time in UTC (the default clock for ``crawled_at``)."""
    return datetime.now(UTC)


def check_api_key(api_key: str) -> str:
    """Return ``api_key`` if it looks like an OpenDART key; raise :class:`ConfigError` if not.

    The error names ``DART_API_KEY`` and never repeats the value.
    """
    if not isinstance(api_key, str) or not api_key:
        raise ConfigError("DART_API_KEY", "is empty; set it to your 40-character OpenDART key")
    if len(api_key) != API_KEY_LENGTH:
        hint = (
            "; it has surrounding whitespace: remove it"
            if len(api_key.strip()) == API_KEY_LENGTH
            else ""
        )
        raise ConfigError(
            "DART_API_KEY",
            f"has {len(api_key)} characters, OpenDART keys have {API_KEY_LENGTH}{hint}",
        )
    return api_key


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "--base-url", f"{base_url!r} is not an http(s) URL, e.g. {DEFAULT_BASE_URL}"
        )
    if parts.query or parts.fragment:
        raise ConfigError("--base-url", f"{base_url!r} must not carry a query or fragment")
    try:
        parts.port  # noqa: B018  # reading it validates it: 0..65535, digits only
    except ValueError:
        raise ConfigError(
            "--base-url", f"{base_url!r} has an invalid port; use a number from 1 to 65535"
        ) from None
    # Endpoint names are appended to it, so it must end in a slash.
    return base_url if base_url.endswith("/") else base_url + "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDartSource:
    """A :class:`asyncrawl.source.Source` of :class:`StatementItem`: full financial statements.

    ``api_key`` is checked (40 characters) and registered with :mod:`asyncrawl.redact` so no
    log shows it; it is never part of ``repr``. ``clock`` stamps ``crawled_at``. With
    ``ofs_fallback`` (the ``prefer-cfs`` basis) a CFS item without data discovers its OFS item
    (``NoData.follow``): separate statements are asked for only where consolidated ones are
    missing. It is an :class:`~asyncrawl.source.ItemCodec`, so discovered items survive a
    continuation.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    ofs_fallback: bool = False
    clock: Callable[[], datetime] = field(default=utc_now, repr=False)

    def __post_init__(self) -> None:
        check_api_key(self.api_key)
        register_secret(self.api_key)
        # Frozen: the normalised URL is stored the one way a frozen dataclass allows.
        object.__setattr__(self, "base_url", _check_base_url(self.base_url))

    def key(self, item: StatementItem) -> str:
        """The item's stable key, ``corp_code/bsns_year/reprt_code/fs_div``."""
        return item.key

    def request(self, item: StatementItem) -> Request:
        """The ``fnlttSinglAcntAll.json`` request for ``item`` (the key masked in displays)."""
        return Request(
            url=self.base_url + "fnlttSinglAcntAll.json",
            params={
                "crtfc_key": self.api_key,
                "corp_code": item.company.corp_code,
                "bsns_year": str(item.bsns_year),
                "reprt_code": item.reprt_code,
                "fs_div": item.fs_div,
            },
            secret_params=frozenset({"crtfc_key"}),
        )

    def classify(self, item: StatementItem, response: Response) -> Outcome:
        """What ``response`` means for ``item`` (see the module docstring's table)."""
        body = read_answer(response, self.base_url)
        outcome = self._rows(item, body) if isinstance(body, dict) else body
        if isinstance(outcome, NoData) and self.ofs_fallback and item.fs_div == "CFS":
            ofs = StatementItem(
                company=item.company,
                bsns_year=item.bsns_year,
                reprt_code=item.reprt_code,
                fs_div="OFS",
            )
            return NoData(status=outcome.status, reason=outcome.reason, follow=(ofs,))
        return outcome

    def dump_item(self, item: StatementItem) -> dict[str, Any]:
        """``item`` as JSON-able data, its company's stock code and name included."""
        company = item.company
        return {
            "corp_code": company.corp_code,
            "stock_code": company.stock_code,
            "corp_name": company.corp_name,
            "bsns_year": item.bsns_year,
            "reprt_code": item.reprt_code,
            "fs_div": item.fs_div,
        }

    def load_item(self, data: Any) -> StatementItem:
        """The item :meth:`dump_item` wrote; malformed data raises ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError("item", f"{data!r} is not an item object")
        try:
            company = Company(
                corp_code=data["corp_code"],
                stock_code=data.get("stock_code"),
                corp_name=data.get("corp_name"),
            )
            key = f"{company.corp_code}/{data['bsns_year']}/{data['reprt_code']}/{data['fs_div']}"
        except KeyError as missing:
            raise ConfigError("item", f"has no {missing}") from None
        return item_from_key(key, {company.corp_code: company})

    def _rows(self, item: StatementItem, body: Mapping[str, Any]) -> Outcome:
        rows = body.get("list")
        if not isinstance(rows, list):
            return _bad_body("status 000 without a list of rows")
        if not rows:
            return NoData(status="000", reason="no rows (000)")
        # The rows are this answer's own fresh dicts (orjson.loads): enriched in place, every
        # value kept as the object orjson made. Both checks run in C (set/map/chain), not one
        # Python step per value: an answer holds thousands of values.
        if set(map(type, rows)) != {dict}:
            return _bad_body("a row is not a JSON object")
        if not set(map(type, chain.from_iterable(map(dict.values, rows)))) <= {str}:
            # Rare: DART sends strings. A null or a bare number becomes text, one by one.
            problem = _texts_in_place(rows)
            if problem is not None:
                return _bad_body(f"row field {problem!r} is not a string")
        company = item.company
        corp_code = company.corp_code
        extra = {
            "stock_code": company.stock_code or "",
            "corp_name": company.corp_name or "",
            "fs_div": item.fs_div,
            "crawled_at": _iso_utc(self.clock()),
        }
        for row in rows:
            if "corp_code" not in row:
                row["corp_code"] = corp_code
            row.update(extra)
        return Ok(status="000", payload=rows)


def status_outcome(status: str, body: Mapping[str, Any]) -> Outcome:
    """What a DART status other than 000 means, for any OpenDART JSON endpoint."""
    message = _message(body)
    if status == _NO_DATA:
        return NoData(status=status, reason=f"no data ({status})")
    if status in REFUSED_STATUSES:
        return Fatal(status=status, reason=f"{REFUSED_STATUSES[status]} (DART status {status})")
    if status in _TRANSIENT:
        return Transient(status=status, reason=f"{_TRANSIENT[status]} ({status}): {message}")
    if status in FATAL_STATUSES:
        return Fatal(status=status, reason=f"{FATAL_STATUSES[status]} (DART status {status})")
    if status in _FAILED:
        return Failed(status=status, reason=f"{_FAILED[status]} ({status}): {message}")
    return Failed(status=status, reason=f"unexpected DART status {status}: {message}")


def wrong_base_url(base_url: str, http_status: int) -> str:
    """Why every answer is HTTP ``http_status``: the base URL (``base_url``) is probably wrong.

    OpenDART answers its own errors as HTTP 200, so a 404 means the requests go to the wrong
    place. The text names the library parameter ``base_url``; the CLI and the Lambda name
    their own setting (``--base-url``, ``DART_BASE_URL``).
    """
    return (
        f"HTTP {http_status} from {base_url}: the base URL (base_url) is probably wrong; "
        f"OpenDART's is {DEFAULT_BASE_URL} (with the /api/ suffix)"
    )


def read_answer(response: Response, base_url: str) -> Outcome | dict[str, Any]:
    """The body of an OpenDART JSON answer with status 000, or what the answer means instead.

    Every JSON endpoint answers the same way (HTTP 200, ``{"status": ..., "message": ...}``),
    so each classifier starts here: an HTTP 404 is a wrong base URL (fatal), other HTTP
    errors mean what they generically mean, a body that is not a JSON object with a status is
    unusable, and a status other than 000 is :func:`status_outcome`.
    """
    if response.status == 404:
        return Fatal(status="http_404", reason=wrong_base_url(base_url, 404))
    by_http = classify_http_status(response.status, response.headers)
    if by_http is not None:
        return by_http
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return _bad_body("the answer is not JSON")
    if not isinstance(body, dict):
        return _bad_body("the answer is not a JSON object")
    status = body.get("status")
    if not isinstance(status, str):
        return _bad_body("the answer has no status")
    if status != "000":
        return status_outcome(status, body)
    return body


def _bad_body(reason: str) -> Unusable:
    # Retried like a transient fault, but a streak of them (HTML from a proxy, a wrong base
    # URL) stops the run instead of costing every item its attempts.
    return Unusable(status="bad_body", reason=reason)


def _message(body: Mapping[str, Any]) -> str:
    message = body.get("message")
    # DART's own text, masked in case an upstream ever echoes the key back.
    return redact_text(message) if isinstance(message, str) else ""


def _as_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _texts_in_place(rows: list[dict[str, Any]]) -> str | None:
    """Turn every value of ``rows`` into text; the name of a field that cannot be, or None."""
    for row in rows:
        for name, value in row.items():
            if type(value) is not str:
                text = _as_text(value)
                if text is None:
                    return str(name)
                row[name] = text
    return None


def _iso_utc(moment: datetime) -> str:
    # A naive clock is taken to be UTC already (converting it would apply the local zone).
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")
