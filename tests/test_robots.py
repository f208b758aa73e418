"""robots.txt rules: loaded once per origin through the crawl's fetcher, RFC 9309's verdicts."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from asyncrawl import AiohttpFetcher, Request, Response
from asyncrawl.errors import ConfigError
from asyncrawl.robots import RobotsRules, parse_robots
from asyncrawl.testing import FaultPlan, FaultServer, ItemContext

ROBOTS = """\
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /private/
Allow: /private/open
Crawl-delay: 2
"""


class CountingFetcher:
    """Wraps a fetcher and counts what went through it."""

    def __init__(self, inner: AiohttpFetcher) -> None:
        self.inner = inner
        self.urls: list[str] = []

    async def fetch(self, request: Request, *, timeout: float) -> Response:
        self.urls.append(request.url)
        return await self.inner.fetch(request, timeout=timeout)


def _serving(routes: dict[str, tuple[int, str, dict[str, str]]]):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request, context: ItemContext) -> web.StreamResponse:
        status, text, headers = routes.get(request.path, (404, "missing", {}))
        return web.Response(status=status, text=text, headers=headers)

    return handler


async def _rules(
    routes: dict[str, tuple[int, str, dict[str, str]]],
    *,
    plan: FaultPlan | None = None,
    timeout: float = 5.0,
    user_agent: str = "mybot/1.0",
) -> tuple[RobotsRules, str, CountingFetcher]:
    async with FaultServer(plan, handler=_serving(routes)) as server, AiohttpFetcher() as inner:
        fetcher = CountingFetcher(inner)
        rules = RobotsRules(user_agent=user_agent, timeout=timeout)
        base = server.url
        await rules.load(fetcher, [f"{base}/a", f"{base}/b"])
    return rules, base, fetcher


async def test_rules_apply_to_our_user_agent() -> None:
    rules, base, fetcher = await _rules({"/robots.txt": (200, ROBOTS, {})})
    assert fetcher.urls == [f"{base}/robots.txt"]
    assert rules.allowed(f"{base}/public/page")
    assert not rules.allowed(f"{base}/private/page")
    assert rules.allowed(f"{base}/private/open")
    assert rules.crawl_delay(f"{base}/x") == 2.0
    assert rules.verdicts == {base: "rules"}


async def test_a_group_naming_the_bot_wins() -> None:
    rules, base, _ = await _rules({"/robots.txt": (200, ROBOTS, {})}, user_agent="otherbot")
    assert not rules.allowed(f"{base}/public/page")


async def test_missing_robots_allows_everything() -> None:
    rules, base, _ = await _rules({})
    assert rules.allowed(f"{base}/private/page")
    assert rules.verdicts[base] == "unavailable"


async def test_a_server_error_disallows_everything_after_the_retries() -> None:
    rules, base, fetcher = await _rules({"/robots.txt": (503, "down", {})})
    assert not rules.allowed(f"{base}/public/page")
    assert rules.verdicts[base] == "unreachable"
    assert len(fetcher.urls) == 2  # attempts=2


async def test_one_server_error_then_rules() -> None:
    rules, base, _ = await _rules(
        {"/robots.txt": (200, ROBOTS, {})}, plan=FaultPlan(fail_first_attempts=1)
    )
    assert rules.verdicts[base] == "rules"
    assert rules.allowed(f"{base}/public/page")


async def test_a_hung_robots_txt_is_bounded_by_the_timeout() -> None:
    rules, base, fetcher = await _rules({}, plan=FaultPlan(p_hang=1.0), timeout=0.2)
    assert rules.verdicts[base] == "unreachable"
    assert not rules.allowed(f"{base}/anything")
    assert len(fetcher.urls) == 2


async def test_redirects_are_followed_up_to_five_hops() -> None:
    routes = {"/robots.txt": (301, "", {"Location": "/r1"})}
    routes |= {f"/r{n}": (302, "", {"Location": f"/r{n + 1}"}) for n in range(1, 4)}
    routes["/r4"] = (200, ROBOTS, {})
    rules, base, fetcher = await _rules(routes)
    assert rules.verdicts[base] == "rules"
    assert len(fetcher.urls) == 5


async def test_more_than_five_redirects_count_as_unavailable() -> None:
    routes = {"/robots.txt": (301, "", {"Location": "/r1"})}
    routes |= {f"/r{n}": (302, "", {"Location": f"/r{n + 1}"}) for n in range(1, 10)}
    rules, base, fetcher = await _rules(routes)
    assert rules.verdicts[base] == "unavailable"
    assert len(fetcher.urls) == 6


async def test_each_origin_is_fetched_once_even_when_asked_concurrently() -> None:
    async with (
        FaultServer(
            FaultPlan(latency=0.02), handler=_serving({"/robots.txt": (200, ROBOTS, {})})
        ) as server,
        AiohttpFetcher() as inner,
    ):
        fetcher = CountingFetcher(inner)
        rules = RobotsRules(user_agent="mybot")
        urls = [f"{server.url}/{n}" for n in range(5)]
        await asyncio.gather(rules.load(fetcher, urls), rules.load(fetcher, urls))
        await rules.load(fetcher, urls)
        assert fetcher.urls == [f"{server.url}/robots.txt"]


def test_asking_an_origin_that_was_not_loaded_says_how_to_fix_it() -> None:
    rules = RobotsRules(user_agent="mybot")
    with pytest.raises(LookupError, match="load"):
        rules.allowed("http://127.0.0.1:1/x")


@pytest.mark.parametrize(
    ("options", "field"),
    [({"user_agent": " "}, "user_agent"), ({"user_agent": "b", "timeout": 0}, "timeout")],
)
def test_bad_settings_name_the_parameter(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RobotsRules(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/", True),
        ("/robots.txt", True),
        ("/shop/cart", False),
        ("/shop/cart/", False),
        ("/shop/help", True),
        ("/a.pdf", False),
        ("/a.pdf?x=1", True),  # "$" anchors the end: a query after it no longer matches
        ("/search?q=1&sessionid=9", False),
        ("/fish", False),
        ("/fish.html", True),  # the longer pattern wins
        ("/tie", True),  # Allow and Disallow equally long: Allow wins
        ("/~user/page", False),  # %7E in the pattern is "~", as in the normalised URL
    ],
)
def test_rfc_9309_matching(path: str, allowed: bool) -> None:
    text = """
    # comment line
    User-agent: *
    Disallow: /shop/        # trailing comment
    Allow: /shop/help
    Disallow: /*.pdf$
    Disallow: /*sessionid=
    Disallow: /fish
    Allow: /fish.html
    Disallow: /fish.htmx
    Disallow: /%7euser/
    Disallow: /tie
    Allow: /tie
    Disallow:
    """
    rules = parse_robots(text.replace("    ", ""), "mybot")
    assert rules.allows(path) is allowed


def test_groups_for_the_same_agent_merge_and_the_named_group_beats_the_star() -> None:
    text = (
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: MyBot\nDisallow: /a\n\n"
        "User-agent: mybot\nDisallow: /b\n"
    )
    rules = parse_robots(text, "mybot")
    assert not rules.allows("/a")
    assert not rules.allows("/b")
    assert rules.allows("/c")


async def test_a_byte_order_mark_does_not_hide_the_first_group() -> None:
    rules, base, _ = await _rules({"/robots.txt": (200, "\ufeffUser-agent: *\nDisallow: /x\n", {})})
    assert not rules.allowed(f"{base}/x")


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_a_crawl_delay_that_is_no_positive_number_is_no_delay(value: str) -> None:
    assert parse_robots(f"User-agent: *\nCrawl-delay: {value}\n", "mybot").crawl_delay is None


def test_a_fractional_crawl_delay_is_kept() -> None:
    assert parse_robots("User-agent: *\nCrawl-delay: 0.5\n", "mybot").crawl_delay == 0.5
