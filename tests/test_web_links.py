"""Links out of HTML: base href, nofollow, schemes, charsets."""

from __future__ import annotations

from asyncrawl.web import extract_links, html_text


def test_links_are_resolved_normalised_and_listed_once_in_page_order() -> None:
    html = """<html><head><title> A   page </title></head><body>
    <a href="b.html#top">b</a> <a href="./b.html">b again</a>
    <a href="HTTP://Other.test:80/x">x</a> <area href="/map">
    <a href="mailto:a@b.c">m</a> <a href="javascript:go()">j</a> <a href="tel:123">t</a>
    <a href="http://[bad">broken</a> <a>no href</a>
    </body></html>"""
    found = extract_links(html, "http://a.test/dir/page.html")
    assert found.links == ("http://a.test/dir/b.html", "http://other.test/x", "http://a.test/map")
    assert found.title == "A page"


def test_base_href_is_honoured() -> None:
    html = '<base href="http://cdn.test/root/"><a href="x">x</a>'
    assert extract_links(html, "http://a.test/").links == ("http://cdn.test/root/x",)


def test_nofollow_links_and_pages_give_nothing() -> None:
    assert extract_links('<a rel="NoFollow ugc" href="/x">x</a>', "http://a.test/").links == ()
    page = '<meta name="robots" content="noindex, nofollow"><a href="/x">x</a>'
    assert extract_links(page, "http://a.test/").links == ()


def test_the_charset_of_the_content_type_decodes_the_body() -> None:
    body = "<title>재무제표</title>".encode("euc-kr")
    assert "재무제표" in html_text(body, {"Content-Type": "text/html; charset=EUC-KR"})
    assert html_text(b"ok", {"Content-Type": "text/html; charset=no-such"}) == "ok"
