"""What a Lambda invocation is asked to do: the function's environment and the event.

:func:`settings_from_env` reads the environment once per cold start into
:class:`HandlerSettings`; :func:`parse_event` reads each event into a :class:`CrawlEvent`,
filling what the event leaves out from the settings. Both refuse anything malformed with a
message that names the variable or the event field and says how to fix it:
:class:`~asyncrawl.errors.ConfigError` for the environment (the function is misconfigured:
answer 500), :class:`EventError` for the event (the caller sent a bad event: answer 400).

Event keys (all optional; ``null`` counts as absent; ``null`` or ``{}`` as a whole means
"everything from the environment")::

    companies     [{"corp_code": "00126380", "stock_code": "005930", "corp_name": "삼성전자"}, ...]
                  (the company-list rules of ``--companies``: dart_corp_code, stock_nm and
                  dart_corp are accepted too, short codes are zero-padded)
    years         [2023, "2024"]
    crawler_type  "annual" | "quarter"
    run_id        [A-Za-z0-9._-]{1,64}; default: a fresh id
    continuation  exactly what an earlier answer returned

With a continuation the run's crawler type, years and statement divisions come from the token
(an event value that contradicts them is an error) and the remaining work replaces any
``companies`` list: nothing finished is fetched again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from ..errors import ConfigError, ContinuationError, InputError
from ..limiter import DEFAULT_RATES, Rate
from ..sources.opendart.companies import CompanyListError, parse_companies
from ..sources.opendart.items import FIRST_YEAR, Company
from .continuation import CRAWLER_TYPES, FS_DIVS, RUN_ID_PATTERN, ContinuationState, decode

__all__ = [
    "EVENT_KEYS",
    "CrawlEvent",
    "EventError",
    "HandlerSettings",
    "parse_event",
    "settings_from_env",
]

#: The keys an event may carry.
EVENT_KEYS = ("companies", "continuation", "crawler_type", "run_id", "years")
#: The NAT gateway idle timeout a synchronous invoke must answer within (LAMBDA-HANG.md).
_NAT_IDLE_SECONDS = 350
_MAX_CONCURRENCY = 1000


class EventError(ConfigError):
    """The invocation event is malformed; the message names the event field and the fix."""


def _max_year() -> int:
    # Next year's first-quarter report can be asked for late in the year; nothing later.
    return datetime.now(UTC).year + 1


def _year(value: object, field: str, error: type[ConfigError]) -> int:
    """``value`` (a number or a digit string) as a year OpenDART serves."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error(field, f"{value!r} is not a year; use a number such as 2024")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise error(field, f"{value!r} is not a year; use a number such as 2024")
    year = int(text)
    last = _max_year()
    if not FIRST_YEAR <= year <= last:
        raise error(
            field,
            f"{year} is outside {FIRST_YEAR}..{last}; OpenDART serves full statements "
            f"from {FIRST_YEAR} on",
        )
    return year


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSettings:
    """The function's configuration, read from its environment once per cold start.

    Error messages name the environment variable behind each field (``CRAWLER_TYPE`` for
    ``crawler_type`` and so on). The API key itself is not here: see
    :func:`asyncrawl.aws.secrets.load_api_key`.
    """

    #: ``annual`` or ``quarter`` (``CRAWLER_TYPE``).
    crawler_type: str
    #: The output bucket (``S3_BUCKET``).
    s3_bucket: str
    #: The output prefix inside the bucket, without slashes at either end (``S3_PREFIX``).
    s3_prefix: str = ""
    #: The SSM parameter name or Secrets Manager ARN holding the key (``DART_API_KEY_PARAM``);
    #: None means ``DART_API_KEY`` holds the key itself.
    api_key_param: str | None = None
    #: OpenDART's base URL, or None for the real one (``DART_BASE_URL``).
    base_url: str | None = None
    #: Where the default company list is, ``s3://bucket/key.csv`` (``COMPANIES_URI``).
    companies_uri: str | None = None
    #: Default business years (``CRAWL_YEARS``); empty means the event must name them.
    years: tuple[int, ...] = ()
    #: Statement divisions (``FS_DIV``).
    fs_divs: tuple[str, ...] = FS_DIVS
    #: Rate windows that all hold at once (``RATE``).
    rates: tuple[Rate, ...] = DEFAULT_RATES
    #: Requests in flight at most (``CONCURRENCY``).
    concurrency: int = 16
    #: The longest one invocation may work before answering (``MAX_SYNC_SECONDS``).
    max_sync_seconds: float = 240.0

    def __post_init__(self) -> None:
        if self.crawler_type not in CRAWLER_TYPES:
            raise ConfigError(
                "CRAWLER_TYPE",
                f"{self.crawler_type!r} is not a crawler type; use annual or quarter",
            )
        if not isinstance(self.s3_bucket, str) or not 3 <= len(self.s3_bucket) <= 63:
            raise ConfigError("S3_BUCKET", "must be the output bucket's name (3 to 63 characters)")
        if "/" in self.s3_bucket or self.s3_bucket.startswith("s3:"):
            raise ConfigError(
                "S3_BUCKET", "must be a bare bucket name; put the folder in S3_PREFIX"
            )
        object.__setattr__(self, "s3_prefix", self.s3_prefix.strip("/"))
        if self.api_key_param is not None and not self.api_key_param.strip():
            raise ConfigError("DART_API_KEY_PARAM", "is blank; name an SSM parameter or secret")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("DART_BASE_URL", f"{self.base_url!r} is not an http(s) URL")
        if self.companies_uri is not None:
            bucket, _, key = self.companies_uri.removeprefix("s3://").partition("/")
            if not self.companies_uri.startswith("s3://") or not bucket or not key:
                raise ConfigError(
                    "COMPANIES_URI",
                    f"{self.companies_uri!r} is not an S3 object; use s3://bucket/companies.csv",
                )
        years = _unique(_year(y, "CRAWL_YEARS", ConfigError) for y in self.years)
        object.__setattr__(self, "years", years)
        fs_divs = _unique(self.fs_divs)
        if not fs_divs or any(fs not in FS_DIVS for fs in fs_divs):
            raise ConfigError("FS_DIV", f"{self.fs_divs!r}: use CFS, OFS or CFS,OFS")
        object.__setattr__(self, "fs_divs", fs_divs)
        if not self.rates or not all(isinstance(r, Rate) for r in self.rates):
            raise ConfigError("RATE", "give at least one N/DURATION window, e.g. 900/1m,18000/1d")
        object.__setattr__(self, "rates", tuple(self.rates))
        if type(self.concurrency) is not int or not 1 <= self.concurrency <= _MAX_CONCURRENCY:
            raise ConfigError(
                "CONCURRENCY", f"{self.concurrency!r}: use a whole number 1..{_MAX_CONCURRENCY}"
            )
        seconds = self.max_sync_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ConfigError("MAX_SYNC_SECONDS", f"{seconds!r} is not a number of seconds")
        if not (math.isfinite(seconds) and 0 < seconds < _NAT_IDLE_SECONDS):
            raise ConfigError(
                "MAX_SYNC_SECONDS",
                f"{seconds!r}: use more than 0 and less than {_NAT_IDLE_SECONDS} seconds "
                "(a synchronous answer must beat the NAT gateway's 350 s idle timeout), "
                "e.g. 240",
            )
        object.__setattr__(self, "max_sync_seconds", float(seconds))

    @property
    def out_uri(self) -> str:
        """The output root, ``s3://bucket/prefix`` (``s3://bucket`` without a prefix)."""
        return f"s3://{self.s3_bucket}/{self.s3_prefix}".rstrip("/")


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # CloudFormation and SAM pass optional parameters as "": treat that as unset.
    value = environ.get(name, "").strip()
    return value or None


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a whole number, e.g. {default}") from None


def _env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a number of seconds, e.g. {default:g}") from None


def _env_list(environ: Mapping[str, str], name: str) -> list[str]:
    text = _env(environ, name)
    return [] if text is None else [part.strip() for part in text.split(",") if part.strip()]


def settings_from_env(environ: Mapping[str, str]) -> HandlerSettings:
    """The handler's settings from ``environ`` (``os.environ`` in the function).

    Raises :class:`~asyncrawl.errors.ConfigError` naming the variable and the fix.
    """
    crawler_type = _env(environ, "CRAWLER_TYPE")
    if crawler_type is None:
        raise ConfigError("CRAWLER_TYPE", "is not set; set it to annual or quarter")
    bucket = _env(environ, "S3_BUCKET")
    if bucket is None:
        raise ConfigError("S3_BUCKET", "is not set; set it to the output bucket's name")
    api_key_param = _env(environ, "DART_API_KEY_PARAM")
    if api_key_param is None and _env(environ, "DART_API_KEY") is None:
        raise ConfigError(
            "DART_API_KEY_PARAM",
            "neither DART_API_KEY_PARAM nor DART_API_KEY is set; set DART_API_KEY_PARAM to "
            "the SSM SecureString parameter name or Secrets Manager ARN holding the key "
            "(or DART_API_KEY to the key itself, for local runs only)",
        )
    fs_divs = [fs.upper() for fs in _env_list(environ, "FS_DIV")] or list(FS_DIVS)
    rate_specs = _env_list(environ, "RATE")
    year_texts = _env_list(environ, "CRAWL_YEARS")
    rates = tuple(Rate.parse(spec, field="RATE") for spec in rate_specs) or DEFAULT_RATES
    return HandlerSettings(
        crawler_type=crawler_type.lower(),
        s3_bucket=bucket,
        s3_prefix=_env(environ, "S3_PREFIX") or "",
        api_key_param=api_key_param,
        base_url=_env(environ, "DART_BASE_URL"),
        companies_uri=_env(environ, "COMPANIES_URI"),
        years=tuple(_year(y, "CRAWL_YEARS", ConfigError) for y in year_texts),
        fs_divs=tuple(fs_divs),
        rates=rates,
        concurrency=_env_int(environ, "CONCURRENCY", 16),
        max_sync_seconds=_env_seconds(environ, "MAX_SYNC_SECONDS", 240.0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlEvent:
    """One invocation's work, the event's fields completed from the settings.

    Exactly one of ``companies``, ``companies_uri`` and ``continuation`` says where the work
    comes from, in that order of precedence: the continuation's remaining items (when
    ``continuation.spilled``, load them first with :func:`asyncrawl.aws.continuation.resolve`),
    else the event's companies, else the list at ``companies_uri``.
    """

    crawler_type: str
    years: tuple[int, ...]
    fs_divs: tuple[str, ...]
    #: The run to continue or start; None means "start a fresh run".
    run_id: str | None = None
    companies: tuple[Company, ...] | None = None
    companies_uri: str | None = None
    continuation: ContinuationState | None = None

    def __post_init__(self) -> None:
        if self.crawler_type not in CRAWLER_TYPES:
            raise EventError("crawler_type", "use annual or quarter")
        if not self.years:
            raise EventError("years", "no years: pass years, e.g. [2024], or set CRAWL_YEARS")
        sources = (self.companies, self.companies_uri, self.continuation)
        if all(source is None for source in sources):
            raise EventError(
                "companies",
                "no company list: pass companies in the event, set COMPANIES_URI, or pass "
                "the continuation an earlier answer returned",
            )


def _companies(value: object) -> tuple[Company, ...]:
    if not isinstance(value, list):
        raise EventError("companies", "must be a list of objects with corp_code")
    if not value:
        raise EventError("companies", "is empty; list at least one company, or leave it out")
    lines = []
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise EventError(f"companies[{index}]", "must be an object with corp_code")
        lines.append(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS))
    # JSON Lines puts companies[i] on line i + 1, so a row problem maps back to its index.
    try:
        return tuple(parse_companies(b"\n".join(lines), name="event.companies.jsonl"))
    except CompanyListError as error:
        first, *others = error.problems
        also = ", ".join(f"companies[{p.line - 1}].{p.field}" for p in others[:5])
        more = f" (also wrong: {also}{', ...' if len(others) > 5 else ''})" if others else ""
        field = f"companies[{first.line - 1}].{first.field}"
        raise EventError(field, first.problem + more) from None
    except InputError as error:
        raise EventError(f"companies[{error.line - 1}].{error.field}", error.problem) from None


def _years(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise EventError("years", f"must be a list of years such as [2023, 2024], not {value!r}")
    if not value:
        raise EventError("years", "is empty; list at least one year, or leave it out")
    return _unique(_year(y, f"years[{i}]", EventError) for i, y in enumerate(value))


def _crawler_type(value: object) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in CRAWLER_TYPES:
        raise EventError("crawler_type", f"{value!r} is not a crawler type; use annual or quarter")
    return text


def _run_id(value: object) -> str:
    if not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value):
        raise EventError(
            "run_id", f"{value!r}: use 1 to 64 characters of A-Z a-z 0-9 . _ - (or leave it out)"
        )
    return value


def parse_event(event: object, settings: HandlerSettings) -> CrawlEvent:
    """The work ``event`` asks for, what it leaves out filled in from ``settings``.

    Raises :class:`EventError` naming the field (``companies[3].corp_code``, ``years[1]``,
    ``crawler_type``, ``continuation``...) and the fix.
    """
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise EventError("event", "must be a JSON object (or null for the defaults)")
    unknown = sorted(str(key) for key in event if key not in EVENT_KEYS)
    if unknown:
        raise EventError(
            unknown[0],
            f"unknown event key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"the keys are {', '.join(EVENT_KEYS)}",
        )
    given: Mapping[str, Any] = MappingProxyType({k: v for k, v in event.items() if v is not None})
    run_id = _run_id(given["run_id"]) if "run_id" in given else None
    crawler_type = _crawler_type(given["crawler_type"]) if "crawler_type" in given else None
    years = _years(given["years"]) if "years" in given else None
    companies = _companies(given["companies"]) if "companies" in given else None
    if "continuation" in given:
        try:
            state = decode(given["continuation"], run_id=run_id)
        except ContinuationError as error:
            problem = str(error).removeprefix("continuation: ")
            raise EventError("continuation", problem) from None
        if crawler_type is not None and crawler_type != state.crawler_type:
            raise EventError(
                "crawler_type",
                f"{crawler_type} contradicts the continuation's {state.crawler_type}; "
                "leave crawler_type out when continuing",
            )
        if years is not None and set(years) != set(state.years):
            raise EventError(
                "years",
                f"{list(years)} contradicts the continuation's {list(state.years)}; "
                "leave years out when continuing",
            )
        return CrawlEvent(
            crawler_type=state.crawler_type,
            years=state.years,
            fs_divs=state.fs_divs,
            run_id=state.run_id,
            continuation=state,
        )
    return CrawlEvent(
        crawler_type=crawler_type or settings.crawler_type,
        years=years or settings.years,
        fs_divs=settings.fs_divs,
        run_id=run_id,
        companies=companies,
        companies_uri=None if companies is not None else settings.companies_uri,
    )
