"""The continuation token: what one part of a run hands the next so it finishes the run.

A token is ASCII text of at most 32 KB, authenticated and versioned::

    "v2." run_id "." base64url(zlib(JSON payload)) "." base64url(HMAC-SHA256)

The run id travels in clear so the verifier can find the run's signing key
(:mod:`asyncrawl.runs.signing`) before it trusts a single byte of the payload; the MAC covers
the version, the run id and the compressed payload. Nothing is inflated or parsed before the
MAC checks out, and then decoding is strict: no trailing bytes after the zlib stream, a cap
on the inflated size, exact members and types.

The payload (version 2) is a JSON object with exactly these members::

    job     the job's registered name ("opendart")
    run     the run id (must equal the clear one)
    n       parts done so far (1 after the first)
    params  the job's own plan parameters: opaque JSON (the job reads them back)
    totals  the run's merged counts so far (asyncrawl.runs.merge's shape, lists dropped)
    rem     remaining item keys the job rebuilds from params: {"s": [suffixes], "g": {group: hex}}
    items   remaining items the job cannot rebuild from a key (discovered work), each as the
            Source's ItemCodec wrote it: [[key, data], ...]
    lim     the rate limiter's exported recent sends (opaque here)
    ptr     null, or {"key": store key, "sha256": hex} when the payload was spilled

Item keys are split at their first ``/`` into a group and a suffix; every group's suffixes
become one bit mask over the sorted list of all suffixes (1,000 companies x 24 items cost about
1,000 short hex strings). A payload that still does not fit is written whole to
``_meta/runs/{run}/state/continuation-{n}.json`` (:func:`encode_or_spill`); the token keeps the
pointer and the stored bytes' SHA-256, which the MAC covers, so a swapped state file is refused
too (:func:`resolve`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..errors import ConfigError, ContinuationError
from .merge import COUNTERS

__all__ = [
    "MAX_TOKEN_BYTES",
    "RUN_ID_PATTERN",
    "TOKEN_VERSION",
    "ContinuationState",
    "ContinuationTooLarge",
    "KeyLookup",
    "decode",
    "encode",
    "encode_or_spill",
    "peek_run_id",
    "resolve",
    "spill_key",
]

#: The contract's limit on a token's size.
MAX_TOKEN_BYTES = 32 * 1024
#: What a run id may look like (the contract's ``[A-Za-z0-9._-]{1,64}``).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The token format this module writes and reads.
TOKEN_VERSION = 2

_PREFIX = f"v{TOKEN_VERSION}."
_MAC_CONTEXT = b"asyncrawl continuation v2\x00"
# Inflated-size caps: a token's payload fits in 1 MiB (it compresses to 32 KB at most, and
# JSON of keys does not compress 32x); a spilled state may hold a day of work.
_MAX_INFLATED_TOKEN = 1024 * 1024
_MAX_SPILLED = 64 * 1024 * 1024
_MAC_B64_LEN = 43  # 32 bytes, base64url without padding
_B64 = re.compile(r"[A-Za-z0-9_-]+")
_HEX = re.compile(r"[0-9a-f]{1,4096}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PAYLOAD_KEYS = frozenset({"job", "run", "n", "params", "totals", "rem", "items", "lim", "ptr"})
_TOTAL_KEYS = frozenset(
    {
        "planned",
        *COUNTERS,
        "failed_count",
        "remaining_count",
        "elapsed_s",
        "invocations",
        "status_counts",
    }
)
_MAX_STATUSES = 256
_JOB_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")

#: ``await keys(run_id)``: the signing key of a run (see :mod:`asyncrawl.runs.signing`).
KeyLookup = Callable[[str], Awaitable[bytes]]


def _bad(problem: str) -> ContinuationError:
    return ContinuationError(f"continuation: {problem}")


def _check_totals(totals: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(totals, Mapping) or not set(totals) <= _TOTAL_KEYS:
        raise ConfigError("totals", f"must hold only {', '.join(sorted(_TOTAL_KEYS))}")
    checked: dict[str, Any] = {}
    for name, value in totals.items():
        if name == "status_counts":
            if (
                not isinstance(value, Mapping)
                or len(value) > _MAX_STATUSES
                or not all(
                    isinstance(k, str) and len(k) <= 64 and type(v) is int and 0 <= v < 2**53
                    for k, v in value.items()
                )
            ):
                raise ConfigError("totals.status_counts", "must map statuses to counts")
            checked[name] = dict(value)
        elif name == "elapsed_s":
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigError("totals.elapsed_s", f"must be seconds >= 0, not {value!r}")
            checked[name] = float(value)
        elif type(value) is not int or not 0 <= value < 2**53:
            raise ConfigError(f"totals.{name}", f"must be a count >= 0, not {value!r}")
        else:
            checked[name] = value
    return checked


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuationState:
    """Everything the next part needs to finish the run, and nothing it can recompute.

    ``remaining`` is normalised to sorted, unique keys; ``items`` maps the keys of remaining
    items the job cannot rebuild from ``params`` to their ItemCodec form. A state read from a
    spilled token has ``state_key`` set and empty work until :func:`resolve` loads it.
    """

    run_id: str
    job: str
    #: The job's plan parameters, JSON-able and opaque to the run layer.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Keys of remaining items the job rebuilds from ``params``.
    remaining: tuple[str, ...] = ()
    #: Remaining items carried whole: key -> the Source's ``dump_item`` form.
    items: Mapping[str, Any] = field(default_factory=dict)
    #: The rate limiter's exported state (``RateLimiter.export_state()``), JSON-able.
    limiter: Mapping[str, Any] = field(default_factory=dict)
    #: Parts done so far (1 after the first).
    invocation: int = 1
    #: The run's merged counts so far (no lists).
    totals: Mapping[str, Any] = field(default_factory=dict)
    #: Where the full state was spilled, or None when the token carries it.
    state_key: str | None = None
    #: SHA-256 (hex) of the spilled bytes; set exactly when ``state_key`` is.
    state_sha256: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise ConfigError("run_id", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
        if not isinstance(self.job, str) or not _JOB_NAME.fullmatch(self.job):
            raise ConfigError("job", f"{self.job!r} is not a job name")
        if not isinstance(self.params, Mapping):
            raise ConfigError("params", "must be a JSON object")
        if isinstance(self.remaining, str):
            raise ConfigError("remaining", "must be a sequence of item keys, not one string")
        remaining = tuple(sorted(set(self.remaining)))
        if any(not isinstance(k, str) or not k for k in remaining):
            raise ConfigError("remaining", "item keys must be non-empty strings")
        if not isinstance(self.items, Mapping) or any(
            not isinstance(k, str) or not k for k in self.items
        ):
            raise ConfigError("items", "must map item keys to their ItemCodec form")
        if not isinstance(self.limiter, Mapping):
            raise ConfigError("limiter", "must be the limiter's exported state")
        if type(self.invocation) is not int or not 1 <= self.invocation < 2**31:
            raise ConfigError("invocation", "must be an integer >= 1")
        totals = _check_totals(self.totals)
        if (self.state_key is None) != (self.state_sha256 is None):
            raise ConfigError("state_key", "a spilled state needs both its key and its SHA-256")
        if self.state_key is not None:
            if self.state_key != spill_key(self.run_id, self.invocation):
                raise ConfigError("state_key", "must be the run's own spilled-state key")
            if not isinstance(self.state_sha256, str) or not _SHA256.fullmatch(self.state_sha256):
                raise ConfigError("state_sha256", "must be 64 lower-case hex digits")
            if remaining or self.items or self.limiter or self.params:
                raise ConfigError("state_key", "a spilled state carries no work in the token")
        object.__setattr__(self, "remaining", remaining)
        object.__setattr__(self, "items", dict(self.items))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "limiter", dict(self.limiter))
        object.__setattr__(self, "totals", totals)

    @property
    def spilled(self) -> bool:
        """True when the remaining work is in the store, not in the token: call resolve()."""
        return self.state_key is not None

    @property
    def remaining_count(self) -> int:
        """How many items remain (keys plus whole items)."""
        keys = set(self.remaining)
        return len(keys) + sum(1 for k in self.items if k not in keys)


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
        raise _bad("the remaining-work member is malformed")
    vocabulary, groups = packed["s"], packed["g"]
    if not isinstance(vocabulary, list) or not all(isinstance(s, str) for s in vocabulary):
        raise _bad("the remaining-work suffixes are malformed")
    if len(set(vocabulary)) != len(vocabulary) or not isinstance(groups, dict):
        raise _bad("the remaining-work member is malformed")
    keys: list[str] = []
    for group, mask_text in groups.items():
        if "/" in group or not isinstance(mask_text, str) or not _HEX.fullmatch(mask_text):
            raise _bad("the remaining-work groups are malformed")
        mask = int(mask_text, 16)
        if mask == 0 or mask.bit_length() > len(vocabulary):
            raise _bad("a remaining-work mask is out of range")
        keys.extend(group + s for i, s in enumerate(vocabulary) if mask >> i & 1)
    return keys


def _to_payload(state: ContinuationState) -> dict[str, Any]:
    pointer = None
    if state.state_key is not None:
        pointer = {"key": state.state_key, "sha256": state.state_sha256}
    return {
        "job": state.job,
        "run": state.run_id,
        "n": state.invocation,
        "params": dict(state.params),
        "totals": dict(state.totals),
        "rem": _pack_keys(state.remaining),
        "items": [[key, data] for key, data in state.items.items()],
        "lim": dict(state.limiter),
        "ptr": pointer,
    }


def _from_payload(payload: object) -> ContinuationState:
    if not isinstance(payload, dict):
        raise _bad("the payload is not a JSON object")
    if set(payload) != _PAYLOAD_KEYS:
        missing = sorted(_PAYLOAD_KEYS - set(payload))
        extra = sorted(set(payload) - _PAYLOAD_KEYS)
        raise _bad(f"malformed payload (missing {missing}, unexpected {extra})")
    items, pointer = payload["items"], payload["ptr"]
    if not isinstance(items, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) for pair in items
    ):
        raise _bad("the items member is malformed")
    if pointer is not None and (
        not isinstance(pointer, dict)
        or set(pointer) != {"key", "sha256"}
        or not all(isinstance(v, str) for v in pointer.values())
    ):
        raise _bad("the ptr member is malformed")
    for name, kind in (("params", dict), ("totals", dict), ("lim", dict), ("job", str)):
        if not isinstance(payload[name], kind):
            raise _bad(f"the {name} member is malformed")
    if type(payload["n"]) is not int or type(payload["run"]) is not str:
        raise _bad("the n or run member is malformed")
    try:
        return ContinuationState(
            run_id=payload["run"],
            job=payload["job"],
            params=payload["params"],
            remaining=tuple(_unpack_keys(payload["rem"])),
            items=dict(items),
            limiter=payload["lim"],
            invocation=payload["n"],
            totals=payload["totals"],
            state_key=None if pointer is None else pointer["key"],
            state_sha256=None if pointer is None else pointer["sha256"],
        )
    except ConfigError as exc:
        raise _bad(f"malformed payload ({exc})") from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise _bad("not base64url text; was it altered?")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _bad("not base64url text; was it altered?") from None


def _mac(key: bytes, run_id: str, body: str) -> bytes:
    message = _MAC_CONTEXT + f"{_PREFIX}{run_id}.{body}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def _inflate(data: bytes, limit: int) -> bytes:
    """``data`` inflated; refuses trailing bytes, a truncated stream and more than ``limit``."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, limit)
    except zlib.error:
        raise _bad("does not decode; was it altered?") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise _bad("truncated or larger than allowed; was it altered?")
    if inflater.unused_data:
        raise _bad("has bytes after its compressed payload; was it altered?")
    return raw


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad("the payload is not JSON; was it altered?") from None


def encode(state: ContinuationState, key: bytes, *, max_bytes: int = MAX_TOKEN_BYTES) -> str:
    """``state`` as a token signed with ``key``; :class:`ContinuationTooLarge` past the limit."""
    raw = orjson.dumps(_to_payload(state))
    body = _b64(zlib.compress(raw, 9))
    token = f"{_PREFIX}{state.run_id}.{body}.{_b64(_mac(key, state.run_id, body))}"
    if len(token) > max_bytes:
        raise ContinuationTooLarge(len(token), max_bytes)
    return token


async def encode_or_spill(
    state: ContinuationState,
    key: bytes,
    store_put: Callable[[str, bytes], Awaitable[None]],
    *,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> str:
    """``state`` as a token, spilling the full state to the store when it does not fit.

    ``store_put(key, data)`` must store ``data`` durably under the store key (relative to the
    run's output root) before returning. The token then carries the key and the data's
    SHA-256 under the MAC.
    """
    try:
        return encode(state, key, max_bytes=max_bytes)
    except ContinuationTooLarge:
        pass
    where = spill_key(state.run_id, state.invocation)
    data = zlib.compress(orjson.dumps(_to_payload(replace(state, state_key=None))), 6)
    await store_put(where, data)
    pointer = replace(
        state,
        params={},
        remaining=(),
        items={},
        limiter={},
        state_key=where,
        state_sha256=hashlib.sha256(data).hexdigest(),
    )
    return encode(pointer, key, max_bytes=max_bytes)


def peek_run_id(token: object) -> str:
    """The run id a token names in clear, checked for shape only (not yet authenticated)."""
    if not isinstance(token, str):
        raise _bad("must be the string an earlier answer returned")
    if len(token) > MAX_TOKEN_BYTES:
        raise _bad(f"is {len(token)} characters, more than a token's {MAX_TOKEN_BYTES}")
    if not token.startswith(_PREFIX):
        version = token.split(".", 1)[0] if "." in token else "none"
        raise _bad(
            f"unknown version {version[:8]!r} (this handler reads {_PREFIX[:-1]}); "
            "pass the continuation exactly as the previous answer returned it"
        )
    parts = token[len(_PREFIX) :].rsplit(".", 2)
    if len(parts) != 3 or not RUN_ID_PATTERN.fullmatch(parts[0]):
        raise _bad("is not run.payload.mac; was it altered or cut?")
    return parts[0]


async def decode(token: object, keys: KeyLookup, *, run_id: str | None = None) -> ContinuationState:
    """The state in ``token``, after its MAC checked out with the run's key from ``keys``.

    ``run_id`` (when given) must be the run the token belongs to. Raises
    :class:`~asyncrawl.errors.ContinuationError` for anything this deployment did not sign.
    """
    clear_run = peek_run_id(token)
    assert isinstance(token, str)
    if run_id is not None and clear_run != run_id:
        raise _bad(
            f"belongs to run {clear_run}, not {run_id}; "
            "pass the run_id the continuation was made for, or drop run_id"
        )
    _, body, mac_text = token[len(_PREFIX) :].rsplit(".", 2)
    if len(mac_text) != _MAC_B64_LEN:
        raise _bad("its signature is malformed; was it altered?")
    mac = _unb64(mac_text)
    key = await keys(clear_run)
    if not hmac.compare_digest(mac, _mac(key, clear_run, body)):
        raise _bad("its signature does not match; it was altered, or not made by this function")
    state = _from_payload(_loads(_inflate(_unb64(body), _MAX_INFLATED_TOKEN)))
    if state.run_id != clear_run:
        raise _bad("names two different runs; was it altered?")
    return state


async def resolve(
    state: ContinuationState, store_get: Callable[[str], Awaitable[bytes | None]]
) -> ContinuationState:
    """``state`` with its spilled payload loaded back (itself when it was not spilled).

    ``store_get(key)`` returns the stored bytes or None when the key is missing. The bytes
    must hash to the SHA-256 the (authenticated) token carries.
    """
    if state.state_key is None:
        return state
    data = await store_get(state.state_key)
    if data is None:
        raise _bad(
            f"its saved state {state.state_key} is missing from the store; "
            "was the output prefix changed or cleaned between invocations?"
        )
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), state.state_sha256 or ""):
        raise _bad(f"its saved state {state.state_key} was changed since the token was made")
    full = _from_payload(_loads(_inflate(data, _MAX_SPILLED)))
    if full.spilled or full.invocation != state.invocation or full.run_id != state.run_id:
        raise _bad(f"its saved state {state.state_key} does not match the token")
    return full
