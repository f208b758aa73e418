"""The continuation token: round trips, stays under 32 KB, spills big state, rejects tampering."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrawl.aws.continuation import (
    MAX_TOKEN_BYTES,
    ContinuationState,
    ContinuationTooLarge,
    RunTotals,
    decode,
    encode,
    encode_or_spill,
    resolve,
    spill_key,
)
from asyncrawl.errors import ContinuationError

REPORTS = ("11013", "11012", "11014", "11011")


class MemoryStore:
    """The two store calls the codec needs, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)


def token_of(payload: Any) -> str:
    """A token wrapping ``payload`` the way the codec does, for forging bad ones."""
    raw = zlib.compress(orjson.dumps(payload))
    return "v1." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


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
        crawler_type="quarter",
        years=(2022, 2023, 2024),
        fs_divs=("CFS", "OFS"),
        remaining=tuple(keys),
        companies={corp: (f"{i:06d}", f"한국회사{i}") for i, corp in enumerate(corps)},
        limiter={"v": 1, "sends": [[1_700_000_000_000 + i * 37, 1] for i in range(limiter_sends)]},
        invocation=2,
        totals=RunTotals(planned=24_000, ok=10, no_data=2, failed=1, requests=20, retries=3),
    )


corp_codes = st.text(alphabet="0123456789", min_size=8, max_size=8)
item_keys = st.one_of(
    st.builds(
        lambda corp, year, report, fs: f"{corp}/{year}/{report}/{fs}",
        corp_codes,
        st.integers(2015, 2026),
        st.sampled_from(REPORTS),
        st.sampled_from(("CFS", "OFS")),
    ),
    # Any other key shape a Source may use must survive too, slashes or none.
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30),
)
states = st.builds(
    ContinuationState,
    run_id=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    crawler_type=st.sampled_from(("annual", "quarter")),
    years=st.lists(st.integers(2015, 2026), min_size=1, max_size=4).map(tuple),
    fs_divs=st.sampled_from((("CFS",), ("OFS",), ("CFS", "OFS"))),
    remaining=st.lists(item_keys, max_size=200).map(tuple),
    companies=st.dictionaries(corp_codes, st.tuples(st.text(max_size=6), st.text(max_size=20))),
    limiter=st.dictionaries(st.text(max_size=5), st.lists(st.integers(0, 2**53), max_size=20)),
    invocation=st.integers(1, 10_000),
    totals=st.builds(
        RunTotals,
        planned=st.integers(0, 10**9),
        ok=st.integers(0, 10**9),
        failed=st.integers(0, 10**9),
        elapsed_s=st.floats(0, 1e9),
    ),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_round_trip_restores_the_state_and_stays_under_the_limit(state: ContinuationState) -> None:
    token = encode(state)
    assert len(token.encode()) <= MAX_TOKEN_BYTES
    assert token.isascii()
    assert decode(token, run_id=state.run_id) == state
    assert decode(token, run_id=None) == state


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(states)
async def test_encode_or_spill_round_trips_through_the_store(state: ContinuationState) -> None:
    store = MemoryStore()
    token = await encode_or_spill(state, store.put, max_bytes=600)
    assert len(token) <= 600
    decoded = decode(token, run_id=state.run_id)
    assert await resolve(decoded, store.get) == state


def test_remaining_keys_are_normalised_to_sorted_unique() -> None:
    state = ContinuationState(
        run_id="r",
        crawler_type="annual",
        years=(2024,),
        fs_divs=("CFS",),
        remaining=("b/2024/11011/CFS", "a/2024/11011/CFS", "b/2024/11011/CFS"),
    )
    assert state.remaining == ("a/2024/11011/CFS", "b/2024/11011/CFS")


async def test_a_thousand_companies_of_quarter_work_fit_in_the_token() -> None:
    state = full_state(1000)
    assert len(state.remaining) == 1000 * 3 * 4 * 2
    store = MemoryStore()
    token = await encode_or_spill(state, store.put)
    assert len(token) <= MAX_TOKEN_BYTES
    # 24,000 keys and 1,000 Korean names compress into the token itself: no spill needed.
    assert store.objects == {}
    assert decode(token, run_id="run-1") == state


async def test_state_too_big_for_a_token_spills_to_the_runs_state_folder() -> None:
    state = full_state(1000, limiter_sends=18_000)
    with pytest.raises(ContinuationTooLarge, match="32768-byte limit"):
        encode(state)
    store = MemoryStore()
    token = await encode_or_spill(state, store.put)
    assert len(token) <= MAX_TOKEN_BYTES
    assert list(store.objects) == ["_meta/runs/run-1/state/continuation-2.json"]
    pointer = decode(token, run_id="run-1")
    assert pointer.spilled
    assert pointer.remaining == ()
    assert pointer.state_key == spill_key("run-1", 2)
    restored = await resolve(pointer, store.get)
    assert restored == state
    assert not restored.spilled


async def test_resolve_reports_a_missing_spilled_state() -> None:
    store = MemoryStore()
    token = await encode_or_spill(full_state(5), store.put, max_bytes=400)
    store.objects.clear()
    with pytest.raises(ContinuationError, match="missing from the store"):
        await resolve(decode(token, run_id=None), store.get)


async def test_resolve_rejects_a_spilled_state_of_another_run() -> None:
    store = MemoryStore()
    token = await encode_or_spill(full_state(5), store.put, max_bytes=400)
    other = MemoryStore()
    await encode_or_spill(full_state(5, run_id="run-2"), other.put, max_bytes=400)
    store.objects[spill_key("run-1", 2)] = other.objects[spill_key("run-2", 2)]
    with pytest.raises(ContinuationError, match="belongs to run run-2, not run-1"):
        await resolve(decode(token, run_id=None), store.get)


def test_a_token_of_another_run_is_refused() -> None:
    token = encode(full_state(2, run_id="run-x"))
    with pytest.raises(ContinuationError, match="belongs to run run-x, not run-y"):
        decode(token, run_id="run-y")


def _valid_payload() -> dict[str, Any]:
    payload = orjson.loads(
        zlib.decompress(base64.urlsafe_b64decode(encode(full_state(2))[3:] + "=="))
    )
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "must be the string"),
        (12, "must be the string"),
        ("", "unknown version"),
        ("v2.eJwDAAAAAAE", "unknown version 'v2'"),
        ("v1.!!!!", "not base64url"),
        ("v1." + base64.urlsafe_b64encode(b"not zlib").decode().rstrip("="), "does not decode"),
        ("v1." + base64.urlsafe_b64encode(zlib.compress(b"{nope")).decode(), "does not decode"),
        (token_of([1, 2]), "not a JSON object"),
    ],
)
def test_malformed_tokens_are_refused(token: object, message: str) -> None:
    with pytest.raises(ContinuationError, match=message):
        decode(token, run_id=None)


def test_a_truncated_token_is_refused() -> None:
    token = encode(full_state(3))
    with pytest.raises(ContinuationError):
        decode(token[: len(token) // 2], run_id=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("rem"), r"missing \['rem'\]"),
        (lambda p: p.update(extra=1), r"unexpected \['extra'\]"),
        (lambda p: p.update(run="bad id!"), "run_id"),
        (lambda p: p.update(type="monthly"), "crawler_type"),
        (lambda p: p.update(fs=["XFS"]), "fs_divs"),
        (lambda p: p.update(years="2024"), "years"),
        (lambda p: p.update(n=0), "invocation"),
        (lambda p: p["totals"].update(ok=-1), "ok"),
        (lambda p: p["totals"].pop("ok"), "totals"),
        (lambda p: p["rem"]["g"].update({"00000001": "ffffffffff"}), "out of range"),
        (lambda p: p["rem"]["g"].update({"00000001": "xyz"}), "groups are malformed"),
        (lambda p: p.update(co={"00000001": ["a"]}), "companies"),
        # A pointer is a flag: it can only mean the run's own state file, never another key.
        (lambda p: p.update(ptr="data/year=2024/x.jsonl.gz"), "ptr"),
        (lambda p: p.update(ptr=True), "carries no keys"),
    ],
)
def test_tampered_payloads_are_refused(change: Any, message: str) -> None:
    payload = _valid_payload()
    change(payload)
    with pytest.raises(ContinuationError, match=message):
        decode(token_of(payload), run_id=None)


def test_a_decompression_bomb_is_refused() -> None:
    bomb = zlib.compress(b"[" + b" " * (80 * 1024 * 1024) + b"]", 9)
    token = "v1." + base64.urlsafe_b64encode(bomb).rstrip(b"=").decode()
    with pytest.raises(ContinuationError, match="oversized"):
        decode(token, run_id=None)
