"""The continuation: what a Lambda invocation hands back so the next one finishes the run.

A token is ASCII text of at most 32 KB::

    "v1." + base64url(zlib(JSON payload))          (no padding)

The payload (version 1) is a JSON object with exactly these members::

    run     the run id
    type    the crawler type ("annual" | "quarter")
    years   [2023, 2024]          fs  ["CFS", "OFS"]
    n       invocations done so far (1 after the first)
    totals  {"planned", "ok", "no_data", "failed", "requests", "retries", "elapsed_s"}
    rem     the remaining item keys: {"s": [suffixes], "g": {group: hex bit mask}}
    co      {corp_code: [stock_code, corp_name]} for the companies still to crawl
    lim     the rate limiter's exported recent send history (opaque to this module)
    ptr     false, or true when the payload was spilled to the store (then rem, co, lim are
            empty, and the key is _meta/runs/{run}/state/continuation-{n}.json)

Item keys are split at their first ``/`` into a group (the company) and a suffix
(``/2024/11011/CFS``); every group's suffixes become one bit mask over the sorted list of all
suffixes. 1,000 companies x 24 items costs about 1,000 short hex strings instead of 24,000
keys. A payload that still does not fit is written whole to
``_meta/runs/{run_id}/state/continuation-{n}.json`` (:func:`encode_or_spill`) and the token
keeps only the pointer; :func:`resolve` reads it back.

Decoding trusts nothing: bad base64, zlib or JSON, an unknown version, a missing or extra
member, a wrong type, a pointer outside the run's own state folder, or a token from another
run all raise :class:`~asyncrawl.errors.ContinuationError`.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..errors import ConfigError, ContinuationError

__all__ = [
    "CRAWLER_TYPES",
    "FS_DIVS",
    "MAX_TOKEN_BYTES",
    "RUN_ID_PATTERN",
    "ContinuationState",
    "ContinuationTooLarge",
    "RunTotals",
    "decode",
    "encode",
    "encode_or_spill",
    "resolve",
    "spill_key",
]

#: The contract's limit on a token's size.
MAX_TOKEN_BYTES = 32 * 1024
#: What a run id may look like (the contract's ``[A-Za-z0-9._-]{1,64}``).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The crawler types a Lambda run can have.
CRAWLER_TYPES = ("annual", "quarter")
#: OpenDART's statement divisions: consolidated and separate.
FS_DIVS = ("CFS", "OFS")

_VERSION = 1
_PREFIX = f"v{_VERSION}."
# A spilled payload may be large (tens of thousands of keys, a day of send times); anything
# that inflates past this is not ours.
_MAX_INFLATED = 64 * 1024 * 1024
_B64 = re.compile(r"[A-Za-z0-9_-]*=*")
_HEX = re.compile(r"[0-9a-f]{1,4096}")
_PAYLOAD_KEYS = frozenset({"run", "type", "years", "fs", "n", "totals", "rem", "co", "lim", "ptr"})
_COUNTERS = ("planned", "ok", "no_data", "failed", "requests", "retries")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTotals:
    """A run's cumulative counts over the invocations so far, for merging summaries."""

    planned: int = 0
    ok: int = 0
    no_data: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        for name in _COUNTERS:
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ConfigError(name, f"must be an integer >= 0, not {value!r}")
        if isinstance(self.elapsed_s, bool) or not isinstance(self.elapsed_s, int | float):
            raise ConfigError("elapsed_s", f"must be a number of seconds, not {self.elapsed_s!r}")
        if not self.elapsed_s >= 0:
            raise ConfigError("elapsed_s", f"must be >= 0, not {self.elapsed_s!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuationState:
    """Everything the next invocation needs to finish the run, and nothing it can recompute.

    ``remaining`` is normalised to sorted, unique keys. A state read from a spilled token has
    ``state_key`` set and ``remaining``, ``companies`` and ``limiter`` empty until
    :func:`resolve` loads them: check :attr:`spilled` before trusting ``remaining``.
    """

    run_id: str
    crawler_type: str
    years: tuple[int, ...]
    fs_divs: tuple[str, ...]
    #: Item keys still to do (``"corp/year/reprt/fs"`` for OpenDART).
    remaining: tuple[str, ...] = ()
    #: corp_code -> (stock_code, corp_name), for rebuilding the remaining items.
    companies: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: The rate limiter's exported state (``RateLimiter.export_state()``), JSON-able.
    limiter: Mapping[str, Any] = field(default_factory=dict)
    #: Invocations done so far (1 after the first).
    invocation: int = 1
    totals: RunTotals = field(default_factory=RunTotals)
    #: Where the full state was spilled, or None when the token carries it.
    state_key: str | None = None
    version: int = _VERSION

    def __post_init__(self) -> None:
        if self.version != _VERSION:
            raise ConfigError("version", f"{self.version!r} is not supported; use {_VERSION}")
        if not isinstance(self.run_id, str) or not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise ConfigError("run_id", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
        if self.crawler_type not in CRAWLER_TYPES:
            raise ConfigError("crawler_type", f"must be one of {', '.join(CRAWLER_TYPES)}")
        years = tuple(dict.fromkeys(self.years))
        if not years or any(type(y) is not int or y < 0 for y in years):
            raise ConfigError("years", "must be a non-empty list of years")
        fs_divs = tuple(dict.fromkeys(self.fs_divs))
        if not fs_divs or any(fs not in FS_DIVS for fs in fs_divs):
            raise ConfigError("fs_divs", f"must be a non-empty list of {', '.join(FS_DIVS)}")
        if isinstance(self.remaining, str):
            raise ConfigError("remaining", "must be a sequence of item keys, not one string")
        remaining = tuple(sorted(set(self.remaining)))
        if any(not isinstance(k, str) or not k for k in remaining):
            raise ConfigError("remaining", "item keys must be non-empty strings")
        companies: dict[str, tuple[str, str]] = {}
        for corp, info in dict(self.companies).items():
            pair = tuple(info)
            if not isinstance(corp, str) or len(pair) != 2:
                raise ConfigError("companies", "must map corp_code to (stock_code, corp_name)")
            if not all(isinstance(part, str) for part in pair):
                raise ConfigError(f"companies[{corp}]", "stock_code and corp_name are strings")
            companies[corp] = (pair[0], pair[1])
        if type(self.invocation) is not int or self.invocation < 1:
            raise ConfigError("invocation", "must be an integer >= 1")
        if not isinstance(self.totals, RunTotals):
            raise ConfigError("totals", "must be a RunTotals")
        if self.state_key is not None:
            if self.state_key != spill_key(self.run_id, self.invocation):
                raise ConfigError("state_key", "must be the run's own spilled-state key")
            if remaining or companies or self.limiter:
                raise ConfigError("state_key", "a spilled state carries no keys in the token")
        object.__setattr__(self, "years", years)
        object.__setattr__(self, "fs_divs", fs_divs)
        object.__setattr__(self, "remaining", remaining)
        object.__setattr__(self, "companies", companies)
        object.__setattr__(self, "limiter", dict(self.limiter))

    @property
    def spilled(self) -> bool:
        """True when the remaining work is in the store, not in the token: call resolve()."""
        return self.state_key is not None


class ContinuationTooLarge(ContinuationError):
    """The encoded token would exceed the size limit; spill it with encode_or_spill()."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(
            f"continuation: {size} bytes exceeds the {max_bytes}-byte limit; "
            "use encode_or_spill() to move the state to the store"
        )


def spill_key(run_id: str, invocation: int) -> str:
    """The store key (relative to the output root) of a run's spilled continuation state."""
    return f"_meta/runs/{run_id}/state/continuation-{invocation}.json"


def _pack_keys(keys: tuple[str, ...]) -> dict[str, Any]:
    suffixes: set[str] = set()
    split: list[tuple[str, str]] = []
    for key in keys:
        cut = key.find("/")
        group, suffix = (key, "") if cut < 0 else (key[:cut], key[cut:])
        split.append((group, suffix))
        suffixes.add(suffix)
    vocabulary = sorted(suffixes)
    index = {suffix: i for i, suffix in enumerate(vocabulary)}
    masks: dict[str, int] = {}
    for group, suffix in split:
        masks[group] = masks.get(group, 0) | (1 << index[suffix])
    return {"s": vocabulary, "g": {group: format(mask, "x") for group, mask in masks.items()}}


def _unpack_keys(packed: object) -> list[str]:
    if not isinstance(packed, dict) or set(packed) != {"s", "g"}:
        raise ContinuationError("continuation: the remaining-work member is malformed")
    vocabulary, groups = packed["s"], packed["g"]
    if not isinstance(vocabulary, list) or not all(isinstance(s, str) for s in vocabulary):
        raise ContinuationError("continuation: the remaining-work suffixes are malformed")
    if len(set(vocabulary)) != len(vocabulary) or not isinstance(groups, dict):
        raise ContinuationError("continuation: the remaining-work member is malformed")
    keys: list[str] = []
    for group, mask_text in groups.items():
        if "/" in group or not isinstance(mask_text, str) or not _HEX.fullmatch(mask_text):
            raise ContinuationError("continuation: the remaining-work groups are malformed")
        mask = int(mask_text, 16)
        if mask == 0 or mask.bit_length() > len(vocabulary):
            raise ContinuationError("continuation: a remaining-work mask is out of range")
        keys.extend(group + s for i, s in enumerate(vocabulary) if mask >> i & 1)
    return keys


def _to_payload(state: ContinuationState) -> dict[str, Any]:
    totals = state.totals
    return {
        "run": state.run_id,
        "type": state.crawler_type,
        "years": list(state.years),
        "fs": list(state.fs_divs),
        "n": state.invocation,
        "totals": {name: getattr(totals, name) for name in (*_COUNTERS, "elapsed_s")},
        "rem": _pack_keys(state.remaining),
        "co": {corp: list(info) for corp, info in state.companies.items()},
        "lim": dict(state.limiter),
        "ptr": state.state_key is not None,
    }


def _from_payload(payload: object) -> ContinuationState:
    if not isinstance(payload, dict):
        raise ContinuationError("continuation: the payload is not a JSON object")
    if set(payload) != _PAYLOAD_KEYS:
        missing = sorted(_PAYLOAD_KEYS - set(payload))
        extra = sorted(set(payload) - _PAYLOAD_KEYS)
        raise ContinuationError(
            f"continuation: malformed payload (missing {missing}, unexpected {extra})"
        )
    totals, companies, limiter = payload["totals"], payload["co"], payload["lim"]
    if not isinstance(totals, dict) or set(totals) != {*_COUNTERS, "elapsed_s"}:
        raise ContinuationError("continuation: the totals member is malformed")
    if not isinstance(companies, dict) or not isinstance(limiter, dict):
        raise ContinuationError("continuation: the companies or limiter member is malformed")
    if not isinstance(payload["years"], list) or not isinstance(payload["fs"], list):
        raise ContinuationError("continuation: years and fs must be lists")
    if not all(isinstance(info, list) for info in companies.values()):
        raise ContinuationError("continuation: the companies member is malformed")
    if not isinstance(payload["ptr"], bool) or not isinstance(payload["n"], int):
        raise ContinuationError("continuation: the ptr or n member is malformed")
    try:
        return ContinuationState(
            run_id=payload["run"],
            crawler_type=payload["type"],
            years=tuple(payload["years"]),
            fs_divs=tuple(payload["fs"]),
            remaining=tuple(_unpack_keys(payload["rem"])),
            companies=companies,
            limiter=limiter,
            invocation=payload["n"],
            totals=RunTotals(**totals),
            state_key=spill_key(payload["run"], payload["n"]) if payload["ptr"] else None,
        )
    except (ConfigError, TypeError) as exc:
        raise ContinuationError(f"continuation: malformed payload ({exc})") from None


def encode(state: ContinuationState, *, max_bytes: int = MAX_TOKEN_BYTES) -> str:
    """``state`` as a token; raises :class:`ContinuationTooLarge` past ``max_bytes``."""
    raw = orjson.dumps(_to_payload(state))
    body = base64.urlsafe_b64encode(zlib.compress(raw, 9)).rstrip(b"=").decode("ascii")
    token = _PREFIX + body
    if len(token) > max_bytes:
        raise ContinuationTooLarge(len(token), max_bytes)
    return token


async def encode_or_spill(
    state: ContinuationState,
    store_put: Callable[[str, bytes], Awaitable[None]],
    *,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> str:
    """``state`` as a token, spilling the full state to the store when it does not fit.

    ``store_put(key, data)`` must store ``data`` durably under ``key`` (relative to the run's
    output root) before returning; the key is :func:`spill_key`. The token then points at it.
    """
    try:
        return encode(state, max_bytes=max_bytes)
    except ContinuationTooLarge:
        pass
    key = spill_key(state.run_id, state.invocation)
    await store_put(key, orjson.dumps(_to_payload(replace(state, state_key=None))))
    pointer = replace(state, remaining=(), companies={}, limiter={}, state_key=key)
    return encode(pointer, max_bytes=max_bytes)


def decode(token: object, *, run_id: str | None) -> ContinuationState:
    """The state in ``token``; ``run_id`` (when given) must be the run it belongs to.

    Raises :class:`~asyncrawl.errors.ContinuationError` for anything that is not a token this
    module wrote, including one belonging to another run.
    """
    if not isinstance(token, str):
        raise ContinuationError("continuation: must be the string an earlier answer returned")
    if not token.startswith(_PREFIX):
        version = token.split(".", 1)[0] if "." in token else "none"
        raise ContinuationError(
            f"continuation: unknown version {version[:8]!r} (this handler reads {_PREFIX[:-1]}); "
            "pass the continuation exactly as the previous answer returned it"
        )
    body = token[len(_PREFIX) :].rstrip("=")
    if not _B64.fullmatch(body):
        raise ContinuationError("continuation: not base64url text; was it altered?")
    try:
        compressed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, _MAX_INFLATED)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ContinuationError("continuation: truncated or oversized; was it altered?")
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, zlib.error):
        raise ContinuationError("continuation: does not decode; was it altered?") from None
    state = _from_payload(payload)
    _check_run(state, run_id)
    return state


def _check_run(state: ContinuationState, run_id: str | None) -> None:
    if run_id is not None and state.run_id != run_id:
        raise ContinuationError(
            f"continuation: belongs to run {state.run_id}, not {run_id}; "
            "pass the run_id the continuation was made for, or drop run_id"
        )


async def resolve(
    state: ContinuationState, store_get: Callable[[str], Awaitable[bytes | None]]
) -> ContinuationState:
    """``state`` with its spilled payload loaded back (itself when it was not spilled).

    ``store_get(key)`` returns the stored bytes or None when the key is missing.
    """
    if state.state_key is None:
        return state
    data = await store_get(state.state_key)
    if data is None:
        raise ContinuationError(
            f"continuation: its saved state {state.state_key} is missing from the store; "
            "was the output prefix changed or cleaned between invocations?"
        )
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ContinuationError(
            f"continuation: its saved state {state.state_key} is not JSON"
        ) from None
    full = _from_payload(payload)
    _check_run(full, state.run_id)
    if full.spilled or full.invocation != state.invocation:
        raise ContinuationError(
            f"continuation: its saved state {state.state_key} does not match the token"
        )
    return full
