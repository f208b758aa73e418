"""URL normalisation: one spelling per resource, so that keys dedupe what is the same page.

:func:`normalize_url` applies the semantics-preserving normalisations of RFC 3986, section 6:

- scheme and host lower-case (an internationalised host becomes its IDNA ``xn--`` form);
- the default port dropped (``:80`` for http, ``:443`` for https), an empty path made ``/``;
- ``.`` and ``..`` segments resolved;
- percent-encoding normalised: escapes of unreserved characters decoded (``%7E`` -> ``~``),
  other escapes upper-cased (``%2f`` -> ``%2F``, never decoded to ``/``), characters that must
  be escaped (spaces, non-ASCII) escaped as UTF-8, a stray ``%`` escaped as ``%25``;
- the fragment dropped (it never reaches the server), and an empty query (``?``) too.

Optionally (``sort_query=True``) the query's ``name=value`` pairs are sorted: most servers do
not care about their order, some do, so it is the caller's choice.

Relative references are resolved against ``base`` first, as a browser resolves a link.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

__all__ = ["DEFAULT_PORTS", "normalize_escapes", "normalize_url", "origin", "url_host"]

#: Ports a URL of that scheme need not spell out.
DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}

_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters left as they are in each component (RFC 3986's pchar and query sets, plus "%",
# whose escapes are normalised separately).
_PATH_SAFE: Final = "/:@!$&'()*+,;=%"
_QUERY_SAFE: Final = "/?:@!$&'()*+,;=%"


def normalize_url(url: str, *, base: str | None = None, sort_query: bool = False) -> str:
    """``url`` in its normal form (see the module docstring), resolved against ``base``.

    Raises ``ValueError`` for a URL that has no scheme, or an invalid port.
    """
    if base is not None:
        url = urljoin(base, url.strip())
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"not an absolute URL (no scheme): {url[:100]!r}")
    netloc = _netloc(scheme, parts.netloc, parts.hostname, parts.port)
    # Escapes first: an escaped dot (%2E) is a dot, and its segment resolves like one.
    path = _remove_dot_segments(_escapes(parts.path, _PATH_SAFE))
    if not path and netloc:
        path = "/"
    query = _escapes(parts.query, _QUERY_SAFE)
    if sort_query and query:
        query = "&".join(sorted(query.split("&")))
    return urlunsplit((scheme, netloc, path, query, ""))


def url_host(url: str) -> str:
    """The normalised ``host[:port]`` of ``url`` (default port dropped): a per-host key."""
    return urlsplit(normalize_url(url)).netloc


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, normalised: where its ``/robots.txt`` lives."""
    parts = urlsplit(normalize_url(url))
    return f"{parts.scheme}://{parts.netloc}"


def normalize_escapes(text: str) -> str:
    """``text`` (a path, query or pattern) with its percent-encoding normalised, as in URLs."""
    return _escapes(text, _QUERY_SAFE)


def _netloc(scheme: str, netloc: str, hostname: str | None, port: int | None) -> str:
    if not netloc:
        return ""
    userinfo, _, _ = netloc.rpartition("@")
    host = _idna(hostname or "")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    # urlsplit's .port raises ValueError for a port that is not a number in 0-65535.
    if port is not None and DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    return f"{userinfo}@{host}" if userinfo else host


def _idna(host: str) -> str:
    host = host.lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return quote(host, safe="")


def _escapes(text: str, safe: str) -> str:
    """Normalise percent-encoding in one component (never changing what it means)."""
    if "%" in text:
        text = _STRAY_PERCENT.sub("%25", text)
        text = _ESCAPE.sub(_fix_escape, text)
    return quote(text, safe=safe)


def _fix_escape(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else f"%{match[1].upper()}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986, section 5.2.4: resolve ``.`` and ``..`` (never above the root)."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result
