"""The circuit breaker: bursts of resets pause, repeated pauses or slow-downs end the run."""

from __future__ import annotations

import asyncio

import pytest

from asyncrawl.breaker import BreakerAction, BreakerConfig, BreakerVerdict, CircuitBreaker
from asyncrawl.errors import ConfigError

pytestmark = pytest.mark.looptime


def now() -> float:
    return asyncio.get_running_loop().time()


def errors(breaker: CircuitBreaker, count: int) -> list[BreakerVerdict]:
    return [breaker.record_connection_error(sent_at=now()) for _ in range(count)]


async def test_a_burst_of_resets_pauses_everyone() -> None:
    breaker = CircuitBreaker(BreakerConfig(reset_burst=5, reset_pause=30.0))
    verdicts = errors(breaker, 5)
    assert [v.action for v in verdicts[:4]] == [BreakerAction.NONE] * 4
    assert verdicts[4].action is BreakerAction.PAUSE
    assert verdicts[4].pause == 30.0
    assert "IP block" in verdicts[4].reason


async def test_a_success_between_resets_starts_the_count_over() -> None:
    breaker = CircuitBreaker(BreakerConfig(reset_burst=3))
    errors(breaker, 2)
    breaker.record_success(sent_at=now())
    assert [v.action for v in errors(breaker, 2)] == [BreakerAction.NONE] * 2
    assert breaker.connection_errors == 2


async def test_bursts_after_the_allowed_pauses_are_fatal() -> None:
    breaker = CircuitBreaker(BreakerConfig(reset_burst=2, reset_pauses_before_fatal=3))
    actions = []
    for _ in range(4):
        actions.append(errors(breaker, 2)[-1])
        await asyncio.sleep(30)
    assert [v.action for v in actions] == [BreakerAction.PAUSE] * 3 + [BreakerAction.FATAL]
    assert actions[-1].reason == (
        "connections refused or reset repeatedly: the upstream may have blocked this IP"
    )


async def test_a_success_after_a_pause_forgives_earlier_pauses() -> None:
    breaker = CircuitBreaker(BreakerConfig(reset_burst=2, reset_pauses_before_fatal=1))
    assert errors(breaker, 2)[-1].action is BreakerAction.PAUSE
    await asyncio.sleep(30)
    breaker.record_success(sent_at=now())
    assert errors(breaker, 2)[-1].action is BreakerAction.PAUSE
    assert breaker.pauses == 1


async def test_resets_of_requests_sent_before_a_pause_belong_to_it() -> None:
    breaker = CircuitBreaker(BreakerConfig(reset_burst=5, reset_pauses_before_fatal=1))
    sent = now()
    await asyncio.sleep(1)
    # Sixteen workers in flight when the IP got blocked all fail at once: one pause, not three.
    verdicts = [breaker.record_connection_error(sent_at=sent) for _ in range(16)]
    assert [v.action for v in verdicts].count(BreakerAction.PAUSE) == 1
    assert BreakerAction.FATAL not in [v.action for v in verdicts]
    # An old success is no news either: it does not forgive the pause.
    breaker.record_success(sent_at=sent)
    assert breaker.pauses == 1


async def test_slowdowns_from_one_episode_count_once() -> None:
    breaker = CircuitBreaker(BreakerConfig(slowdowns_before_fatal=2))
    sent = now()
    await asyncio.sleep(0.2)
    verdicts = [breaker.record_slowdown(sent) for _ in range(16)]
    assert {v.action for v in verdicts} == {BreakerAction.NONE}
    assert breaker.slowdown_episodes == 1


async def test_consecutive_slowdown_episodes_without_success_are_fatal() -> None:
    breaker = CircuitBreaker(BreakerConfig(slowdowns_before_fatal=3))
    verdicts = []
    for _ in range(3):
        sent = now()
        await asyncio.sleep(0.2)
        verdicts.append(breaker.record_slowdown(sent))
        await asyncio.sleep(60)  # the cooldown
    assert [v.action for v in verdicts] == [BreakerAction.NONE] * 2 + [BreakerAction.FATAL]
    assert verdicts[-1].reason == "the upstream kept answering 'slow down': quota exhausted?"


async def test_a_success_between_slowdown_episodes_starts_over() -> None:
    breaker = CircuitBreaker(BreakerConfig(slowdowns_before_fatal=2))
    sent = now()
    await asyncio.sleep(1)
    breaker.record_slowdown(sent)
    await asyncio.sleep(60)
    breaker.record_success(sent_at=now())
    sent = now()
    await asyncio.sleep(1)
    assert breaker.record_slowdown(sent).action is BreakerAction.NONE


def test_config_defaults_and_validation() -> None:
    assert BreakerConfig() == BreakerConfig(
        reset_burst=5, reset_pause=30.0, reset_pauses_before_fatal=3, slowdowns_before_fatal=3
    )
    with pytest.raises(ConfigError, match="reset_burst"):
        BreakerConfig(reset_burst=0)
    with pytest.raises(ConfigError, match="reset_pause"):
        BreakerConfig(reset_pause=-1.0)
    with pytest.raises(ConfigError, match="slowdowns_before_fatal"):
        BreakerConfig(slowdowns_before_fatal=0)
