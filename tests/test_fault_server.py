"""The fault-injecting server: deterministic faults, each one seen by a real aiohttp client."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from asyncrawl.errors import ConfigError
from asyncrawl.testing import FaultPlan, FaultServer, ItemContext
from asyncrawl.testing.faults import query_param_item_key
from asyncrawl.testing.process import run_server_process

ITEMS = [f"item-{n}" for n in range(2000)]


async def get(
    session: aiohttp.ClientSession, url: str, *, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, dict(response.headers), await response.read()


# --- the plan: pure and deterministic ---------------------------------------------------------


def test_same_seed_item_and_attempt_always_meet_the_same_fault() -> None:
    plan = FaultPlan(seed=3, p_503=0.1, p_429=0.1, p_reset=0.1, p_html=0.1, p_truncate=0.1)
    again = FaultPlan(seed=3, p_503=0.1, p_429=0.1, p_reset=0.1, p_html=0.1, p_truncate=0.1)
    first = [plan.fault_for(item, attempt) for item in ITEMS for attempt in (1, 2, 3)]
    second = [again.fault_for(item, attempt) for item in ITEMS for attempt in (1, 2, 3)]
    assert first == second
    assert [plan.delay_for(i, 1) for i in ITEMS[:50]] == [again.delay_for(i, 1) for i in ITEMS[:50]]


def test_different_seeds_fault_different_items() -> None:
    faulted = [
        {item for item in ITEMS if FaultPlan(seed=seed, p_503=0.2).fault_for(item, 1)}
        for seed in (0, 1)
    ]
    assert faulted[0] != faulted[1]


def test_a_retry_is_a_fresh_draw() -> None:
    plan = FaultPlan(p_503=0.5)
    first = [plan.fault_for(item, 1) for item in ITEMS]
    second = [plan.fault_for(item, 2) for item in ITEMS]
    assert first != second


def test_fault_frequencies_follow_the_probabilities() -> None:
    plan = FaultPlan(seed=11, p_503=0.2, p_429=0.1, p_reset=0.05, p_hang=0.05)
    counts = Counter(plan.fault_for(item, 1) for item in ITEMS)
    share = {fault: count / len(ITEMS) for fault, count in counts.items()}
    assert share["503"] == pytest.approx(0.2, abs=0.04)
    assert share["429"] == pytest.approx(0.1, abs=0.03)
    assert share["reset"] == pytest.approx(0.05, abs=0.02)
    assert share["hang"] == pytest.approx(0.05, abs=0.02)
    assert set(share) == {None, "503", "429", "reset", "hang"}


def test_latency_is_at_least_the_base_with_a_jitter_tail() -> None:
    plan = FaultPlan(latency=0.1, latency_jitter=0.05)
    delays = [plan.delay_for(item, 1) for item in ITEMS]
    assert min(delays) >= 0.1
    assert max(delays) <= 0.1 + 10 * 0.05
    assert sum(delays) / len(delays) == pytest.approx(0.15, abs=0.01)
    assert FaultPlan(latency=0.2).delay_for("x", 1) == 0.2


def test_fail_first_attempts_fault_exactly_the_first_k() -> None:
    plan = FaultPlan(fail_first_attempts=2)
    faults = [plan.fault_for("a", n) for n in (1, 2, 3, 4)]
    assert faults == ["fail_first", "fail_first", None, None]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"p_503": 1.5}, "p_503"),
        ({"p_reset": -0.1}, "p_reset"),
        ({"p_503": 0.6, "p_429": 0.6}, "p_503"),
        ({"latency": -1.0}, "latency"),
        ({"latency_jitter": float("inf")}, "latency_jitter"),
        ({"retry_after": -2.0}, "retry_after"),
        ({"rate_limit": (0, 60.0)}, "rate_limit"),
        ({"rate_limit": (10, 0.0)}, "rate_limit"),
        ({"fail_first_attempts": -1}, "fail_first_attempts"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_bad_plans_are_rejected_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        FaultPlan(**kwargs)
    assert raised.value.field == field


# --- faults on the wire --------------------------------------------------------------------------


async def test_default_answer_names_the_item_without_secret_params() -> None:
    async with FaultServer() as server, aiohttp.ClientSession() as session:
        status, _, body = await get(session, f"{server.url}/api/x?b=2&crtfc_key=SECRET&a=1")
        assert status == 200
        assert body == b'{"ok": true, "item": "/api/x?a=1&b=2"}'
        await get(session, f"{server.url}/api/x?a=1&b=2&crtfc_key=OTHER")
        assert server.attempts_by_item() == {"/api/x?a=1&b=2": 2}
        assert [a.attempt for a in server.arrivals] == [1, 2]
        assert "SECRET" not in repr(server.arrivals)


async def test_503_fault() -> None:
    async with FaultServer(FaultPlan(p_503=1.0)) as server, aiohttp.ClientSession() as session:
        status, headers, _ = await get(session, f"{server.url}/x")
    assert status == 503
    assert headers["Content-Type"].startswith("text/html")
    assert server.arrivals[0].fault == "503"


async def test_429_fault_carries_retry_after() -> None:
    plan = FaultPlan(p_429=1.0, retry_after=7)
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        status, headers, _ = await get(session, f"{server.url}/x")
    assert status == 429
    assert headers["Retry-After"] == "7"


async def test_reset_fault_is_a_connection_error() -> None:
    async with FaultServer(FaultPlan(p_reset=1.0)) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(session, f"{server.url}/x")
    assert server.arrivals[0].fault == "reset"


async def test_truncated_body_is_a_payload_error() -> None:
    plan = FaultPlan(p_truncate=1.0)
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            await get(session, f"{server.url}/x")


async def test_html_fault_is_http_200_with_an_html_page() -> None:
    async with FaultServer(FaultPlan(p_html=1.0)) as server, aiohttp.ClientSession() as session:
        status, headers, body = await get(session, f"{server.url}/x")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body.lstrip().startswith(b"<!DOCTYPE html>")


@pytest.mark.looptime
async def test_hang_times_the_client_out_and_teardown_does_not_wait() -> None:
    loop = asyncio.get_running_loop()
    server = FaultServer(FaultPlan(p_hang=1.0))
    async with server, aiohttp.ClientSession() as session:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await get(session, f"{server.url}/x", timeout=30.0)
        assert loop.time() - started == pytest.approx(30.0)
        closing = loop.time()
    # Woken at shutdown, the hung handler does not hold teardown for the runner's grace period.
    assert loop.time() - closing < 0.1
    assert server.arrivals[0].fault == "hang"


@pytest.mark.looptime
async def test_latency_delays_every_answer() -> None:
    loop = asyncio.get_running_loop()
    plan = FaultPlan(latency=2.0, p_503=0.5)
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        for n in range(6):
            started = loop.time()
            await get(session, f"{server.url}/x?n={n}")
            assert loop.time() - started == pytest.approx(2.0, abs=0.01)


async def test_fail_first_attempts_then_success() -> None:
    plan = FaultPlan(fail_first_attempts=2)
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        statuses = [(await get(session, f"{server.url}/x?id=1"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [(a.attempt, a.fault) for a in server.arrivals] == [
        (1, "fail_first"),
        (2, "fail_first"),
        (3, None),
    ]


async def test_the_same_items_fault_whatever_order_they_arrive_in() -> None:
    plan = FaultPlan(seed=5, p_503=0.3, p_html=0.2)
    seen: list[dict[tuple[str, int], str | None]] = []
    for order in (range(40), reversed(range(40))):
        async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
            for n in order:
                await get(session, f"{server.url}/x?id={n}")
        seen.append({(a.item, a.attempt): a.fault for a in server.arrivals})
    assert seen[0] == seen[1]
    assert any(fault is not None for fault in seen[0].values())


# --- rate window and the arrivals log -----------------------------------------------------------


async def test_requests_past_the_rate_window_get_429() -> None:
    plan = FaultPlan(rate_limit=(3, 60.0), retry_after=60)
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        answers = [await get(session, f"{server.url}/x?id={n}") for n in range(5)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429]
    assert answers[3][1]["Retry-After"] == "60"
    assert [a.fault for a in server.arrivals] == [None, None, None, "rate_limit", "rate_limit"]


@pytest.mark.looptime
async def test_rate_window_slides_and_max_in_window_counts_arrivals() -> None:
    plan = FaultPlan(rate_limit=(2, 1.0))
    async with FaultServer(plan) as server, aiohttp.ClientSession() as session:
        statuses = []
        # Arrivals at t = 0, 0.5, 0.9, 2.0, 2.1, 2.2. Rejected arrivals count too: the window
        # is over what arrived, so a client that never sends n+1 in a window is never refused.
        for pause in (0.0, 0.5, 0.4, 1.1, 0.1, 0.1):
            await asyncio.sleep(pause)
            statuses.append((await get(session, f"{server.url}/x"))[0])
        assert statuses == [200, 200, 429, 200, 200, 429]
        assert server.max_in_window(1.0) == 3
        assert server.max_in_window(0.3) == 3
        assert server.max_in_window(0.15) == 2
        assert server.max_in_window(0.05) == 1
        assert server.max_in_window(10.0) == 6


async def test_reset_log_forgets_arrivals_but_not_attempts() -> None:
    async with FaultServer() as server, aiohttp.ClientSession() as session:
        await get(session, f"{server.url}/x")
        server.reset_log()
        assert server.arrivals == []
        assert server.max_in_window(1.0) == 0
        await get(session, f"{server.url}/x")
    assert [a.attempt for a in server.arrivals] == [2]


async def test_custom_handler_and_item_key() -> None:
    async def handler(request: web.Request, context: ItemContext) -> web.StreamResponse:
        return web.json_response({"id": context.item, "attempt": context.attempt})

    server = FaultServer(handler=handler, item_key=query_param_item_key("id"))
    async with server, aiohttp.ClientSession() as session:
        await get(session, f"{server.url}/a?id=42&page=1")
        _, _, body = await get(session, f"{server.url}/b?id=42&page=2")
    assert body == b'{"id": "42", "attempt": 2}'
    assert server.attempts_by_item() == {"42": 2}


async def test_url_exists_only_while_running() -> None:
    server = FaultServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    async with server:
        assert server.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = server.url


# --- in another process ----------------------------------------------------------------------


async def test_a_server_process_serves_the_plan_and_stops_at_exit() -> None:
    with run_server_process("fault", FaultPlan(fail_first_attempts=1)) as url:
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            first, _, _ = await get(session, f"{url}/x?id=1")
            second, _, body = await get(session, f"{url}/x?id=1")
    assert (first, second) == (503, 200)
    assert body == b'{"ok": true, "item": "/x?id=1"}'
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(session, f"{url}/x")


def test_server_process_settings_are_checked_in_the_caller() -> None:
    with pytest.raises(ConfigError) as raised, run_server_process("nope"):  # type: ignore[arg-type]
        pass
    assert raised.value.field == "kind"
