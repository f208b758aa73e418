"""Links out of an HTML page, read with the standard library's ``html.parser``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final

from ..urls import normalize_url

__all__ = ["PageLinks", "extract_links", "html_text"]

_FOLLOWED_SCHEMES: Final = ("http", "https")


@dataclass(frozen=True, slots=True)
class PageLinks:
    """What :func:`extract_links` found in one page."""

    #: Absolute, normalised http(s) URLs from ``<a href>`` and ``<area href>``, in page order,
    #: each once. Empty when the page says ``<meta name="robots" content="nofollow">``.
    links: tuple[str, ...]
    #: The page's ``<title>``, if it has one.
    title: str | None


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None
        self.nofollow = False
        self.title_parts: list[str] | None = None
        self.title: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in ("a", "area"):
            href = values.get("href", "").strip()
            if href and "nofollow" not in values.get("rel", "").lower().split():
                self.hrefs.append(href)
        elif tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"].strip()
        elif tag == "meta" and values.get("name", "").lower() == "robots":
            directives = {part.strip() for part in values.get("content", "").lower().split(",")}
            self.nofollow = self.nofollow or bool(directives & {"nofollow", "none"})
        elif tag == "title" and self.title is None:
            self.title_parts = []

    def handle_data(self, data: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title_parts is not None:
            self.title = " ".join("".join(self.title_parts).split()) or None
            self.title_parts = None


def extract_links(html: str, url: str, *, sort_query: bool = False) -> PageLinks:
    """The http(s) links of ``html`` (the page at ``url``), resolved and normalised.

    ``<base href>`` is honoured; ``rel="nofollow"`` links and pages with a robots ``nofollow``
    meta tag give no links; ``mailto:``, ``javascript:`` and unparsable hrefs are dropped.
    """
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    if parser.nofollow:
        return PageLinks(links=(), title=parser.title)
    base = url
    if parser.base is not None:
        try:
            base = normalize_url(parser.base, base=url)
        except ValueError:
            base = url
    seen: dict[str, None] = {}
    for href in parser.hrefs:
        try:
            link = normalize_url(href, base=base, sort_query=sort_query)
        except ValueError:
            continue
        if link.startswith(_FOLLOWED_SCHEMES) and link.split(":", 1)[0] in _FOLLOWED_SCHEMES:
            seen.setdefault(link, None)
    return PageLinks(links=tuple(seen), title=parser.title)


def html_text(body: bytes, headers: Mapping[str, str]) -> str:
    """``body`` decoded with the charset its ``Content-Type`` names (UTF-8 otherwise)."""
    charset = "utf-8"
    for part in headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip("\"' ")
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
