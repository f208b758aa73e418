"""PagedJson: next links, cursors and Link headers discovered while crawling a paged API."""

from __future__ import annotations

import pytest

from asyncrawl import AiohttpFetcher, CrawlConfig, Ok, Rate, Response, RetryPolicy, run
from asyncrawl.outcomes import NoData, SlowDown, Transient, Unusable
from asyncrawl.testing import FaultServer, PagedApi
from asyncrawl.web import PagedJson

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


async def test_every_record_of_every_collection_is_collected_once() -> None:
    api = PagedApi(collections=3, records=40, per_page=6, seed=5, p_503=0.2, p_429=0.1)
    async with FaultServer(handler=api) as server, AiohttpFetcher() as fetcher:
        seeds = [f"{server.url}{path}" for path in api.seed_paths()]
        config = CrawlConfig(concurrency=4, retry=FAST, rates=(Rate(1000, 1),), slowdown_pause=0.05)
        records: list[str] = []
        async with run(PagedJson(), seeds, fetcher=fetcher, config=config) as crawl:
            async for result in crawl:
                if isinstance(result.outcome, Ok):
                    records += [record["id"] for record in result.outcome.payload]
    summary = crawl.summary
    assert sorted(records) == sorted(f"c{c}-{n}" for c in range(3) for n in range(40))
    assert summary.consistent
    assert summary.ok == summary.planned == 3 * 7  # ceil(40 / 6) pages per collection
    assert summary.remaining == ()
    # The API's faults were met and retried, each page served with data exactly once.
    assert summary.status_counts["http_503"] > 0
    assert summary.status_counts["http_429"] > 0
    assert set(api.served.values()) == {1}


def _answer(body: bytes, status: int = 200, **headers: str) -> Response:
    return Response(status=status, headers=headers, body=body)


def test_a_cursor_is_set_on_the_page_url() -> None:
    source = PagedJson(records="data", next_link=None, next_cursor="meta.cursor")
    outcome = source.classify(
        "http://a.test/v1/x?limit=5&cursor=old",
        _answer(b'{"data": [1], "meta": {"cursor": "abc"}}'),
    )
    assert isinstance(outcome, Ok)
    assert outcome.follow == ("http://a.test/v1/x?limit=5&cursor=abc",)


def test_a_link_header_gives_the_next_page() -> None:
    outcome = PagedJson().classify(
        "http://a.test/v1/x",
        _answer(
            b'{"items": [1]}', Link='<http://a.test/v1/x?page=2>; rel="next", <...>; rel="last"'
        ),
    )
    assert isinstance(outcome, Ok)
    assert outcome.follow == ("http://a.test/v1/x?page=2",)


def test_the_last_page_follows_nothing_and_an_empty_one_is_no_data() -> None:
    last = PagedJson().classify("http://a.test/x", _answer(b'{"items": [1], "next": null}'))
    assert isinstance(last, Ok)
    assert last.follow == ()
    empty = PagedJson().classify("http://a.test/x", _answer(b'{"items": []}'))
    assert isinstance(empty, NoData)


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"<html>maintenance</html>", "not_json"), (b'{"records": []}', "bad_shape")],
)
def test_answers_of_the_wrong_shape_are_unusable(body: bytes, status: str) -> None:
    outcome = PagedJson().classify("http://a.test/x", _answer(body))
    assert isinstance(outcome, Unusable)
    assert outcome.status == status


def test_http_statuses_are_classified_generically() -> None:
    assert isinstance(PagedJson().classify("http://a.test/", _answer(b"", 503)), Transient)
    assert isinstance(PagedJson().classify("http://a.test/", _answer(b"", 429)), SlowDown)


def test_keys_are_normalised_urls() -> None:
    source = PagedJson()
    assert source.key("HTTP://A.test:80/x#y") == "http://a.test/x"
    assert source.load_item(source.dump_item("http://a.test/x")) == "http://a.test/x"


def test_a_secret_echoed_in_the_next_link_never_reaches_a_key() -> None:
    source = PagedJson(params={"api_key": "SECRET"}, secret_params=frozenset({"api_key"}))
    outcome = source.classify(
        "http://a.test/x",
        _answer(b'{"items": [1], "next": "/x?page=2&api_key=SECRET"}'),
    )
    assert isinstance(outcome, Ok)
    (following,) = outcome.follow
    assert "SECRET" not in following
    assert "SECRET" not in source.key("http://a.test/x?api_key=SECRET&page=2")
    request = source.request(following)
    assert request.params == {"api_key": "SECRET"}
    assert "SECRET" not in repr(request)
