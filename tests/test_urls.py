"""URL normalisation: the same resource gets the same key, a different one never does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncrawl.urls import normalize_url, origin, url_host


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Example.COM/a", "http://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com/a#part", "http://example.com/a"),
        ("http://example.com/a?", "http://example.com/a"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/../../a", "http://example.com/a"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/a/%2E%2e/b", "http://example.com/b"),
        ("http://example.com/%7euser/%2fx", "http://example.com/~user/%2Fx"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/카드", "http://example.com/%EC%B9%B4%EB%93%9C"),
        ("http://BÜCHER.example/", "http://xn--bcher-kva.example/"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://u:P@Example.com/", "http://u:P@example.com/"),
        ("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1"),
    ],
)
def test_normal_forms(raw: str, normal: str) -> None:
    assert normalize_url(raw) == normal


def test_sorted_query_is_optional() -> None:
    assert (
        normalize_url("http://e.com/?b=2&a=1&a=0", sort_query=True) == "http://e.com/?a=0&a=1&b=2"
    )


def test_relative_links_resolve_against_the_base() -> None:
    base = "http://example.com/docs/guide/page.html"
    assert normalize_url("../api/", base=base) == "http://example.com/docs/api/"
    assert normalize_url("/top#x", base=base) == "http://example.com/top"
    assert normalize_url("?q=1", base=base) == "http://example.com/docs/guide/page.html?q=1"
    assert normalize_url("//other.org/x", base=base) == "http://other.org/x"


def test_an_encoded_slash_is_never_decoded() -> None:
    assert normalize_url("http://e.com/a%2Fb") != normalize_url("http://e.com/a/b")


@pytest.mark.parametrize("bad", ["/relative/only", "http://e.com:99999/", "http://e.com:x/"])
def test_unusable_urls_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the documented contract
        normalize_url(bad)


def test_host_and_origin() -> None:
    assert url_host("HTTP://Example.com:80/a") == "example.com"
    assert url_host("http://127.0.0.1:8080/a") == "127.0.0.1:8080"
    assert origin("https://Example.com:443/a/b?c") == "https://example.com"


_segment = st.text(
    alphabet=st.sampled_from(list("ab.~%2EFz -_:@!$&'()*+,;=é/")), min_size=0, max_size=12
)


@given(
    scheme=st.sampled_from(["http", "HTTPS"]),
    host=st.sampled_from(["example.com", "EXAMPLE.com", "127.0.0.1", "[::1]", "bücher.de"]),
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    path=_segment,
    query=_segment,
    fragment=_segment,
    sort_query=st.booleans(),
)
def test_normalising_twice_changes_nothing(
    scheme: str, host: str, port: str, path: str, query: str, fragment: str, sort_query: bool
) -> None:
    url = f"{scheme}://{host}{port}/{path}?{query}#{fragment}"
    once = normalize_url(url, sort_query=sort_query)
    assert normalize_url(once, sort_query=sort_query) == once
    assert "#" not in once
