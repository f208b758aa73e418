"""The continuation token: signed, versioned, strict; round trips; spills big state.

A forged or altered token is refused before any of its payload is read; decoding after the
MAC is strict (no trailing bytes after the zlib stream, a cap on the inflated size, exact
members). Hypothesis fuzzes both sides of the MAC: random text never decodes, and well-formed
but wrong payloads signed with the test key are refused with a ContinuationError, never
another exception.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrawl.errors import ContinuationError
from asyncrawl.runs.continuation import (
    MAX_TOKEN_BYTES,
    ContinuationState,
    ContinuationTooLarge,
    decode,
    encode,
    encode_or_spill,
    peek_run_id,
    resolve,
    spill_key,
)
from asyncrawl.runs.signing import KEY_BYTES, SecretKeys, StoredRunKeys, run_key_path
from asyncrawl.sinks import DirectoryStore

REPORTS = ("11013", "11012", "11014", "11011")
KEY = b"s" * 32
OTHER_KEY = b"o" * 32


async def lookup(run_id: str) -> bytes:
    return KEY


def verify(token: object, *, run_id: str | None = None) -> ContinuationState:
    return asyncio.run(decode(token, lookup, run_id=run_id))


class MemoryStore:
    """The two store calls the codec needs, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)


def sign(run_id: str, compressed: bytes, key: bytes = KEY) -> str:
    """A token around ``compressed`` signed as the codec signs, for forging bad payloads."""
    body = base64.urlsafe_b64encode(compressed).rstrip(b"=").decode()
    message = b"asyncrawl continuation v2\x00" + f"v2.{run_id}.{body}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return f"v2.{run_id}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def payload(**changes: Any) -> dict[str, Any]:
    good: dict[str, Any] = {
        "job": "opendart",
        "run": "run-1",
        "n": 1,
        "params": {"type": "annual"},
        "totals": {"planned": 3, "ok": 1},
        "rem": {"s": ["/2024/11011/CFS"], "g": {"00126380": "1"}},
        "items": [],
        "lim": {},
        "ptr": None,
    }
    good.update(changes)
    return good


def full_state(
    companies: int, *, limiter_sends: int = 0, run_id: str = "run-1"
) -> ContinuationState:
    corps = [f"{1_000_000 + i * 7919:08d}" for i in range(companies)]
    keys = [
        f"{corp}/{year}/{report}/{fs}"
        for corp in corps
        for year in (2022, 2023, 2024)
        for report in REPORTS
        for fs in ("CFS", "OFS")
    ]
    return ContinuationState(
        run_id=run_id,
        job="opendart",
        params={"co": {corp: [f"{i:06d}", f"한국회사{i}"] for i, corp in enumerate(corps)}},
        remaining=tuple(keys),
        limiter={"v": 1, "sends": [[1_700_000_000_000 + i * 37, 1] for i in range(limiter_sends)]},
        invocation=2,
        totals={"planned": 24_000, "ok": 10, "no_data": 2, "failed_count": 1, "requests": 20},
    )


item_keys = st.one_of(
    st.builds(
        lambda corp, year, report, fs: f"{corp}/{year}/{report}/{fs}",
        st.text(alphabet="0123456789", min_size=8, max_size=8),
        st.integers(2015, 2026),
        st.sampled_from(REPORTS),
        st.sampled_from(("CFS", "OFS")),
    ),
    # Any other key shape a Source may use must survive too, slashes or none.
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
states = st.builds(
    ContinuationState,
    run_id=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    job=st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True),
    params=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    remaining=st.lists(item_keys, max_size=200).map(tuple),
    items=st.dictionaries(item_keys, json_values, max_size=5),
    limiter=st.dictionaries(st.text(max_size=5), st.lists(st.integers(0, 2**53), max_size=20)),
    invocation=st.integers(1, 10_000),
    totals=st.fixed_dictionaries(
        {"planned": st.integers(0, 10**9), "ok": st.integers(0, 10**9)},
        optional={"elapsed_s": st.floats(0, 1e9), "failed_count": st.integers(0, 10**9)},
    ),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_round_trip_restores_the_state(state: ContinuationState) -> None:
    try:
        token = encode(state, KEY)
    except ContinuationTooLarge:
        return
    assert len(token) <= MAX_TOKEN_BYTES
    assert token.isascii()
    assert peek_run_id(token) == state.run_id
    assert verify(token) == state


def test_a_day_of_work_fits_or_spills_and_resolves() -> None:
    small = full_state(100, limiter_sends=200)
    assert verify(encode(small, KEY)) == small
    big = full_state(3000, limiter_sends=18_000)
    with pytest.raises(ContinuationTooLarge):
        encode(big, KEY)
    store = MemoryStore()
    token = asyncio.run(encode_or_spill(big, KEY, store.put))
    assert len(token) < 1024
    assert list(store.objects) == [spill_key("run-1", 2)]
    pointer = verify(token)
    assert pointer.spilled
    assert pointer.params == {}
    assert asyncio.run(resolve(pointer, store.get)) == big


def test_a_swapped_spilled_state_is_refused() -> None:
    store = MemoryStore()
    token = asyncio.run(encode_or_spill(full_state(3000), KEY, store.put))
    other = MemoryStore()
    asyncio.run(encode_or_spill(full_state(2999), KEY, other.put))
    store.objects.update(other.objects)  # an attacker with bucket access swaps the state file
    with pytest.raises(ContinuationError, match="changed since the token was made"):
        asyncio.run(resolve(verify(token), store.get))
    with pytest.raises(ContinuationError, match="missing from the store"):
        asyncio.run(resolve(verify(token), MemoryStore().get))


def test_a_forged_token_with_valid_structure_is_refused() -> None:
    # Round 1 accepted this: a well-formed payload claiming 1,000 ok items of a 5-item plan.
    forged = sign(
        "run-1", zlib.compress(orjson.dumps(payload(totals={"planned": 5, "ok": 1000}))), OTHER_KEY
    )
    with pytest.raises(ContinuationError, match="signature does not match"):
        verify(forged)


def test_any_altered_character_is_refused() -> None:
    token = encode(full_state(3), KEY)
    for index in range(3, len(token), max(1, len(token) // 40)):
        altered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
        with pytest.raises(ContinuationError):
            verify(altered)


def test_trailing_bytes_after_the_compressed_stream_are_refused() -> None:
    compressed = zlib.compress(orjson.dumps(payload())) + b"extra"
    with pytest.raises(ContinuationError, match="bytes after its compressed payload"):
        verify(sign("run-1", compressed))


def test_a_decompression_bomb_is_refused() -> None:
    bomb = zlib.compress(b'{"job":"' + b"a" * (4 * 1024 * 1024) + b'"}', 9)
    assert len(bomb) < MAX_TOKEN_BYTES
    with pytest.raises(ContinuationError, match="larger than allowed"):
        verify(sign("run-1", bomb))


def test_a_token_of_another_run_is_refused() -> None:
    token = encode(full_state(1, run_id="run-a"), KEY)
    with pytest.raises(ContinuationError, match="belongs to run run-a, not run-b"):
        verify(token, run_id="run-b")
    # Renaming the run in clear breaks the MAC (run ids are signed, and keys are per run).
    renamed = token.replace("v2.run-a.", "v2.run-b.", 1)
    with pytest.raises(ContinuationError, match="signature"):
        verify(renamed)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (42, "must be the string"),
        ("", "unknown version"),
        ("v1.eJyrVkrLz1eyUkpKLFKqBQAdDQRr", "unknown version 'v1'"),
        ("v3.run.body.mac", "unknown version 'v3'"),
        ("v2.run-1", "run.payload.mac"),
        ("v2.bad run.x.y", "run.payload.mac"),
        ("v2.run-1.abc.short", "signature is malformed"),
        ("v2.run-1.a!c." + "A" * 43, "signature does not match"),
        ("v2.run-1." + "A" * (MAX_TOKEN_BYTES) + ".x", "more than a token's"),
    ],
)
def test_malformed_tokens_are_refused(token: object, message: str) -> None:
    with pytest.raises(ContinuationError, match=message):
        verify(token)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "unexpected \\['v'\\]"),
        ({"n": 0}, "invocation"),
        ({"n": "1"}, "n or run"),
        ({"run": "run-2"}, "two different runs"),
        ({"job": "Bad Job"}, "job"),
        ({"totals": {"ok": -1}}, "totals.ok"),
        ({"totals": {"ok": 2**60}}, "totals.ok"),
        ({"totals": {"bogus": 1}}, "totals"),
        ({"rem": {"s": ["/a"], "g": {"x": "4"}}}, "out of range"),
        ({"rem": {"s": ["/a"], "g": {"x/y": "1"}}}, "groups are malformed"),
        ({"items": [["k"]]}, "items member"),
        ({"ptr": {"key": "elsewhere", "sha256": "0" * 64}}, "state_key"),
        ({"ptr": "yes"}, "ptr member"),
    ],
)
def test_tampered_payloads_signed_with_the_key_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ContinuationError, match=message):
        verify(sign("run-1", zlib.compress(orjson.dumps(payload(**changes)))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: "v2.run-1." + b.hex()))
def test_fuzzed_text_never_decodes_and_never_crashes(text: str) -> None:
    with pytest.raises(ContinuationError):
        verify(text)


_members = st.fixed_dictionaries(
    {},
    optional={
        "job": json_values | st.just("opendart"),
        "run": json_values | st.just("run-1"),
        "n": json_values | st.integers(-3, 3),
        "params": json_values,
        "totals": json_values
        | st.dictionaries(st.sampled_from(["ok", "planned", "x"]), json_values),
        "rem": json_values
        | st.fixed_dictionaries({"s": st.lists(st.text(max_size=4), max_size=3), "g": json_values}),
        "items": json_values,
        "lim": json_values,
        "ptr": json_values,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_members | json_values)
def test_fuzzed_payloads_signed_with_the_key_are_refused_or_read(body: Any) -> None:
    token = sign("run-1", zlib.compress(orjson.dumps(body)))
    refused: ContinuationError | None = None
    try:
        state = verify(token)
    except ContinuationError as error:
        refused = error
    if refused is not None:
        assert str(refused).startswith("continuation: ")
    else:
        assert state.run_id == "run-1"


def test_a_random_run_key_is_stored_once_and_never_the_api_key(tmp_path: Any) -> None:
    store = DirectoryStore(tmp_path)
    keys = StoredRunKeys(store)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        first = await keys.create("run-1")
        again = await StoredRunKeys(store).create("run-1")
        looked_up = await StoredRunKeys(store).lookup("run-1")
        return first, again, looked_up

    first, again, looked_up = asyncio.run(scenario())
    assert first == again == looked_up
    assert len(first) == KEY_BYTES
    assert (tmp_path / run_key_path("run-1")).read_bytes() == first
    with pytest.raises(ContinuationError, match="has no signing key"):
        asyncio.run(StoredRunKeys(store).lookup("run-2"))


def test_a_deployment_secret_derives_one_key_per_run() -> None:
    keys = SecretKeys("x" * 40)
    one = asyncio.run(keys.create("run-1"))
    assert one == asyncio.run(keys.lookup("run-1"))
    assert one != asyncio.run(keys.lookup("run-2"))
    assert "x" * 40 not in repr(keys)
    with pytest.raises(Exception, match="CONTINUATION_SECRET"):
        SecretKeys("short")


_params = st.fixed_dictionaries(
    {},
    optional={
        "type": json_values | st.sampled_from(["quarter", "annual"]),
        "years": json_values | st.lists(st.integers(2015, 2026), max_size=3),
        "fs": json_values | st.just(["CFS"]),
        "co": json_values
        | st.dictionaries(st.just("00126380"), st.lists(st.text(max_size=4), max_size=3)),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=_params, keys=st.lists(item_keys, max_size=5))
def test_the_opendart_job_reads_any_signed_plan_or_refuses_it(
    params: dict[str, Any], keys: list[str]
) -> None:
    from asyncrawl.jobs.opendart import JOB

    config = JOB.configure({"CRAWLER_TYPE": "quarter", "DART_API_KEY": "k" * 40})
    refused: ContinuationError | None = None
    try:
        plan = JOB.resume(params, keys, config)
    except ContinuationError as error:
        refused = error
    if refused is not None:
        assert str(refused).startswith("continuation: ")
    else:
        assert [item.key for item in plan.items] == keys
